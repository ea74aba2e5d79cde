import SpoolSystem

/// Which refusals of the per-address connection limit get a log line: the 1st,
/// 10th, 100th… from one address, counting from one again after a quiet minute.
/// A flood of 1,000 refused connections then writes four lines, each with the
/// count so far, instead of a thousand. Pure, so it is tested without a clock.
struct RefusalCounter {
    static let quietSeconds = 60.0
    /// Addresses remembered at most; past it, the quiet ones are forgotten first.
    static let capacity = 4096

    private var entries: [String: (count: Int, last: Double)] = [:]

    /// Counts one refusal; returns the count when it deserves a log line.
    mutating func refused(_ address: String, now: Double) -> Int? {
        var entry = entries[address] ?? (count: 0, last: now)
        if now - entry.last >= Self.quietSeconds { entry.count = 0 }
        entry.count += 1
        entry.last = now
        if entries[address] == nil, entries.count >= Self.capacity {
            entries = entries.filter { now - $0.value.last < Self.quietSeconds }
            if entries.count >= Self.capacity { entries.removeAll() }
        }
        entries[address] = entry
        return Self.isPowerOfTen(entry.count) ? entry.count : nil
    }

    private static func isPowerOfTen(_ n: Int) -> Bool {
        var n = n
        while n >= 10, n % 10 == 0 { n /= 10 }
        return n == 1
    }
}

/// A worker's `RefusalCounter`, shared by both doors. Used only on the worker's
/// one event loop.
final class RefusalLog: @unchecked Sendable {
    private var counter = RefusalCounter()

    func refused(_ address: String) -> Int? {
        counter.refused(address, now: UTCTime.monotonic())
    }
}
