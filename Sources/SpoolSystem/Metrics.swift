import CSpoolSys

/// The door an upload came in by: the `protocol` label of the counters kept per door.
public enum UploadDoor: Int32, CaseIterable, Sendable {
    case line = 0, http, tus

    public var label: String {
        switch self {
        case .line: "line"
        case .http: "http"
        case .tus: "tus"
        }
    }
}

/// The counters behind GET /metrics. Each worker adds to its own board; the master
/// adds its own events to its board, and moves a dead worker's counts there before
/// the board is reused (`Scoreboard.retireMetrics`), so a sum never goes backwards
/// while the master lives. Indices are slots in shared memory, one master's alone
/// (a new master after USR2 maps its own). A metric kept per door takes one slot
/// per `UploadDoor`, from its raw value on.
public enum Metric: Int32, CaseIterable, Sendable {
    /// Per door.
    case uploadsStarted = 0
    /// Per door.
    case uploadsCompleted = 3
    /// Per door.
    case bytesReceived = 6
    /// Refused at admission: over the size limit or a quota, or no space.
    case uploadsRefused = 9
    case uploadsFailedChecksum
    /// A body of unknown length outgrew a limit.
    case uploadsFailedLimit
    case uploadsFailedStorage
    /// Its checksum never came, or it could not be resumed.
    case uploadsAbandoned
    case uploadsInterrupted
    /// Master: workers that exited without being asked (each is replaced).
    case workerDeaths
    /// Master: workers the watchdog aborted for a stale heartbeat.
    case watchdogAborts
    /// The hook dispatcher (on the master's board): events its hooks took, and runs that failed.
    case hookDeliveries
    case hookFailures
}

/// A histogram's slots: one counter per bucket (`le` each bound, then +Inf), then
/// the sum of the observed values times `scale` (whole numbers in shared memory),
/// then their count. Slots from 32 on belong to histograms.
public struct Histogram: Sendable {
    public let base: Int32
    public let bounds: [Double]
    /// The sum is kept as value × scale: 1000 keeps seconds to the millisecond.
    public let scale: Double

    var sumSlot: Int32 { base + Int32(bounds.count) + 1 }
    var countSlot: Int32 { sumSlot + 1 }
    public var slots: Range<Int32> { base..<(countSlot + 1) }

    public func bucket(_ value: Double) -> Int32 {
        base + Int32(bounds.firstIndex { value <= $0 } ?? bounds.count)
    }

    /// From an upload's start (or resume) to its bytes durable and its row complete.
    public static let uploadDuration = Histogram(base: 32, bounds: [0.1, 1, 10, 60, 600], scale: 1000)
    /// A batch of durable changes: the transaction and its COMMIT (SQLite).
    public static let commit = Histogram(base: 40, bounds: [0.001, 0.005, 0.025, 0.1, 0.5, 2.5], scale: 1_000_000)
    /// The write-ahead log's fdatasync after a durable batch.
    public static let logSync = Histogram(base: 49, bounds: [0.001, 0.005, 0.025, 0.1, 0.5, 2.5], scale: 1_000_000)
    /// Making uploaded files durable: an fsync for one, a syncfs for several.
    public static let fileSync = Histogram(base: 58, bounds: [0.001, 0.005, 0.025, 0.1, 0.5, 2.5], scale: 1_000_000)
    /// Changes sharing one durable commit (group commit).
    public static let commitBatch = Histogram(base: 67, bounds: [1, 2, 4, 8, 16, 64], scale: 1)
}

extension WorkerBoard {
    public func count(_ metric: Metric, by amount: UInt64 = 1) {
        spool_board_metric_add(board, metric.rawValue, amount)
    }

    /// A metric kept per door (`uploadsStarted`, `uploadsCompleted`, `bytesReceived`).
    public func count(_ metric: Metric, door: UploadDoor, by amount: UInt64 = 1) {
        spool_board_metric_add(board, metric.rawValue + door.rawValue, amount)
    }

    public func observe(_ histogram: Histogram, _ value: Double) {
        spool_board_metric_add(board, histogram.bucket(value), 1)
        spool_board_metric_add(board, histogram.sumSlot, UInt64(max(0, value * histogram.scale)))
        spool_board_metric_add(board, histogram.countSlot, 1)
    }
}

extension Scoreboard {
    /// The master's own board: its counters and the retired workers' totals.
    public var master: WorkerBoard { WorkerBoard(board: spool_scoreboard_master(base), index: Self.capacity) }

    /// Before a dead worker's board is reset: its counts join the retired totals.
    public func retireMetrics(ofBoard index: Int) {
        spool_scoreboard_retire_metrics(base, Int32(index))
    }

    /// Every metric summed over all boards, as of one instant; indexed by `Metric.rawValue`.
    public func metricTotals() -> [UInt64] {
        var totals = [UInt64](repeating: 0, count: Int(SPOOL_METRICS))
        totals.withUnsafeMutableBufferPointer { spool_scoreboard_metric_totals(base, $0.baseAddress) }
        return totals
    }
}
