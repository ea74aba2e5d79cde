import SpoolStore
import SpoolSystem

/// GET /metrics in Prometheus' text exposition format (0.0.4): counters end in
/// `_total`, units are in the names, as Prometheus' naming conventions ask.
/// `render` is pure: it formats what it is given, so its output is tested without a server.
enum MetricsText {
    struct Gauges: Sendable {
        /// Open connections by worker board index, for workers that are up.
        var connections: [(board: Int, count: Int)] = []
        var workersUp = 0
        var workersWanted = 0
        var uploadsInFlight = 0
        var freeBytes: Int64?
        var reservedFreeBytes: Int64 = 0
        var databaseBytes: Int64?
        /// With notification hooks: events after the dispatcher's cursor, and the age of the oldest.
        var hookLag: (events: Int64, seconds: Int64)?

        /// Reads them now. On the thread pool: it asks the file system.
        static func read(store: Store, scoreboard: Scoreboard, minFree: Int64, hooks: Bool = false) -> Gauges {
            var gauges = Gauges()
            let live = scoreboard.totals()
            gauges.workersUp = live.workers
            gauges.workersWanted = scoreboard.wantedWorkers
            gauges.uploadsInFlight = live.uploads
            gauges.connections = (0..<Scoreboard.capacity).compactMap { index in
                let board = scoreboard.board(index)
                return board.heartbeat > 0 ? (index, board.connections) : nil
            }
            gauges.freeBytes = try? store.freeBytes()
            gauges.reservedFreeBytes = minFree
            let database = store.directory.databasePath
            gauges.databaseBytes = [database, database + "-wal"].reduce(Int64(0)) { sum, path in
                sum + ((try? Files.size(path)).flatMap { $0 } ?? 0)
            }
            if hooks, let ledger = try? store.hookLedger(failures: 0) {
                let oldest = ledger.oldestPendingAt.flatMap(UTCTime.epochSeconds)
                gauges.hookLag = (ledger.pending, oldest.map { max(0, UTCTime.epochMilliseconds() / 1000 - $0) } ?? 0)
            }
            return gauges
        }
    }

    static let contentType = "text/plain; version=0.0.4; charset=utf-8"

