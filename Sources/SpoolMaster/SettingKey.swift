#if canImport(Glibc)
import Glibc
#endif

/// One setting of `spoold serve`: the same name as a flag (`--max-file-size`), a
/// key in the configuration file (`max-file-size = 2G`) and an environment
/// variable (`SPOOL_MAX_FILE_SIZE=2G`). The table below is the whole list; the
/// typed values are read from it in `Settings.resolve`.
public struct SettingKey: Sendable, Hashable {
    /// What HUP does when the value changes in the file.
    public enum Reload: Sendable {
        /// Applied: workers started from then on (HUP replaces them all) use the new value.
        case onHUP
        /// Logged and left: takes a restart or a USR2 upgrade.
        case restart
    }

    public let name: String
    /// The value when no layer sets it, as a user would write it; nil: unset.
    public let defaultText: String?
    /// What a value must look like, for error messages: "a size like 500M or 2G".
    public let expected: String
    public let reload: Reload
    /// Given more than once on the command line or in the file, each time adding a value.
    public let repeats: Bool
    /// Masked by `spoold config show` and in logs.
    public let secret: Bool

    public init(
        _ name: String, default defaultText: String?, expected: String, reload: Reload,
        repeats: Bool = false, secret: Bool = false
    ) {
        self.name = name
        self.defaultText = defaultText
        self.expected = expected
        self.reload = reload
        self.repeats = repeats
        self.secret = secret
    }

    public var flag: String { "--" + name }
    public var environmentName: String { "SPOOL_" + name.uppercased().replacingOccurrences(of: "-", with: "_") }

    public static func == (a: SettingKey, b: SettingKey) -> Bool { a.name == b.name }
    public func hash(into hasher: inout Hasher) { hasher.combine(name) }
}

extension SettingKey {
    static let size = "a size like 500M, 2G or 1T"
    static let duration = "a duration like 90s, 30m, 24h or 7d"
    static let address = "HOST:PORT with a numeric host (IPv6 as [::1]:PORT) and a port from 0 to 65535"
    static let boolean = "true or false"
    static let path = "a file path"

