import Logging
import SpoolHooks
import SpoolProtocol
import SpoolStore
import SpoolSystem

/// One value (or, for a repeated key, several) and where it was set.
public struct Assignment: Sendable, Equatable {
    public var values: [String]
    public var source: SettingSource

    public init(_ values: [String], from source: SettingSource) {
        self.values = values
        self.source = source
    }
}

/// The values one source sets, by setting name.
public typealias SettingLayer = [String: Assignment]

/// Something wrong with one setting (or one line of the file), and where.
public struct SettingsProblem: Sendable, Equatable, CustomStringConvertible {
    public let source: SettingSource?
    public let key: String?
    public let message: String

    public var description: String {
        switch source {
        case .flag(let flag)?: "\(flag): \(message)"
        case .environment(let name)?: "\(name): \(message)"
        case .file?:
            "\(source?.description ?? ""): " + (key.map { "\($0): " } ?? "") + message
        case .builtIn?, nil:
            (key.map { "\($0): " } ?? "") + message
        }
    }
}

/// Every problem found, so one `spoold config check` shows them all.
public struct SettingsError: Error, Sendable, Equatable, CustomStringConvertible {
    public let problems: [SettingsProblem]
    public init(_ problems: [SettingsProblem]) { self.problems = problems }
    public var description: String { problems.map(\.description).joined(separator: "\n") }
}

/// The layers in the order they win: flags over the environment over the file.
public struct SettingSources: Sendable {
    public var flags: SettingLayer
    public var environment: [String: String]
    public var file: SettingsFile?

    public init(flags: SettingLayer = [:], environment: [String: String] = [:], file: SettingsFile? = nil) {
        self.flags = flags
        self.environment = environment
        self.file = file
    }

    /// Flags, environment, file: in the order they win.
    func layers(_ problems: inout [SettingsProblem]) -> [SettingLayer] {
        [flags, environmentLayer(), fileLayer(&problems)]
    }

    /// The file's entries as a layer; unknown keys and keys set twice are problems.
    func fileLayer(_ problems: inout [SettingsProblem]) -> SettingLayer {
        guard let file else { return [:] }
        problems += file.problems
        var layer: SettingLayer = [:]
        for entry in file.entries {
            let source = SettingSource.file(path: file.path, line: entry.line)
            guard let key = SettingKey.named(entry.key) else {
                let hint = SettingKey.closest(to: entry.key, among: SettingKey.all.map(\.name)).map { " (did you mean \($0)?)" } ?? ""
                problems.append(SettingsProblem(source: source, key: nil, message: "unknown key \"\(entry.key)\"\(hint)"))
                continue
            }
            if var earlier = layer[key.name] {
                guard key.repeats else {
                    problems.append(SettingsProblem(source: source, key: key.name, message: "set twice (first at \(earlier.source))"))
                    continue
                }
                earlier.values.append(entry.value)
                layer[key.name] = earlier
            } else {
                layer[key.name] = Assignment([entry.value], from: source)
            }
        }
        return layer
    }

    /// `SPOOL_…` variables that name a setting; a repeated setting's values are separated by commas.
    func environmentLayer() -> SettingLayer {
        var layer: SettingLayer = [:]
        for key in SettingKey.all {
            guard let text = environment[key.environmentName] else { continue }
            let values = key.repeats ? text.split(separator: ",").map { $0.trimmingWhitespace() }.filter { !$0.isEmpty } : [text]
            layer[key.name] = Assignment(values, from: .environment(key.environmentName))
        }
        return layer
    }

    /// `SPOOL_…` variables that are neither a setting nor one the client, tests or an upgrade use:
    /// likely misspelt, so logged (not refused: the prefix is shared with the `spool` client).
    public func strayEnvironment() -> [(name: String, didYouMean: String?)] {
        let settings = SettingKey.all.map(\.environmentName)
        let known = Set(settings).union(Self.otherVariables)
        return environment.keys.filter { $0.hasPrefix("SPOOL_") && !known.contains($0) }.sorted().map {
            ($0, SettingKey.closest(to: $0, among: settings))
        }
    }

    static let otherVariables: Set<String> = [
        "SPOOL_CONFIG", "SPOOL_TOKEN", "SPOOL_SERVER", "SPOOL_HTTP", "SPOOL_STATE_DIR", "SPOOL_UPGRADE_FROM",
        "SPOOL_FAULT", "SPOOL_CRASH_AT",
    ]
}

