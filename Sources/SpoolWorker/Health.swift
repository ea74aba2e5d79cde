import SpoolStore
import SpoolSystem

/// Whether this server should be sent traffic (GET /readyz, HEALTH), and if not,
/// which check failed. The same three checks on both doors.
struct HealthReport: Sendable, Equatable {
    struct Check: Sendable, Equatable {
        let name: String
        let ok: Bool
        let detail: String
    }

    let checks: [Check]

    var ready: Bool { checks.allSatisfy(\.ok) }

    /// `database ok; disk ok (…); workers ok (2 of 2)`: one line, for the line protocol.
    var summary: String {
        checks.map { "\($0.name) \($0.ok ? "ok" : "FAIL") (\($0.detail))" }.joined(separator: "; ")
    }

    /// One check per line, for HTTP.
    var text: String {
        (ready ? "ready\n" : "not ready\n") + checks.map { "\($0.name) \($0.ok ? "ok" : "FAIL"): \($0.detail)\n" }.joined()
    }
}

enum Health {
    /// A worker whose last heartbeat is older than this is not counted as up
    /// (it beats every second from its event loop, and on every body chunk).
    static let heartbeatFreshness = 10.0

    /// Runs on the thread pool: it takes the database's write lock for a moment.
    static func check(store: Store, scoreboard: Scoreboard, minFree: Int64, draining: Bool) -> HealthReport {
        var checks: [HealthReport.Check] = []
        do {
            try store.probeWritable()
            checks.append(.init(name: "database", ok: true, detail: "writable"))
        } catch {
            checks.append(.init(name: "database", ok: false, detail: "cannot be written: \(error)"))
        }
        do {
            let free = try store.freeBytes()
            checks.append(.init(name: "disk", ok: free >= minFree, detail: "\(free) bytes free, \(minFree) kept free (--min-free)"))
        } catch {
            checks.append(.init(name: "disk", ok: false, detail: "cannot read the free space: \(error)"))
        }
        let wanted = scoreboard.wantedWorkers
        let up = scoreboard.workersBeating(within: heartbeatFreshness)
        if draining {
            checks.append(.init(name: "workers", ok: false, detail: "this worker is shutting down"))
        } else {
            checks.append(.init(name: "workers", ok: wanted > 0 && up >= wanted, detail: "\(up) of \(wanted) up"))
        }
        return HealthReport(checks: checks)
    }
}
