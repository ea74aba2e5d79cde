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
    /// Upload durations, one counter per bucket of `UploadDuration.bounds` and one past the last.
    case durationBucket0, durationBucket1, durationBucket2, durationBucket3, durationBucket4, durationBucketInf
    case durationMilliseconds
    case durationCount
    /// Master: workers that exited without being asked (each is replaced).
    case workerDeaths
    /// Master: workers the watchdog aborted for a stale heartbeat.
    case watchdogAborts
}

/// The buckets of `spool_upload_duration_seconds`: from the upload's start (or its
/// resume) to its bytes being durable and its row complete.
public enum UploadDuration {
    public static let bounds: [Double] = [0.1, 1, 10, 60, 600]
    static let buckets: [Metric] = [.durationBucket0, .durationBucket1, .durationBucket2, .durationBucket3, .durationBucket4]

    public static func bucket(seconds: Double) -> Metric {
        for (bound, metric) in zip(bounds, buckets) where seconds <= bound { return metric }
        return .durationBucketInf
    }
}

extension WorkerBoard {
    public func count(_ metric: Metric, by amount: UInt64 = 1) {
        spool_board_metric_add(board, metric.rawValue, amount)
    }

    /// A metric kept per door (`uploadsStarted`, `uploadsCompleted`, `bytesReceived`).
    public func count(_ metric: Metric, door: UploadDoor, by amount: UInt64 = 1) {
        spool_board_metric_add(board, metric.rawValue + door.rawValue, amount)
    }

    /// A finished upload's duration, into the histogram.
    public func observe(uploadSeconds seconds: Double) {
        count(UploadDuration.bucket(seconds: seconds))
        count(.durationMilliseconds, by: UInt64(max(0, seconds * 1000)))
        count(.durationCount)
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
