import ArgumentParser
import SpoolClient
import SpoolProtocol

#if canImport(Glibc)
import Glibc
#endif

@main
struct SpoolCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "spool",
        abstract: "The Spool client: upload files to a spoold server.",
        version: "0.1.0",
        subcommands: [Upload.self]
    )
}

struct ServerOptions: ParsableArguments {
    @Option(help: "Server address, HOST:PORT.")
    var server: String = "127.0.0.1:8888"
}

struct Upload: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Upload files; prints `<id> <sha256> <file>` for each one verified by the server.",
        discussion: "Exits 0 when every file was stored and verified, 1 when any failed."
    )

    @OptionGroup var server: ServerOptions

    @Flag(help: "Never draw a progress bar.")
    var quiet = false

    @Argument(help: "Files to upload.")
    var files: [String]

    func validate() throws {
        if files.isEmpty { throw ValidationError("name at least one file to upload") }
    }

    func run() throws {
        var connection: Connection?
        var failures = 0
        for path in files {
            do throws(ClientError) {
                let current: Connection
                if let open = connection { current = open } else { current = try Connection(server: server.server) }
                connection = current
                let name = path.split(separator: "/").last.map(String.init) ?? path
                let bar = quiet ? nil : ProgressBar(label: name)
                let result = try Uploader(connection: current).upload(path: path, name: name) { sent, total in
                    bar?.update(sent: sent, total: total)
                }
                bar?.finish()
                print("\(result.id) \(result.sha256) \(path)")
                fflush(nil)
            } catch {
                failures += 1
                printError("spool: \(path): \(error)")
                // After anything but a clean refusal the stream's framing is unknown: start afresh.
                if case .refused = error {} else { connection = nil }
            }
        }
        if failures > 0 { throw ExitCode(1) }
    }
}

func printError(_ message: String) {
    var bytes = Array((message + "\n").utf8)
    bytes.withUnsafeMutableBytes { raw in _ = write(STDERR_FILENO, raw.baseAddress, raw.count) }
}
