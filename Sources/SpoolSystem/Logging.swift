#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Logging

/// One log line per event on standard error, in a form both people and `grep` read:
/// `2026-11-25T08:40:01.123Z spoold[1234] info master: worker spawned pid=1240 slot=2`.
/// The pid is read on each line because workers inherit the handler across fork.
public struct SpoolLogHandler: LogHandler {
    public var logLevel: Logger.Level
    public var metadata: Logger.Metadata = [:]
    private let label: String

    public init(label: String, level: Logger.Level) {
        self.label = label
        self.logLevel = level
    }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    public func log(event: LogEvent) {
        var line = "\(UTCTime.now()) spoold[\(getpid())] \(event.level) \(label): \(event.message)"
        let merged = event.metadata.map { metadata.merging($0) { $1 } } ?? metadata
        for key in merged.keys.sorted() {
            line += " \(key)=\(merged[key].map { "\($0)" } ?? "")"
        }
        line += "\n"
        // One write per line: lines from master and workers never interleave mid-line.
        line.utf8CString.withUnsafeBytes { raw in
            _ = try? Files.writeAll(STDERR_FILENO, UnsafeRawBufferPointer(rebasing: raw.dropLast()))
        }
    }
}

public enum SpoolLogging {
    /// Installs the handler once per process, before any fork, so workers inherit it.
    public static func bootstrap(level: Logger.Level) {
        LoggingSystem.bootstrap { label in SpoolLogHandler(label: label, level: level) }
    }
}