/// Everything `spoold serve` runs with, checked, and where each value came from.
public struct Settings: Sendable {
    public var dataDir: String
    public var listen: HostPort
    public var http: HostPort?
    /// A listener of its own for /metrics, /healthz and /readyz, without a token: loopback only.
    public var metrics: HostPort?
    public var corsOrigins: [String]
    public var workers: Int
    public var logLevel: Logger.Level
    public var logFormat: LogFormat
    public var logFile: String?
    public var gracefulTimeout: Double
    public var timeout: Double
    public var partialTTL: Double
    public var retention: RetentionPolicy
    public var maxFileSize: Int64
    public var minFree: Int64
    public var idleTimeout: Double
    public var lineTimeout: Double
    public var stallTimeout: Double
    public var maxConnections: Int
    public var maxClientConnections: Int
    public var allowAnonymous: Bool
    public var tlsCert: String?
    public var tlsKey: String?
    public var allowPlaintext: Bool
    public var maxBootFailures: Int
    public var hooks: HookConfiguration
    /// Where the bytes go: nil for the spool directory, else an S3 URL (docs/SCALING.md).
    public var objects: String?
    public var partSize: Int64
    /// Where the catalog is: nil for SQLite in the data directory, else a PostgreSQL URL (docs/SCALING.md).
    public var database: String?
    /// The winning assignment of every setting, defaults included.
    public var assignments: SettingLayer

    /// Flags over the environment over the file over the defaults; every problem at once.
    public static func resolve(_ sources: SettingSources) -> Result<Settings, SettingsError> {
        var problems: [SettingsProblem] = []
        let layers = sources.layers(&problems)
        return resolve(layers: layers, problems: problems)
    }

    /// The value of `data-dir` alone, for commands that need nothing else (`spoold admin`).
    public static func dataDirectory(_ sources: SettingSources) -> String {
        value(.dataDir, sources) { $0 } ?? "var"
    }

    /// The value of `retain` alone (`spoold admin stats`); nil when it does not parse.
    public static func retention(_ sources: SettingSources) -> RetentionPolicy? {
        value(.retain, sources) { RetentionPolicy($0) }
    }

    /// `objects` and `part-size` alone (`spoold admin`): nil objects for the spool directory.
    public static func objectStore(_ sources: SettingSources) -> (objects: String?, partSize: Int64) {
        (value(.objects, sources) { $0 }, value(.partSize, sources) { partSize($0) } ?? 8 << 20)
    }

    /// `database` alone (`spoold admin`): nil for SQLite in the data directory.
    public static func catalogURL(_ sources: SettingSources) -> String? {
        value(.database, sources) { isDatabaseURL($0) ? $0 : nil }
    }

    static func isDatabaseURL(_ text: String) -> Bool {
        (text.hasPrefix("postgres://") || text.hasPrefix("postgresql://")) && text.contains("@") && text.contains("/")
    }

    static func partSize(_ text: String) -> Int64? {
        ByteSize.parse(text).flatMap { (5 << 20...64 << 20).contains($0) && $0 % (1 << 20) == 0 ? $0 : nil }
    }

    /// One setting read through the layers, the others' problems left to `serve`.
    static func value<T>(_ key: SettingKey, _ sources: SettingSources, _ parse: (String) -> T?) -> T? {
        var ignored: [SettingsProblem] = []
        var reader = SettingsReader(layers: sources.layers(&ignored), problems: [])
        return reader.value(key, parse)
    }

    static func resolve(layers: [SettingLayer], problems: [SettingsProblem]) -> Result<Settings, SettingsError> {
        var reader = SettingsReader(layers: layers, problems: problems)
        let settings = Settings(reading: &reader)
        guard reader.problems.isEmpty else { return .failure(SettingsError(reader.problems)) }
        return .success(settings)
    }