    public static let dataDir = SettingKey("data-dir", default: "var", expected: "a directory path", reload: .restart)
    public static let listen = SettingKey("listen", default: "127.0.0.1:8888", expected: address, reload: .restart)
    public static let http = SettingKey("http", default: "127.0.0.1:8889", expected: address + ", or none", reload: .restart)
    public static let metrics = SettingKey(
        "metrics", default: "none", expected: "a loopback HOST:PORT (127.0.0.1:9464, [::1]:9464), or none", reload: .restart)
    public static let corsOrigin = SettingKey(
        "cors-origin", default: nil, expected: "an origin like https://app.example.com (no path), or *", reload: .onHUP,
        repeats: true)
    /// By default one worker per CPU core.
    public static let workers = SettingKey(
        "workers", default: String(sysconf(Int32(_SC_NPROCESSORS_ONLN))), expected: "a number from 1 to 512", reload: .onHUP)
    public static let logLevel = SettingKey(
        "log-level", default: "info", expected: "trace, debug, info, notice, warning, error or critical", reload: .onHUP)
    public static let logFormat = SettingKey("log-format", default: "text", expected: "text or json", reload: .restart)
    public static let logFile = SettingKey("log-file", default: nil, expected: path, reload: .restart)
    public static let gracefulTimeout = SettingKey(
        "graceful-timeout", default: "30", expected: "seconds from 0 to 86400", reload: .onHUP)
    // Workers beat once a second: a shorter timeout would kill healthy ones.
    public static let timeout = SettingKey("timeout", default: "60", expected: "seconds from 2 to 86400", reload: .onHUP)
    public static let partialTTL = SettingKey("partial-ttl", default: "24h", expected: duration, reload: .onHUP)
    public static let retain = SettingKey(
        "retain", default: "complete=forever,failed=7d,expired=7d",
        expected: "STATE=AGE pairs for complete, failed, expired, lost, like complete=90d,failed=7d (AGE a duration or forever)",
        reload: .onHUP)
    public static let maxFileSize = SettingKey("max-file-size", default: "1T", expected: size, reload: .onHUP)
    public static let minFree = SettingKey("min-free", default: "1G", expected: size, reload: .onHUP)
    public static let idleTimeout = SettingKey("idle-timeout", default: "5m", expected: duration + ", at least 1s", reload: .onHUP)
    public static let lineTimeout = SettingKey("line-timeout", default: "30s", expected: duration + ", at least 1s", reload: .onHUP)
    public static let stallTimeout = SettingKey("stall-timeout", default: "2m", expected: duration + ", at least 1s", reload: .onHUP)
    public static let maxConnections = SettingKey("max-connections", default: "1000", expected: "a number of at least 1", reload: .onHUP)
    public static let maxClientConnections = SettingKey(
        "max-client-connections", default: "100", expected: "a number of at least 1", reload: .onHUP)
    public static let allowAnonymous = SettingKey("allow-anonymous", default: "false", expected: boolean, reload: .onHUP)
    public static let tlsCert = SettingKey("tls-cert", default: nil, expected: path, reload: .onHUP)
    public static let tlsKey = SettingKey("tls-key", default: nil, expected: path, reload: .onHUP)
    public static let allowPlaintext = SettingKey("allow-plaintext", default: "false", expected: boolean, reload: .restart)
    public static let hookDir = SettingKey("hook-dir", default: nil, expected: "a directory path", reload: .onHUP)
    public static let hook = SettingKey(
        "hook", default: nil,
        expected: "NAME=COMMAND with NAME one of pre-create, post-finish, post-fail, post-expire, post-delete", reload: .onHUP,
        repeats: true)
    public static let preCreateTimeout = SettingKey(
        "pre-create-timeout", default: "5s", expected: duration + ", from 0.1s to 5m", reload: .onHUP)
    public static let hookTimeout = SettingKey("hook-timeout", default: "10m", expected: duration + ", at least 1s", reload: .onHUP)
    public static let hookRetry = SettingKey(
        "hook-retry", default: "1s", expected: duration + ", from 0.01s to 5m (the first wait; it doubles)", reload: .onHUP)
    public static let objects = SettingKey(
        "objects", default: nil, expected: "s3://BUCKET[/PREFIX], with AWS_ENDPOINT_URL and the AWS_* credentials set", reload: .restart)
    public static let partSize = SettingKey("part-size", default: "8M", expected: "a size from 5M to 64M, in whole MiB", reload: .restart)
    /// Masked by `config show`: the URL may hold the password.
    public static let database = SettingKey(
        "database", default: nil, expected: "postgres://USER[:PASSWORD]@HOST[:PORT]/DATABASE (or PGPASSWORD for the password)",
        reload: .restart, secret: true)
    public static let maxBootFailures = SettingKey(
        "max-boot-failures", default: "5", expected: "a number from 1 to 1000", reload: .onHUP)

    /// Every setting, in the order `spoold config show` prints them.
    public static let all: [SettingKey] = [
        dataDir, listen, http, metrics, corsOrigin, workers, logLevel, logFormat, logFile,
        gracefulTimeout, timeout, partialTTL, retain, maxFileSize, minFree, idleTimeout, lineTimeout, stallTimeout,
        maxConnections, maxClientConnections, allowAnonymous, tlsCert, tlsKey, allowPlaintext, maxBootFailures,
        hookDir, hook, preCreateTimeout, hookTimeout, hookRetry, objects, partSize, database,
    ]

    public static func named(_ name: String) -> SettingKey? { all.first { $0.name == name } }

    /// The known name closest to a misspelt one, if it is close (for "did you mean").
    static func closest(to name: String, among names: [String]) -> String? {
        let scored = names.map { ($0, editDistance(name, $0)) }.min { $0.1 < $1.1 }
        guard let (best, distance) = scored, distance <= max(2, name.count / 4) else { return nil }
        return best
    }

    /// Levenshtein's, one row at a time.
    static func editDistance(_ a: String, _ b: String) -> Int {
        let b = Array(b)
        var previous = Array(0...b.count)
        for (i, x) in a.enumerated() {
            var current = [i + 1]
            for (j, y) in b.enumerated() {
                current.append(min(previous[j + 1] + 1, current[j] + 1, previous[j] + (x == y ? 0 : 1)))
            }
            previous = current
        }
        return previous[b.count]
    }
}

/// Where a setting's value came from: `spoold config show` prints it, and every
/// error names it.
public enum SettingSource: Sendable, Equatable, CustomStringConvertible {
    case builtIn
    case file(path: String, line: Int)
    case environment(String)
    case flag(String)

    public var description: String {
        switch self {
        case .builtIn: "default"
        case .file(let path, let line): "\(path):\(line)"
        case .environment(let name): name
        case .flag(let flag): flag
        }
    }
}
