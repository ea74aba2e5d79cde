import SpoolSystem

/// GET /metrics in Prometheus' text exposition format (0.0.4): counters end in
/// `_total`, units are in the names, as Prometheus' naming conventions ask. Pure:
/// it formats what it is given, so its output is tested without a server.
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
        family("spool_uploads_refused_total", "counter", "Uploads refused at admission: size limit, quota or free space.",
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
        var cumulative: UInt64 = 0
        var buckets: [(labels: String, value: String)] = []
        let metrics: [Metric] = [.durationBucket0, .durationBucket1, .durationBucket2, .durationBucket3, .durationBucket4]
        for (bound, metric) in zip(UploadDuration.bounds, metrics) {
            cumulative += value(metric)
            buckets.append(("_bucket{le=\"\(bound)\"}", "\(cumulative)"))
        }
        cumulative += value(.durationBucketInf)
        buckets.append(("_bucket{le=\"+Inf\"}", "\(cumulative)"))
        buckets.append(("_sum", seconds(milliseconds: value(.durationMilliseconds))))
        buckets.append(("_count", "\(value(.durationCount))"))
        family("spool_upload_duration_seconds", "histogram",
               "From an upload's start (or resume) to its bytes durable and its row complete.", buckets)
        family("spool_worker_deaths_total", "counter", "Workers that exited without being asked (each is replaced).",
               [("", "\(value(.workerDeaths))")])
        family("spool_watchdog_aborts_total", "counter", "Workers aborted by the watchdog for a stale heartbeat.",
               [("", "\(value(.watchdogAborts))")])
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

    static func seconds(milliseconds: UInt64) -> String {
        let whole = milliseconds / 1000, rest = milliseconds % 1000
        let fraction = String(rest)
        return "\(whole).\(String(repeating: "0", count: 3 - fraction.count))\(fraction)"
    }
}