    static func render(totals: [UInt64], gauges: Gauges) -> String {
        func value(_ metric: Metric, _ door: UploadDoor? = nil) -> UInt64 {
            let index = Int(metric.rawValue + (door?.rawValue ?? 0))
            return index < totals.count ? totals[index] : 0
        }
        func byDoor(_ metric: Metric) -> [(labels: String, value: String)] {
            UploadDoor.allCases.map { ("{protocol=\"\($0.label)\"}", "\(value(metric, $0))") }
        }
        var out = ""
        func family(_ name: String, _ type: String, _ help: String, _ samples: [(labels: String, value: String)]) {
            out += "# HELP \(name) \(help)\n# TYPE \(name) \(type)\n"
            for sample in samples { out += "\(name)\(sample.labels) \(sample.value)\n" }
        }
        family("spool_uploads_started_total", "counter", "Uploads admitted (new ones; resumes are not counted again), by protocol.",
               byDoor(.uploadsStarted))
        family("spool_uploads_completed_total", "counter", "Uploads stored durably and verified, by the protocol that began them.",
               byDoor(.uploadsCompleted))
        family("spool_uploads_refused_total", "counter", "Uploads refused at admission: size limit, quota, free space, or the pre-create hook.",
               [("", "\(value(.uploadsRefused))")])
        family("spool_uploads_failed_total", "counter", "Uploads that ended failed, by reason.", [
            ("{reason=\"checksum\"}", "\(value(.uploadsFailedChecksum))"),
            ("{reason=\"limit\"}", "\(value(.uploadsFailedLimit))"),
            ("{reason=\"storage\"}", "\(value(.uploadsFailedStorage))"),
            ("{reason=\"abandoned\"}", "\(value(.uploadsAbandoned))"),
        ])
        family("spool_uploads_interrupted_total", "counter", "Uploads cut before their end, kept for a resume.",
               [("", "\(value(.uploadsInterrupted))")])
        family("spool_received_bytes_total", "counter", "Upload body bytes received and written, by protocol.",
               byDoor(.bytesReceived))
        func histogram(_ name: String, _ help: String, _ h: Histogram) {
            func slot(_ index: Int32) -> UInt64 { Int(index) < totals.count ? totals[Int(index)] : 0 }
            var cumulative: UInt64 = 0
            var samples: [(labels: String, value: String)] = []
            for (offset, bound) in h.bounds.enumerated() {
                cumulative += slot(h.base + Int32(offset))
                samples.append(("_bucket{le=\"\(bound)\"}", "\(cumulative)"))
            }
            cumulative += slot(h.base + Int32(h.bounds.count))
            samples.append(("_bucket{le=\"+Inf\"}", "\(cumulative)"))
            samples.append(("_sum", decimal(slot(h.slots.upperBound - 2), scale: h.scale)))
            samples.append(("_count", "\(slot(h.slots.upperBound - 1))"))
            family(name, "histogram", help, samples)
        }
        histogram("spool_upload_duration_seconds", "From an upload's start (or resume) to its bytes durable and its row complete.",
                  .uploadDuration)
        histogram("spool_commit_seconds", "A batch of durable changes to the database: its transaction and COMMIT.", .commit)
        histogram("spool_wal_sync_seconds", "The write-ahead log's sync after a batch of durable changes.", .logSync)
        histogram("spool_file_sync_seconds", "Making uploaded files durable: fsync for one, syncfs for several.", .fileSync)
        histogram("spool_commit_batch_size", "Changes sharing one durable commit (group commit).", .commitBatch)
        family("spool_worker_deaths_total", "counter", "Workers that exited without being asked (each is replaced).",
               [("", "\(value(.workerDeaths))")])
        family("spool_watchdog_aborts_total", "counter", "Workers aborted by the watchdog for a stale heartbeat.",
               [("", "\(value(.watchdogAborts))")])
        family("spool_hook_deliveries_total", "counter", "Events delivered to their notification hook (exit 0).",
               [("", "\(value(.hookDeliveries))")])
        family("spool_hook_failures_total", "counter", "Notification hook runs that failed (each is tried again).",
               [("", "\(value(.hookFailures))")])
        if let lag = gauges.hookLag {
            family("spool_hook_lag_events", "gauge", "Events in the log after the hook dispatcher's cursor.", [("", "\(lag.events)")])
            family("spool_hook_lag_seconds", "gauge", "Age of the oldest event after the hook dispatcher's cursor (0 when none).",
                   [("", "\(lag.seconds)")])
        }
        family("spool_workers", "gauge", "Workers up (a heartbeat), and how many the master wants.",
               [("{state=\"up\"}", "\(gauges.workersUp)"), ("{state=\"wanted\"}", "\(gauges.workersWanted)")])
        family("spool_connections", "gauge", "Open connections, by worker board.",
               gauges.connections.map { ("{worker=\"\($0.board)\"}", "\($0.count)") })
        family("spool_uploads_in_flight", "gauge", "Uploads being received now.", [("", "\(gauges.uploadsInFlight)")])
        if let free = gauges.freeBytes {
            family("spool_spool_free_bytes", "gauge", "Free space where the uploads are stored.", [("", "\(free)")])
        }
        family("spool_spool_min_free_bytes", "gauge", "Free space the server keeps (--min-free).",
               [("", "\(gauges.reservedFreeBytes)")])
        if let database = gauges.databaseBytes {
            family("spool_database_bytes", "gauge", "Size of the database and its write-ahead log.", [("", "\(database)")])
        }
        return out
    }

    /// `value / scale` written exactly: scale is 1 or a power of ten.
    static func decimal(_ value: UInt64, scale: Double) -> String {
        let divisor = UInt64(scale)
        guard divisor > 1 else { return "\(value)" }
        let digits = String(divisor).count - 1
        let fraction = String(value % divisor)
        return "\(value / divisor).\(String(repeating: "0", count: digits - fraction.count))\(fraction)"
    }
}
