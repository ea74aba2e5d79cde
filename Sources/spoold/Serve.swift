import ArgumentParser
import Logging
import SpoolMaster
import SpoolStore
import SpoolSystem
import SpoolProtocol
import SpoolWorker

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

    @Option(help: "Address for HTTP (docs/HTTP.md), HOST:PORT, or none. Port 0 picks a free port.")
    var http: String = "127.0.0.1:8889"

    @Option(help: ArgumentHelp(
        "A web origin whose pages may call the HTTP door (CORS), like https://app.example.com, or * for any; repeat for more.",
        valueName: "origin"))
    var corsOrigin: [String] = []

    @Option(help: "Number of worker processes (default: the number of CPU cores).")
    var workers: Int = Int(sysconf(Int32(_SC_NPROCESSORS_ONLN)))

    @Option(help: "Log level: trace, debug, info, notice, warning, error, critical.")
    var logLevel: String = "info"

    @Option(help: "Log lines as text (key=value, for people and grep) or json (one object per line, for log shippers).")
    var logFormat: String = "text"

    @Option(help: "Append log lines to this file instead of standard error (reopened on USR1).")
    var logFile: String?

    @Option(help: "Seconds that in-flight uploads get to finish on QUIT or HUP.")
    var gracefulTimeout: Double = 30

    @Option(help: "Seconds without a heartbeat after which a worker is aborted and replaced.")
    var timeout: Double = 60

    @Option(help: ArgumentHelp("Interrupted uploads not resumed within this time expire: 90s, 30m, 24h, 7d.", valueName: "duration"))
    var partialTTL = DurationValue("24h")

    @Option(help: ArgumentHelp("Largest upload accepted, checked against the declared size: 500M, 2G, 1T.", valueName: "size"))
    var maxFileSize = SizeValue("1T")

    @Option(help: ArgumentHelp("Free space that must remain after every upload in flight has arrived: 500M, 2G.", valueName: "size"))
    var minFree = SizeValue("1G")

    @Option(help: ArgumentHelp("Close a connection that sends no command for this long: 30s, 5m.", valueName: "duration"))
    var idleTimeout = DurationValue("5m")

    @Option(help: ArgumentHelp("Close a connection whose command line is not finished within this long.", valueName: "duration"))
    var lineTimeout = DurationValue("30s")

    @Option(help: ArgumentHelp(
        "Close a connection whose upload body stops moving for this long (the upload stays resumable).", valueName: "duration"))
    var stallTimeout = DurationValue("2m")

    @Option(help: "Connections one worker serves at once; at the cap it stops accepting.")
    var maxConnections: Int = 1000

    @Option(help: "Connections from one client address, across all workers.")
    var maxClientConnections: Int = 100

    @Flag(help: "Serve clients without a token even when tokens exist or the address is not loopback.")
    var allowAnonymous = false

    @Option(help: ArgumentHelp(
        "PEM certificate chain (leaf first) that both listeners serve over TLS; read again on HUP (docs/TLS.md).", valueName: "file"))
    var tlsCert: String?

    @Option(help: ArgumentHelp("PEM private key of --tls-cert (no passphrase).", valueName: "file"))
    var tlsKey: String?

    @Flag(help: "Serve plain text on an address that is not loopback: tokens and files then cross the network in clear.")
    var allowPlaintext = false

    @Option(help: "Early worker deaths in a row after which the server gives up and exits 3.")
    var maxBootFailures: Int = 5

    func validate() throws {
        guard HostPort(listen) != nil else {
            throw ValidationError("--listen must be HOST:PORT with a numeric host and a port from 0 to 65535, got \"\(listen)\"")
        }
        guard http == "none" || HostPort(http) != nil else {
            throw ValidationError("--http must be HOST:PORT with a numeric host and a port from 0 to 65535, or none, got \"\(http)\"")
        }
        for origin in corsOrigin where !CORSPolicy.isValidOrigin(origin) {
            throw ValidationError("--cors-origin takes an origin like https://app.example.com (no path), or *, got \"\(origin)\"")
        }
        guard (1...512).contains(workers) else { throw ValidationError("--workers must be from 1 to 512") }
        guard Logger.Level(rawValue: logLevel) != nil else { throw ValidationError("unknown --log-level \"\(logLevel)\"") }
        guard LogFormat(rawValue: logFormat) != nil else {
            throw ValidationError("--log-format must be text or json, got \"\(logFormat)\"")
        }
        guard gracefulTimeout >= 0 && gracefulTimeout <= 86_400 else {
            throw ValidationError("--graceful-timeout must be from 0 to 86400 seconds")
        }
        // Workers beat once a second: a shorter timeout would kill healthy ones.
        guard timeout >= 2 && timeout <= 86_400 else { throw ValidationError("--timeout must be from 2 to 86400 seconds") }
        guard (1...1000).contains(maxBootFailures) else { throw ValidationError("--max-boot-failures must be from 1 to 1000") }
        for (option, value) in [("--idle-timeout", idleTimeout), ("--line-timeout", lineTimeout), ("--stall-timeout", stallTimeout)]
        where value.seconds < 1 {
            throw ValidationError("\(option) takes a duration of at least 1s, like 30s or 5m, got \"\(value.text)\"")
        }
        guard maxConnections >= 1 && maxClientConnections >= 1 else {
            throw ValidationError("--max-connections and --max-client-connections must be at least 1")
        }
        if logFile?.isEmpty == true { throw ValidationError("--log-file must not be empty") }
        guard (tlsCert == nil) == (tlsKey == nil) else {
            throw ValidationError("--tls-cert and --tls-key go together: give both, or neither for plain text")
        }
    }

    func run() throws {
        SpoolLogging.bootstrap(level: Logger.Level(rawValue: logLevel) ?? .info, format: LogFormat(rawValue: logFormat) ?? .text)
        guard let address = HostPort(listen) else { throw ValidationError("bad --listen") }
        var listeners = [ListenerSpec(.line, host: address.host, port: address.port)]
        if let web = HostPort(http) { listeners.append(ListenerSpec(.http, host: web.host, port: web.port)) }
        var config = MasterConfiguration(listeners: listeners, directory: DataDirectory(data.dataDir), workers: workers)
        config.gracefulTimeout = gracefulTimeout
        config.timeout = timeout
        config.maxBootFailures = maxBootFailures
        config.logFile = logFile
        if let tlsCert, let tlsKey { config.tlsFiles = (tlsCert, tlsKey) }
        config.allowPlaintext = allowPlaintext
        config.partialTTL = partialTTL.seconds
        config.limits.admission.maxFileSize = maxFileSize.bytes
        config.limits.admission.minFreeBytes = minFree.bytes
        config.limits.timeouts = Session.Timeouts(idle: idleTimeout.seconds, line: lineTimeout.seconds, stall: stallTimeout.seconds)
        config.limits.maxConnectionsPerWorker = maxConnections
        config.limits.maxConnectionsPerClient = maxClientConnections
        config.limits.allowAnonymous = allowAnonymous
        config.limits.loopback = listeners.allSatisfy(\.isLoopback)
        config.limits.cors = CORSPolicy(origins: corsOrigin)
        config.limits.partialTTL = config.partialTTL
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
