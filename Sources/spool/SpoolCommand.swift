import ArgumentParser
import SpoolClient
import SpoolProtocol
import SpoolSystem

#if canImport(Glibc)
import Glibc
#endif

@main
struct SpoolCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "spool",
        abstract: "The Spool client: upload files to a spoold server.",
        version: "0.1.0",
        subcommands: [Upload.self, Download.self, Status.self, Watch.self, Chat.self]
    )
}

/// How to speak TLS, shared by every command that connects (docs/TLS.md).
struct TLSOptions: ParsableArguments {
    @Flag(help: "Speak TLS to the server (one started with --tls-cert); the certificate must be valid for the host name used.")
    var tls = false

    @Option(help: ArgumentHelp(
        "Trust the certificate authorities in this PEM file instead of the system's (implies --tls).", valueName: "file"))
    var cacert: String?

    @Flag(help: "Speak TLS without checking the server's certificate at all (implies --tls). Anyone on the path can then read and change everything.")
    var insecure = false

    func validate() throws {
        if cacert != nil && insecure { throw ValidationError("--cacert and --insecure contradict each other: choose one") }
        if cacert?.isEmpty == true { throw ValidationError("--cacert must name a file") }
    }

    /// nil for plain text; says on standard error when nothing is checked.
    var client: ClientTLS? {
        guard tls || cacert != nil || insecure else { return nil }
        if insecure { printError("spool: warning: --insecure: the server's certificate is not checked; this connection can be read and changed by anyone on the path") }
        return ClientTLS(caFile: cacert, insecure: insecure)
    }
}

struct ServerOptions: ParsableArguments {
    @Option(help: "Server address, HOST:PORT (default: $SPOOL_SERVER, else 127.0.0.1:8888).")
    var server: String?

    @OptionGroup var transport: TLSOptions

    @Option(help: "Upload token (default: $SPOOL_TOKEN). Needed when the server has tokens.")
    var token: String?

    @Option(name: .customLong("protocol"), help: ArgumentHelp(
        "Speak at most this protocol version, 1 to \(ProtocolInfo.version) (to act as an older client).", valueName: "version"))
    var maxVersion: Int = ProtocolInfo.version

    func validate() throws {
        guard (1...ProtocolInfo.version).contains(maxVersion) else {
            throw ValidationError("--protocol must be from 1 to \(ProtocolInfo.version)")
        }
    }

    /// --server, else $SPOOL_SERVER, else the default address.
    var address: String { server ?? Self.environment("SPOOL_SERVER") ?? "127.0.0.1:8888" }

    /// --token, else $SPOOL_TOKEN.
    var resolvedToken: String? { token ?? Self.environment("SPOOL_TOKEN") }

    static func environment(_ name: String) -> String? {
        guard let value = getenv(name) else { return nil }
        let text = String(cString: value)
        return text.isEmpty ? nil : text
    }

    func connect() throws(ClientError) -> Connection {
        try Connection(server: address, token: resolvedToken, maxVersion: maxVersion, tls: transport.client)
    }
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

    @Flag(name: [.short, .long], help: "Upload every file under each directory named, under its relative path (dir/sub/file).")
    var recursive = false

    @Option(help: ArgumentHelp(
        "When to send each file's SHA-256: auto (after the body for files of 1 MiB or more, hashed while sending), "
            + "first (hash, then send: reads each file twice), or after.",
        valueName: "when"))
    var checksum: String = ChecksumPlacement.auto.rawValue

    @Option(help: ArgumentHelp(
        "Also upload the files named in this file, one per line (- for standard input).",
        discussion: "For thousands of files: the argument parser's cost grows with the square of the number of arguments.",
        valueName: "list"))
    var filesFrom: String?

    @Argument(help: "Files to upload.")
    var files: [String] = []

    func validate() throws {
        if files.isEmpty && filesFrom == nil { throw ValidationError("name at least one file to upload") }
        guard (0...100).contains(retries) else { throw ValidationError("--retries must be from 0 to 100") }
        if let limitRate, ByteSize.parse(limitRate).map({ $0 > 0 }) != true {
            throw ValidationError("--limit-rate must be a positive number of bytes, like 500K or 10M")
        }
        if ChecksumPlacement(rawValue: checksum) == nil {
            throw ValidationError("--checksum must be one of: \(ChecksumPlacement.allCases.map(\.rawValue).joined(separator: ", "))")
        }
        if !recursive, let directory = files.first(where: Files.isDirectory) {
            throw ValidationError("\(directory) is a directory; use --recursive to upload every file under it")
        }
    }

