import SpoolSystem

#if canImport(Glibc)
import Glibc
#endif

/// Upload progress on standard error: a redrawn bar on a terminal, otherwise an
/// occasional plain line, so logs from scripts stay readable.
public final class ProgressBar {
    /// What the bar is about; may change as it goes (a count of files done).
    public var label: String
    private let isTerminal: Bool
    private let started = UTCTime.monotonic()
    private var lastDraw = 0.0
    private var drewBar = false

    public init(label: String, isTerminal: Bool = isatty(STDERR_FILENO) == 1) {
        self.label = label
        self.isTerminal = isTerminal
    }

    public func update(sent: Int64, total: Int64) {
        let now = UTCTime.monotonic()
        let interval = isTerminal ? 0.1 : 1.0
        guard now - lastDraw >= interval || (sent == total && isTerminal && drewBar) else { return }
        lastDraw = now
        let line = Self.render(label: label, sent: sent, total: total, elapsed: now - started, width: isTerminal ? 30 : 0)
        if isTerminal {
            drewBar = true
            write(stderr: "\r\u{1B}[K" + line)
        } else if now - started >= 1 {
            write(stderr: line + "\n")
        }
    }

    /// Clears the bar before the result line is printed.
    public func finish() {
        if isTerminal && drewBar { write(stderr: "\r\u{1B}[K") }
    }

    /// `1.2 MB`, `340.0 kB`: decimal units, as the rates.
    public static func formatBytes(_ bytes: Int64) -> String {
        let units = ["B", "kB", "MB", "GB", "TB"]
        var value = Double(bytes)
        var unit = 0
        while value >= 1000 && unit < units.count - 1 {
            value /= 1000
            unit += 1
        }
        if unit == 0 { return "\(bytes) B" }
        let tenths = Int((value * 10).rounded())
        return "\(tenths / 10).\(tenths % 10) \(units[unit])"
    }

    /// `name  42% [############..................]  118.3 MB/s  ETA 0:07`
    public static func render(label: String, sent: Int64, total: Int64, elapsed: Double, width: Int) -> String {
        let fraction = total > 0 ? Double(sent) / Double(total) : 1
        let percent = Int(fraction * 100)
        let rate = elapsed > 0 ? Double(sent) / elapsed : 0
        var text = "\(label)  \(percent)%"
        if width > 0 {
            let filled = Int(fraction * Double(width))
            text += " [" + String(repeating: "#", count: filled) + String(repeating: ".", count: width - filled) + "]"
        }
        text += "  \(formatRate(rate))"
        if rate > 0 && sent < total {
            let eta = Int(Double(total - sent) / rate)
            text += "  ETA \(eta / 60):" + (eta % 60 < 10 ? "0" : "") + "\(eta % 60)"
        }
        return text
    }

    static func formatRate(_ bytesPerSecond: Double) -> String {
        let mb = bytesPerSecond / 1_000_000
        let tenths = Int((mb * 10).rounded())
        return "\(tenths / 10).\(tenths % 10) MB/s"
    }

    private func write(stderr text: String) {
        var bytes = Array(text.utf8)
        bytes.withUnsafeMutableBytes { raw in _ = try? Files.writeAll(STDERR_FILENO, UnsafeRawBufferPointer(raw)) }
    }
}
