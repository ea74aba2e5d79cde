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
        discussion: """
            A lost connection or a 4xx reply is retried with backoff, resuming from the bytes the server \
            already stored. Running the command again on a file whose upload was cut resumes it too: the \
            client remembers upload ids in $SPOOL_STATE_DIR (default ~/.local/state/spool). \
            Exits 0 when every file was stored and verified, 1 when any failed.
            """
    )

    @OptionGroup var server: ServerOptions

    @Flag(help: "Never draw a progress bar.")
    var quiet = false

    @Option(help: "Reconnect this many times per file after a transient failure.")
    var retries: Int = 5

    @Option(help: "Send at most this many bytes per second (suffixes K, M, G: powers of 1024).")
    var limitRate: String?

    @Flag(help: "Start every upload afresh instead of resuming a remembered one.")
    var noResume = false

    @Argument(help: "Files to upload.")
    var files: [String]

    func validate() throws {
        if files.isEmpty { throw ValidationError("name at least one file to upload") }
        guard (0...100).contains(retries) else { throw ValidationError("--retries must be from 0 to 100") }
        if let limitRate, ByteCount.parse(limitRate).map({ $0 > 0 }) != true {
            throw ValidationError("--limit-rate must be a positive number of bytes, like 500K or 10M")
        }
    }

    func run() throws {
        var options = UploadOptions()
        options.retries = retries
        options.limitRate = limitRate.flatMap(ByteCount.parse)
        options.journal = noResume ? nil : ResumeJournal(directory: ResumeJournal.defaultDirectory())
        let uploader = Uploader(server: server.server, options: options)
        var failures = 0
        for path in files {
            let name = path.split(separator: "/").last.map(String.init) ?? path
            let bar = quiet ? nil : ProgressBar(label: name)
            uploader.notice = { message in
                bar?.finish()
                printError("spool: \(path): \(message)")
            }
            do {
                let result = try uploader.upload(path: path, name: name) { sent, total in
                    bar?.update(sent: sent, total: total)
                }
                bar?.finish()
                print("\(result.id) \(result.sha256) \(path)")
                fflush(nil)
            } catch {
                bar?.finish()
                failures += 1
                printError("spool: \(path): \(error)")
            }
        }
        if failures > 0 { throw ExitCode(1) }
    }
}

/// `1048576`, `512K`, `10M`, `2G`.
enum ByteCount {
    static func parse(_ text: String) -> Int64? {
        let scales: [Character: Int64] = ["K": 1 << 10, "M": 1 << 20, "G": 1 << 30]
        var digits = Substring(text)
        var scale: Int64 = 1
        if let last = text.uppercased().last, let s = scales[last] {
            digits = digits.dropLast()
            scale = s
        }
        guard let value = Int64(digits), value >= 0 else { return nil }
        let (product, overflow) = value.multipliedReportingOverflow(by: scale)
        return overflow ? nil : product
    }
}

func printError(_ message: String) {
    var bytes = Array((message + "\n").utf8)
    bytes.withUnsafeMutableBytes { raw in _ = write(STDERR_FILENO, raw.baseAddress, raw.count) }
}