    func run() throws {
        var options = UploadOptions()
        options.retries = retries
        options.limitRate = limitRate.flatMap(ByteSize.parse)
        options.journal = noResume ? nil : ResumeJournal(directory: ResumeJournal.defaultDirectory())
        options.token = server.resolvedToken
        options.maxVersion = server.maxVersion
        options.tls = server.transport.client
        options.checksum = ChecksumPlacement(rawValue: checksum) ?? .auto
        var paths = files
        if let filesFrom {
            do { paths += try Self.lines(of: filesFrom) } catch {
                printError("spool: \(error)")
                throw ExitCode(1)
            }
        }
        // Every argument is checked, and every directory walked, before connecting.
        let tree: UploadTree
        do { tree = try UploadTree(paths, recursive: recursive) } catch {
            printError("spool: \(error)")
            throw ExitCode(1)
        }
        for skipped in tree.skipped { printError("spool: skipped \(skipped)") }
        let uploader = Uploader(server: server.address, options: options)
        let display = UploadDisplay(files: tree.files, whole: tree.hasDirectory, quiet: quiet)
        uploader.notice = { display.notice($0) }
        uploader.upload(
            files: tree.files.map { (path: $0.path, name: $0.name) }, progress: display.progress(for:),
            done: display.done)
        display.summarize()
        if display.failures > 0 { throw ExitCode(1) }
    }
}

extension Upload {
    /// The non-empty lines of `path` (standard input for `-`), without their line endings.
    static func lines(of path: String) throws(SystemError) -> [String] {
        let opened = path == "-" ? fdopen(dup(STDIN_FILENO), "r") : fopen(path, "r")
        guard let file = opened else { throw .last("open", path) }
        defer { fclose(file) }
        var lines: [String] = []
        var buffer: UnsafeMutablePointer<CChar>?
        var capacity = 0
        defer { free(buffer) }
        while true {
            let n = getline(&buffer, &capacity, file)
            if n < 0 { break }
            guard let buffer else { continue }
            var bytes = UnsafeRawBufferPointer(start: buffer, count: n)[...]
            while let last = bytes.last, last == UInt8(ascii: "\n") || last == UInt8(ascii: "\r") { bytes = bytes.dropLast() }
            if !bytes.isEmpty { lines.append(String(decoding: bytes, as: UTF8.self)) }
        }
        if ferror(file) != 0 { throw .last("read", path) }
        return lines
    }
}

struct Status: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Show an upload's status, by id or by name (the newest upload with that name).",
        discussion: "Exits 0 when complete, 2 when failed or expired, 3 while in progress or interrupted, 4 when unknown, 1 on errors."
    )

    @OptionGroup var server: ServerOptions

    @Argument(help: "An upload id, or a file name.")
    var upload: String

    func run() throws {
        try reportStatus(server, of: upload) { inquiry throws(ClientError) in try inquiry.status(of: upload) }
    }
}

struct Watch: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Follow an upload with a progress bar until it ends.",
        discussion: "Exit codes as for `spool status`."
    )

    @OptionGroup var server: ServerOptions

    @Argument(help: "An upload id.")
    var id: String

    func validate() throws {
        if !UploadID.isValid(id) { throw ValidationError("\"\(id)\" is not an upload id (26 characters)") }
    }

    func run() throws {
        let bar = ProgressBar(label: id)
        try reportStatus(server, of: id) { inquiry throws(ClientError) in
            defer { bar.finish() }
            return try inquiry.watch(id) { status in bar.update(sent: status.received, total: status.size) }
        }
    }
}

struct Chat: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Talk to the server's line protocol: type commands (HELP lists them), see the replies.",
        discussion: "Reads lines from standard input, so it also works in a pipe. Ends on QUIT or at the end of input."
    )

    @OptionGroup var server: ServerOptions

    func run() throws {
        let connection: Connection
        do { connection = try server.connect() } catch {
            printError("spool: \(error)")
            throw ExitCode(1)
        }
        let code = ChatPrompt(connection: connection, interactive: isatty(STDIN_FILENO) == 1).run()
        if code != 0 { throw ExitCode(code) }
    }
}

/// Asks the server about an upload, prints the status it ends with, and exits
/// with that status's code (docs: `spool status --help`).
func reportStatus(_ server: ServerOptions, of upload: String, _ ask: (Inquiry) throws(ClientError) -> UploadStatus?) throws {
    let status: UploadStatus?
    do {
        status = try ask(Inquiry(connection: try server.connect()))
    } catch {
        printError("spool: \(error)")
        throw ExitCode(StatusExit.error)
    }
    guard let status else {
        printError("spool: no upload \(upload)")
        throw ExitCode(StatusExit.unknown)
    }
    print(status.text)
    throw ExitCode(status.exitCode)
}

func printError(_ message: String) {
    var bytes = Array((message + "\n").utf8)
    bytes.withUnsafeMutableBytes { raw in _ = write(STDERR_FILENO, raw.baseAddress, raw.count) }
}