    private init(reading r: inout SettingsReader) {
        dataDir = r.text(.dataDir, notEmpty: true) ?? "var"
        listen = r.value(.listen, HostPort.init) ?? HostPort(host: "127.0.0.1", port: 8888)
        http = r.value(.http) { $0 == "none" ? .some(nil) : HostPort($0).map { .some($0) } } ?? nil
        metrics = r.value(.metrics) { text -> HostPort?? in
            if text == "none" { return .some(nil) }
            guard let address = HostPort(text), ListenerSpec(.metrics, host: address.host, port: address.port).isLoopback else { return nil }
            return .some(address)
        } ?? nil
        corsOrigins = r.list(.corsOrigin) { CORSPolicy.isValidOrigin($0) ? $0 : nil }
        workers = r.value(.workers) { Int($0).flatMap { (1...512).contains($0) ? $0 : nil } } ?? 1
        logLevel = r.value(.logLevel) { Logger.Level(rawValue: $0) } ?? .info
        logFormat = r.value(.logFormat) { LogFormat(rawValue: $0) } ?? .text
        logFile = r.text(.logFile, notEmpty: true)
        gracefulTimeout = r.value(.gracefulTimeout) { Double($0).flatMap { (0...86_400).contains($0) ? $0 : nil } } ?? 30
        timeout = r.value(.timeout) { Double($0).flatMap { (2...86_400).contains($0) ? $0 : nil } } ?? 60
        partialTTL = r.value(.partialTTL) { DurationText.seconds($0) } ?? 86_400
        retention = r.value(.retain) { RetentionPolicy($0) } ?? RetentionPolicy()
        maxFileSize = r.value(.maxFileSize) { ByteSize.parse($0) } ?? 1 << 40
        minFree = r.value(.minFree) { ByteSize.parse($0) } ?? 1 << 30
        idleTimeout = r.value(.idleTimeout, Self.atLeastASecond) ?? 300
        lineTimeout = r.value(.lineTimeout, Self.atLeastASecond) ?? 30
        stallTimeout = r.value(.stallTimeout, Self.atLeastASecond) ?? 120
        maxConnections = r.value(.maxConnections, Self.positive) ?? 1000
        maxClientConnections = r.value(.maxClientConnections, Self.positive) ?? 100
        allowAnonymous = r.value(.allowAnonymous, Self.boolean) ?? false
        tlsCert = r.text(.tlsCert, notEmpty: true)
        tlsKey = r.text(.tlsKey, notEmpty: true)
        allowPlaintext = r.value(.allowPlaintext, Self.boolean) ?? false
        maxBootFailures = r.value(.maxBootFailures) { Int($0).flatMap { (1...1000).contains($0) ? $0 : nil } } ?? 5
        hooks = HookConfiguration()
        hooks.directory = r.text(.hookDir, notEmpty: true)
        for line in r.list(.hook, { HookConfiguration.parseCommand($0) == nil ? nil : $0 }) {
            if let (name, command) = HookConfiguration.parseCommand(line) { hooks.commands[name] = command }
        }
        hooks.preCreateTimeout = r.value(.preCreateTimeout) { DurationText.seconds($0).flatMap { (0.1...300).contains($0) ? $0 : nil } } ?? 5
        hooks.timeout = r.value(.hookTimeout, Self.atLeastASecond) ?? 600
        objects = r.value(.objects) { $0.hasPrefix("s3://") && $0.count > 5 ? $0 : nil }
        partSize = r.value(.partSize) { Self.partSize($0) } ?? 8 << 20
        database = r.value(.database) { Self.isDatabaseURL($0) ? $0 : nil }
        hooks.backoff = r.value(.hookRetry) { DurationText.seconds($0).flatMap { (0.01...300).contains($0) ? $0 : nil } } ?? 1
        if (tlsCert == nil) != (tlsKey == nil) {
            let given = tlsCert == nil ? SettingKey.tlsKey : SettingKey.tlsCert
            r.problems.append(SettingsProblem(
                source: r.assignments[given.name]?.source, key: given.name,
                message: "tls-cert and tls-key go together: give both, or neither for plain text"))
        }
        assignments = r.assignments
    }

    static func atLeastASecond(_ text: String) -> Double? { DurationText.seconds(text).flatMap { $0 >= 1 ? $0 : nil } }
    static func positive(_ text: String) -> Int? { Int(text).flatMap { $0 >= 1 ? $0 : nil } }
    static func boolean(_ text: String) -> Bool? {
        switch text.lowercased() {
        case "true", "yes", "on", "1": true
        case "false", "no", "off", "0": false
        default: nil
        }
    }
}

/// Reads each setting from the first layer that sets it, records where it came
/// from, and collects every value that does not parse.
struct SettingsReader {
    let layers: [SettingLayer]
    var problems: [SettingsProblem]
    var assignments: SettingLayer = [:]

    mutating func assignment(_ key: SettingKey) -> Assignment? {
        let found = layers.lazy.compactMap { $0[key.name] }.first
            ?? key.defaultText.map { Assignment([$0], from: .builtIn) }
        assignments[key.name] = found
        return found
    }

    mutating func value<T>(_ key: SettingKey, _ parse: (String) -> T?) -> T? {
        guard let assignment = assignment(key), let text = assignment.values.last else { return nil }
        guard let value = parse(text) else {
            problems.append(SettingsProblem(source: assignment.source, key: key.name, message: "expected \(key.expected), got \"\(text)\""))
            return nil
        }
        return value
    }

    mutating func text(_ key: SettingKey, notEmpty: Bool) -> String? {
        value(key) { notEmpty && $0.isEmpty ? nil : $0 }
    }

    mutating func list(_ key: SettingKey, _ parse: (String) -> String?) -> [String] {
        guard let assignment = assignment(key) else { return [] }
        for text in assignment.values where parse(text) == nil {
            problems.append(SettingsProblem(source: assignment.source, key: key.name, message: "expected \(key.expected), got \"\(text)\""))
        }
        return assignment.values.compactMap(parse)
    }
}
