import CSpoolSys

/// Heartbeats in memory shared by the master and its workers: each worker stores
/// the time in its own word, the master reads them all without a system call.
/// (A file's timestamp, as gunicorn uses, can block on a slow disk; this cannot.)
public struct HeartbeatTable: @unchecked Sendable {
    /// More words than workers can ever exist at once (old and new overlap during a reload).
    public static let capacity = 1024
    private let words: UnsafeMutablePointer<UInt64>

    /// Maps the table; call before forking so every worker shares it.
    public static func create() throws(SystemError) -> HeartbeatTable {
        guard let words = spool_heartbeats_create(Int32(capacity)) else { throw .last("mmap", "heartbeat table") }
        return HeartbeatTable(words: words)
    }

    /// 0 means "not ready yet"; otherwise the monotonic milliseconds of the last beat.
    public func last(_ index: Int) -> UInt64 { spool_heartbeat_load(words, Int32(index)) }
    public func reset(_ index: Int) { spool_heartbeat_store(words, Int32(index), 0) }
    public func beat(_ index: Int) { spool_heartbeat_store(words, Int32(index), spool_monotonic_ms()) }

    public static func nowMilliseconds() -> UInt64 { spool_monotonic_ms() }
}

/// One worker's word in the table.
public struct Heartbeat: Sendable {
    public let table: HeartbeatTable
    public let index: Int

    public init(table: HeartbeatTable, index: Int) {
        self.table = table
        self.index = index
    }

    @inline(__always)
    public func beat() { table.beat(index) }
}
