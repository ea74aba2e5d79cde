import SpoolSystem

/// A failed delivery of an event to a hook (migrations/0007_hooks.sql).
public struct HookFailure: Codable, Equatable, Sendable {
    public var at: String
    public var seq: Int64
    public var hook: String
    public var attempt: Int
    public var outcome: String

    public init(at: String, seq: Int64, hook: String, attempt: Int, outcome: String) {
        (self.at, self.seq, self.hook, self.attempt, self.outcome) = (at, seq, hook, attempt, outcome)
    }
}

/// Where the hook dispatcher stands: `spoold admin hooks`.
public struct HookLedger: Codable, Equatable, Sendable {
    /// The last event delivered (or skipped, having no hook); nil before the dispatcher first ran.
    public var cursor: Int64?
    public var cursorUpdatedAt: String?
    /// The newest event in the log.
    public var lastEvent: Int64
    /// Events after the cursor, and when the oldest of them happened.
    public var pending: Int64
    public var oldestPendingAt: String?
    /// Newest first.
    public var failures: [HookFailure]

    enum CodingKeys: String, CodingKey {
        case cursor, pending, failures
        case cursorUpdatedAt = "cursor_updated_at"
        case lastEvent = "last_event"
        case oldestPendingAt = "oldest_pending_at"
    }
}

extension SQLCatalog {
    static var keptHookFailures: Int { 100 }

    public func hookCursor() throws(StoreError) -> Int64? {
        try locked { db throws(StoreError) in
            try db.query("SELECT seq FROM hook_cursor WHERE id = 1") { $0.int(0) }.first
        }
    }

    public func startHookCursor() throws(StoreError) -> Int64 {
        try locked { db throws(StoreError) in
            try db.transaction { () throws(StoreError) -> Int64 in
                if let seq = try db.query("SELECT seq FROM hook_cursor WHERE id = 1", [], { $0.int(0) }).first { return seq }
                let last = try db.query("SELECT coalesce(max(seq), 0) FROM events") { $0.int(0) }.first ?? 0
                try db.run("INSERT INTO hook_cursor (id, seq, updated_at) VALUES (1, ?, ?)", [.integer(last), .text(UTCTime.now())])
                return last
            }
        }
    }

    public func advanceHookCursor(from old: Int64, to new: Int64) throws(StoreError) -> Bool {
        try locked { db throws(StoreError) in
            try db.transaction { () throws(StoreError) -> Bool in
                try db.run(
                    "UPDATE hook_cursor SET seq = ?, updated_at = ? WHERE id = 1 AND seq = ?",
                    [.integer(new), .text(UTCTime.now()), .integer(old)]) > 0
            }
        }
    }

    public func setHookCursor(_ seq: Int64) throws(StoreError) {
        try locked { db throws(StoreError) in
            try db.transaction { () throws(StoreError) in
                try db.run(
                    "INSERT INTO hook_cursor (id, seq, updated_at) VALUES (1, ?, ?) "
                        + "ON CONFLICT (id) DO UPDATE SET seq = excluded.seq, updated_at = excluded.updated_at",
                    [.integer(seq), .text(UTCTime.now())])
            }
        }
    }

    /// Not synced: a failure lost in a crash is a line less in `admin hooks`, nothing more.
    public func recordHookFailure(_ failure: HookFailure) throws(StoreError) {
        try locked { db throws(StoreError) in
            try db.transaction(durable: false) { () throws(StoreError) in
                try db.run(
                    "INSERT INTO hook_failures (at, seq, hook, attempt, outcome) VALUES (?, ?, ?, ?, ?)",
                    [.text(failure.at), .integer(failure.seq), .text(failure.hook), .integer(Int64(failure.attempt)),
                     .text(failure.outcome)])
                try db.run(
                    "DELETE FROM hook_failures WHERE id <= (SELECT max(id) FROM hook_failures) - ?",
                    [.integer(Int64(Self.keptHookFailures))])
            }
        }
    }

    public func hookLedger(failures limit: Int) throws(StoreError) -> HookLedger {
        try locked { db throws(StoreError) in
            let cursor = try db.query("SELECT seq, updated_at FROM hook_cursor WHERE id = 1") { ($0.int(0), $0.text(1)) }.first
            let last = try db.query("SELECT coalesce(max(seq), 0) FROM events") { $0.int(0) }.first ?? 0
            let from = cursor?.0 ?? last
            let oldest = try db.query("SELECT at FROM events WHERE seq > ? ORDER BY seq LIMIT 1", [.integer(from)]) { $0.text(0) }.first
            let failures = try db.query(
                "SELECT at, seq, hook, attempt, outcome FROM hook_failures ORDER BY id DESC LIMIT ?", [.integer(Int64(limit))]
            ) { HookFailure(at: $0.text(0), seq: $0.int(1), hook: $0.text(2), attempt: Int($0.int(3)), outcome: $0.text(4)) }
            return HookLedger(
                cursor: cursor?.0, cursorUpdatedAt: cursor?.1, lastEvent: last, pending: max(0, last - from),
                oldestPendingAt: oldest, failures: failures)
        }
    }
}
