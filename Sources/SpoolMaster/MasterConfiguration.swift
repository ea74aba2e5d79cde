import SpoolHooks
import SpoolStore
import SpoolWorker

/// One address the master listens on, and the protocol spoken there.
public struct ListenerSpec: Sendable, Equatable {
    public enum Kind: String, Sendable {
        /// The line protocol (docs/PROTOCOL.md).
        case line
        /// HTTP/1.1 (docs/HTTP.md).
        case http
        /// HTTP/1.1 for /metrics, /healthz and /readyz only, without a token; loopback only (docs/OPERATIONS.md).
        case metrics
    }

    public var kind: Kind
    public var host: String
    public var port: Int

    public init(_ kind: Kind, host: String, port: Int) {
        self.kind = kind
        self.host = host
        self.port = port
    }

    public var isLoopback: Bool { host.hasPrefix("127.") || host == "::1" }
}

public struct MasterConfiguration: Sendable {
    /// The line protocol's listener first, then the others.
    public var listeners: [ListenerSpec]
    public var directory: DataDirectory
    public var workers: Int
    /// QUIT and HUP: how long in-flight uploads may take to finish before their worker is stopped.
    public var gracefulTimeout: Double = 30
    /// A worker whose heartbeat is older than this is aborted and replaced.
    public var timeout: Double = 60
    /// Consecutive early worker deaths after which the master gives up.
    public var maxBootFailures = 5
    /// The catalog and blob store of every process the master starts (and its
    /// own); by default SQLite and the spool directory in the data directory.
    public var backends = StoreBackends()
    /// Interrupted uploads not resumed within this many seconds expire.
    public var partialTTL: Double = 86_400
    /// Finished uploads removed by age and state, by the master's chores (`--retain`).
    public var retention = RetentionPolicy()
    /// The pre-create hook (run by workers) and the notification hooks (run by the dispatcher).
    public var hooks = HookConfiguration()
    /// What workers enforce: sizes, space, quotas, timeouts, connections, anonymous access.
    public var limits = ServerLimits()
    /// Where log lines go instead of standard error (reopened on USR1).
    public var logFile: String?
    /// The PEM certificate chain and key every listener serves (read again on HUP); nil: plain text.
    public var tlsFiles: (certificate: String, key: String)?
    /// Serve plain text on an address that is not loopback (tokens and files then cross the network in clear).
    public var allowPlaintext = false
    /// The checked settings this configuration was made from, and the sources to
    /// read again on HUP (nil when made in code, as tests do).
    public var settings: Settings?
    public var settingSources: SettingSources?

    public init(listeners: [ListenerSpec], directory: DataDirectory, workers: Int) {
        self.listeners = listeners
        self.directory = directory
        self.workers = workers
    }
}

/// How long to wait before starting a worker again after `failures` early deaths in a row.
public enum Backoff {
    public static let base = 0.5
    public static let cap = 30.0

    public static func delay(afterFailures failures: Int) -> Double {
        guard failures > 0 else { return 0 }
        return min(cap, base * Double(1 << min(failures - 1, 16)))
    }
}

/// The master's exit codes.
public enum MasterExit {
    public static let stopped: Int32 = 0
    /// Workers kept dying at start; the master gave up (the log says why).
    public static let workersFailing: Int32 = 3
}
