import ArgumentParser
import Logging
import SpoolMaster
import SpoolStore
import SpoolSystem

#if canImport(Glibc)
import Glibc
#endif

struct Serve: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run the server: bind, migrate, fork workers, supervise them."
    )

    @OptionGroup var data: DataDirectoryOptions

    @Option(help: "Address to listen on, HOST:PORT (IPv6 as [::1]:PORT). Port 0 picks a free port.")
    var listen: String = "127.0.0.1:8888"

    @Option(help: "Number of worker processes (default: the number of CPU cores).")
    var workers: Int = Int(sysconf(Int32(_SC_NPROCESSORS_ONLN)))

    @Option(help: "Log level: trace, debug, info, notice, warning, error, critical.")
    var logLevel: String = "info"

    func validate() throws {
        guard ListenAddress(listen) != nil else {
            throw ValidationError("--listen must be HOST:PORT with a numeric host and a port from 0 to 65535, got \"\(listen)\"")
        }
        guard (1...512).contains(workers) else { throw ValidationError("--workers must be from 1 to 512") }
        guard Logger.Level(rawValue: logLevel) != nil else { throw ValidationError("unknown --log-level \"\(logLevel)\"") }
    }

    func run() throws {
        SpoolLogging.bootstrap(level: Logger.Level(rawValue: logLevel) ?? .info)
        guard let address = ListenAddress(listen) else { throw ValidationError("bad --listen") }
        let config = MasterConfiguration(
            host: address.host, port: address.port, directory: DataDirectory(data.dataDir), workers: workers)
        let code: Int32
        do {
            code = try Arbiter(config: config).run()
        } catch {
            Logger(label: "master").critical("cannot start: \(error)")
            throw ExitCode(1)
        }
        throw ExitCode(code)
    }
}

/// `HOST:PORT` or `[IPV6]:PORT`.
struct ListenAddress {
    let host: String
    let port: Int

    init?(_ text: String) {
        let hostPart: Substring
        let portPart: Substring
        if text.hasPrefix("[") {
            guard let close = text.firstIndex(of: "]"), text[text.index(after: close)...].hasPrefix(":") else { return nil }
            hostPart = text[text.index(after: text.startIndex)..<close]
            portPart = text[text.index(close, offsetBy: 2)...]
        } else {
            guard let colon = text.lastIndex(of: ":") else { return nil }
            hostPart = text[..<colon]
            portPart = text[text.index(after: colon)...]
        }
        guard !hostPart.isEmpty, let port = Int(portPart), (0...65535).contains(port) else { return nil }
        host = String(hostPart)
        self.port = port
    }
}
