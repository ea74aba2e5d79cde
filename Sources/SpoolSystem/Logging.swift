#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Logging

/// How log lines are written: for people and `grep`, or for log shippers.
public enum LogFormat: String, Sendable, CaseIterable {
    /// `2026-11-25T08:40:01.123Z spoold[1234] info master: worker spawned pid=1240 slot=2`
    case text
    /// `{"time":"2026-11-25T08:40:01.123Z","process":"spoold","pid":1234,"level":"info",
    /// "label":"master","message":"worker spawned","meta_pid":"1240","slot":"2"}`: one
    /// object per line, the metadata as string fields beside the fixed ones (a key that
    /// collides with one of those gets a `meta_` prefix).
    case json
}

/// One log line per event on standard error, in the chosen `LogFormat`.
/// The pid is read on each line because workers inherit the handler across fork.
public struct SpoolLogHandler: LogHandler {
    /// Process-wide, not per logger: HUP changes it in the master (`log-level` in the
    /// configuration file) before forking the new workers, which inherit it.
    public var logLevel: Logger.Level {
        get { SpoolLogging.level }
        set { SpoolLogging.level = newValue }
    }
    public var metadata: Logger.Metadata = [:]
    private let label: String
    private let format: LogFormat

    public init(label: String, format: LogFormat = .text) {
        self.label = label
        self.format = format
    }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    public func log(event: LogEvent) {
        let merged = event.metadata.map { metadata.merging($0) { $1 } } ?? metadata
        var line: String
        switch format {
        case .text:
            line = "\(UTCTime.now()) spoold[\(getpid())] \(event.level) \(label): \(event.message)"
            for key in merged.keys.sorted() {
                line += " \(key)=\(merged[key].map { "\($0)" } ?? "")"
            }
        case .json:
            let fixed = ["time", "process", "pid", "level", "label", "message"]
            line = "{\"time\":\(Self.quote(UTCTime.now())),\"process\":\"spoold\",\"pid\":\(getpid()),"
                + "\"level\":\(Self.quote("\(event.level)")),\"label\":\(Self.quote(label)),\"message\":\(Self.quote("\(event.message)"))"
            for key in merged.keys.sorted() {
                let name = fixed.contains(key) ? "meta_" + key : key
                line += ",\(Self.quote(name)):\(Self.quote(merged[key].map { "\($0)" } ?? ""))"
            }
            line += "}"
        }
        line += "\n"
        // One write per line: lines from master and workers never interleave mid-line.
        line.utf8CString.withUnsafeBytes { raw in
            _ = try? Files.writeAll(STDERR_FILENO, UnsafeRawBufferPointer(rebasing: raw.dropLast()))
        }
    }
}

extension SpoolLogHandler {
    /// A JSON string: quotes, backslashes and control characters escaped (RFC 8259).
    static func quote(_ text: String) -> String {
        var out = "\""
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            case _ where scalar.value < 0x20:
                let hex = String(scalar.value, radix: 16)
                out += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
            default: out.unicodeScalars.append(scalar)
            }
        }
        return out + "\""
    }
}

public enum SpoolLogging {
    /// Installs the handler once per process, before any fork, so workers inherit it.
    public static func bootstrap(level: Logger.Level, format: LogFormat = .text) {
        self.level = level
        LoggingSystem.bootstrap { label in SpoolLogHandler(label: label, format: format) }
    }

    private static let lock = Lock()
    nonisolated(unsafe) private static var current = Logger.Level.info

    /// The level every logger of this process logs at. (A lock, not an atomic: the
    /// package still builds for macOS 13; a log line is far dearer than the lock.)
    public static var level: Logger.Level {
        get { lock.withLock { current } }
        set { lock.withLock { current = newValue } }
    }
}
