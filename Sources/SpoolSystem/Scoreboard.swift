import CSpoolSys

/// Shared memory in which each worker publishes how it is doing: its heartbeat,
/// its open connections and the progress of each upload it receives (the idea of
/// Apache httpd's scoreboard). Mapped by the master before it forks, so every
/// process sees the same pages; reading it costs no system call, and a slow disk
/// cannot stall it as a heartbeat file could.
public struct Scoreboard: @unchecked Sendable {
    /// Boards, hence workers that can exist at once (old and new overlap during a reload).
    public static let capacity = Int(SPOOL_BOARD_WORKERS)
    let base: UnsafeMutablePointer<spool_worker_board>

    public static func create() throws(SystemError) -> Scoreboard {
        guard let base = spool_scoreboard_create() else { throw .last("mmap", "scoreboard") }
        return Scoreboard(base: base)
    }

    public func board(_ index: Int) -> WorkerBoard {
        WorkerBoard(board: spool_scoreboard_board(base, Int32(index)), index: index)
    }

    /// How many workers the master wants (it updates this on every turn of its loop).
    public var wantedWorkers: Int {
        get { Int(spool_scoreboard_wanted(base)) }
        nonmutating set { spool_scoreboard_set_wanted(base, UInt64(max(0, newValue))) }
    }

    /// Workers whose last heartbeat is at most `seconds` old: up and not stuck.
    public func workersBeating(within seconds: Double) -> Int {
        let now = spool_monotonic_ms()
        let limit = UInt64(seconds * 1000)
        return (0..<Self.capacity).filter { index in
            let beat = board(index).heartbeat
            return beat > 0 && now &- beat <= limit
        }.count
    }

    /// A live upload's progress, from whichever worker is receiving it.
    public func progress(of id: String) -> LiveProgress? {
        var found = spool_upload_progress()
        guard spool_scoreboard_find(base, id, &found) == 1 else { return nil }
        return LiveProgress(
            received: Int64(found.received), size: Int64(found.size), rate: Int64(found.rate),
            updatedMilliseconds: found.updated_ms)
    }

    /// Workers that are up, their open connections, and the uploads they are receiving.
    public func totals() -> (workers: Int, connections: Int, uploads: Int) {
        var workers = 0
        var connections = 0
        for index in 0..<Self.capacity {
            let board = self.board(index)
            guard board.heartbeat > 0 else { continue }
            workers += 1
            connections += board.connections
        }
        return (workers, connections, Int(spool_scoreboard_live_uploads(base)))
    }

    public static func nowMilliseconds() -> UInt64 { spool_monotonic_ms() }

    /// Open connections from one client address, across every live worker. Addresses
    /// share buckets by hash, so two addresses can, rarely, be counted together.
    public func connections(from address: String) -> Int {
        Int(spool_scoreboard_client_connections(base, Int32(Self.bucket(address))))
    }

    static func bucket(_ address: String) -> Int {
        var hash: UInt32 = 2_166_136_261  // FNV-1a
        for byte in address.utf8 { hash = (hash ^ UInt32(byte)) &* 16_777_619 }
        return Int(hash % UInt32(SPOOL_CLIENT_BUCKETS))
    }
}

public struct LiveProgress: Sendable, Equatable {
    public let received: Int64
    public let size: Int64
    /// Bytes per second over the last half second or so.
    public let rate: Int64
    public let updatedMilliseconds: UInt64
}

/// One worker's board. The worker writes it; anyone may read it.
public struct WorkerBoard: @unchecked Sendable {
    public static let uploadSlots = Int(SPOOL_BOARD_UPLOADS)
    let board: UnsafeMutablePointer<spool_worker_board>
    public let index: Int

    init(board: UnsafeMutablePointer<spool_worker_board>, index: Int) {
        self.board = board
        self.index = index
    }

    /// 0 means "not ready yet"; otherwise CLOCK_MONOTONIC milliseconds of the last beat.
    public var heartbeat: UInt64 { spool_board_heartbeat(board) }
    public var connections: Int { Int(spool_board_connections(board)) }

    /// Clears the board for a new worker (by the master, before forking it).
    public func reset() { spool_board_reset(board) }

    @inline(__always)
    public func beat(at now: UInt64 = spool_monotonic_ms()) { spool_board_beat(board, now) }

    /// Counted by the accept thread the moment it accepts, so that the cap it checks
    /// before the next accept() already includes every connection handed to NIO.
    public func connectionAccepted() { spool_board_add_connections(board, 1) }
    public func connectionEnded() { spool_board_add_connections(board, -1) }

    public func clientConnected(from address: String) {
        spool_board_client_add(board, Int32(Scoreboard.bucket(address)), 1)
    }

    public func clientDisconnected(from address: String) {
        spool_board_client_add(board, Int32(Scoreboard.bucket(address)), -1)
    }

    public func claim(slot: Int, id: String, received: Int64, size: Int64) {
        spool_slot_claim(board, Int32(slot), id, UInt64(received), UInt64(size))
    }

    @inline(__always)
    public func publish(slot: Int, received: Int64, rate: Int64, at now: UInt64) {
        spool_slot_publish(board, Int32(slot), UInt64(received), UInt64(max(0, rate)), now)
    }

    public func release(slot: Int) { spool_slot_release(board, Int32(slot)) }
}
