import SpoolSystem

/// One entry of the append-only event log (migrations/0002_create_events.sql).
public struct UploadEvent: Codable, Equatable, Sendable {
    public var seq: Int64
    public var at: String
    public var uploadID: String
    public var kind: String
    public var actor: String
    public var client: String?
    public var detail: String?

    enum CodingKeys: String, CodingKey {
        case seq, at, kind, actor, client, detail
        case uploadID = "upload_id"
    }
}

extension SQLCatalog {
    /// Appends an event; call inside the transaction that makes the change it records.
    func appendEvent(_ db: DB, _ id: String, _ kind: String, client: String? = nil, detail: String? = nil)
        throws(StoreError)
    {
        // Its answer is not needed: sent with the next statement where the engine can.
        try db.runLater(
            "INSERT INTO events (at, upload_id, kind, actor, client, detail) VALUES (?, ?, ?, ?, ?, ?)",
            [.text(UTCTime.now()), .text(id), .text(kind), .text(actor), client.map { .text($0) } ?? .null,
             detail.map { .text($0) } ?? .null]
        )
    }

    /// Events, oldest first, optionally of one upload and from a time on.
    public func events(id: String? = nil, since: String? = nil, limit: Int? = nil) throws(StoreError) -> [UploadEvent] {
        var conditions: [String] = []
        var values: [SQLValue] = []
        if let id {
            conditions.append("upload_id = ?")
            values.append(.text(id))
        }
        if let since {
            conditions.append("at >= ?")
            values.append(.text(since))
        }
        let sql = "SELECT seq, at, upload_id, kind, actor, client, detail FROM events"
            + (conditions.isEmpty ? "" : " WHERE " + conditions.joined(separator: " AND "))
            + " ORDER BY seq" + (limit == nil ? "" : " LIMIT ?")
        if let limit { values.append(.integer(Int64(limit))) }
        return try locked { db throws(StoreError) in try db.query(sql, values, Self.event) }
    }

    /// Events after `seq`, oldest first. SQLite has one writer at a time, so
    /// events commit in `seq` order: none can appear later below one already read.
    public func events(after seq: Int64, limit: Int) throws(StoreError) -> [UploadEvent] {
        try locked { db throws(StoreError) in
            try db.query(
                "SELECT seq, at, upload_id, kind, actor, client, detail FROM events WHERE seq > ? ORDER BY seq LIMIT ?",
                [.integer(seq), .integer(Int64(limit))], Self.event)
        }
    }

    /// A row of `SELECT seq, at, upload_id, kind, actor, client, detail`.
    static func event(_ row: DB.Row) -> UploadEvent {
        UploadEvent(
            seq: row.int(0), at: row.text(1), uploadID: row.text(2), kind: row.text(3), actor: row.text(4),
            client: row.optionalText(5), detail: row.optionalText(6))
    }
}

/// The event recorded when an upload enters a state.
extension UploadState {
    var eventKind: String {
        switch self {
        case .receiving: "resumed"
        case .complete: "completed"
        case .failed: "failed"
        case .interrupted: "interrupted"
        case .expired: "expired"
        case .lost: "lost"
        }
    }
}
