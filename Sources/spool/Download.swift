import ArgumentParser
import SpoolClient
import SpoolProtocol
import SpoolSystem

#if canImport(Glibc)
import Glibc
#endif

struct Download: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Download a complete upload, by id or by name (the newest complete one); prints `<sha256>  <file>`.",
        discussion: """
            Downloads through the server's HTTP door into <file>.part, reads it back and checks its SHA-256 \
            against the one the server stores, then renames it to <file>. A cut download is resumed from \
            the .part file: within the same run after a lost connection, and by running the command again. \
            The printed line is what `sha256sum -c` reads. Exits 0 when the file is verified, 1 otherwise.
            """
    )

    @Option(help: "The server's HTTP address, HOST:PORT (default: $SPOOL_HTTP, else 127.0.0.1:8889).")
    var http: String?

    @Option(help: "Download token (default: $SPOOL_TOKEN). Needed when the server has tokens.")
    var token: String?

    @OptionGroup var transport: TLSOptions

    @Option(name: .shortAndLong, help: ArgumentHelp(
        "Write to this file (default: the upload's name, its last component, in the current directory).", valueName: "file"))
    var output: String?

    @Flag(help: "Take the argument as a name even when it looks like an upload id.")
    var name = false

    @Flag(help: "Never draw a progress bar.")
    var quiet = false

    @Option(help: "Reconnect this many times after a transient failure.")
    var retries: Int = 5

    @Argument(help: "An upload id, or an upload's name.")
    var upload: String

    var address: String { http ?? ServerOptions.environment("SPOOL_HTTP") ?? "127.0.0.1:8889" }

    func validate() throws {
        guard HostPort(address).map({ $0.port > 0 }) == true else {
            throw ValidationError("--http must be HOST:PORT, got \"\(address)\"")
        }
        guard (0...100).contains(retries) else { throw ValidationError("--retries must be from 0 to 100") }
        if output?.isEmpty == true { throw ValidationError("--output must not be empty") }
        if upload.isEmpty { throw ValidationError("name an upload id or a name") }
    }

    func run() throws {
        let downloader = Downloader(server: address)
        downloader.token = token ?? ServerOptions.environment("SPOOL_TOKEN")
        downloader.retries = retries
        downloader.tls = transport.client
        let bar = quiet ? nil : ProgressBar(label: upload)
        downloader.progress = { done, total in bar?.update(sent: done, total: total) }
        downloader.notice = { message in
            bar?.finish()
            printError("spool: \(message)")
        }
        let path = !name && UploadID.isValid(upload) ? Downloader.path(id: upload) : Downloader.path(name: upload)
        do {
            let result = try downloader.download(path, to: output)
            bar?.finish()
            print("\(result.sha256)  \(result.path)")
        } catch {
            bar?.finish()
            printError("spool: \(error)")
            throw ExitCode(1)
        }
    }
}
