#if canImport(Glibc)
import Glibc
#endif
import SpoolSystem

/// Filters for `admin list` and `admin purge`; nil means "any".
public struct UploadFilter: Sendable {
    public var states: [UploadState] = []
    /// ISO times: created at or after `since`, before `until`.
    public var since: String?
    public var until: String?
    /// A GLOB pattern on the name, as SQLite's (`*.pdf`, `report-202?*`).
    public var nameGlob: String?
    public var clientIP: String?
    public var checksumPrefix: String?
    /// Last touched before this ISO time (purge's --older-than).
    public var updatedBefore: String?
    /// Only this token's uploads.
    public var token: String?
    public var limit: Int?
    public var sort: UploadSort = .newest

    public init() {}
}

public enum UploadSort: String, CaseIterable, Sendable {
    case newest, oldest, largest, smallest, name

    var sql: String {
        switch self {
        // Uploads stored in one batch share a millisecond: the order they arrived in
        // (their rowid) breaks the tie, and uploads_by_created gives both orders.
        case .newest: "created_at DESC, rowid DESC"
        case .oldest: "created_at ASC, rowid ASC"
        case .largest: "size DESC, created_at DESC"
        case .smallest: "size ASC, created_at DESC"
        case .name: "name ASC, created_at DESC"
        }
    }
}

public struct AdminStats: Codable, Equatable, Sendable {
    public var perState: [String: Int]
    public var uploads: Int
    /// Bytes on disk for complete uploads, each content once.
    public var bytesStored: Int64
    /// Bytes that complete uploads would take without deduplication, minus what they take.
    public var bytesSaved: Int64
    /// (UTC day, uploads created that day), oldest first, the last 14 days.
    public var perDay: [DayCount]
    /// What the retention policy removes on its next turns (filled by `admin stats`).
    public var retention: RetentionForecast?

    public struct DayCount: Codable, Equatable, Sendable {
        public var day: String
        public var uploads: Int
    }

    enum CodingKeys: String, CodingKey {
        case perState = "per_state"
        case uploads
        case bytesStored = "bytes_stored"
        case bytesSaved = "bytes_saved"
        case perDay = "per_day"
        case retention
    }
}

public enum DeleteOutcome: Equatable, Sendable {
    /// The row is gone; `removedObject` says whether its object went too (no other
    /// upload shared it). `objectError`: why an unshared object could not be removed
    /// (it is left to `admin audit --repair`).
    case deleted(removedObject: Bool, objectError: String? = nil)
    case notFound
    /// A live upload cannot be deleted: stop it first.
    case receiving
}

extension SQLCatalog {
    public func uploads(matching filter: UploadFilter) throws(StoreError) -> [UploadRecord] {
        var conditions: [String] = []
        var values: [SQLValue] = []
        if !filter.states.isEmpty {
            conditions.append("state IN (" + filter.states.map { _ in "?" }.joined(separator: ", ") + ")")
            values += filter.states.map { .text($0.rawValue) }
        }
        func add(_ condition: String, _ value: String?) {
            guard let value else { return }
            conditions.append(condition)
            values.append(.text(value))
        }
        add("created_at >= ?", filter.since)
        add("created_at < ?", filter.until)
        add("glob(?, name)", filter.nameGlob)
        add("client_ip = ?", filter.clientIP)
        if let prefix = filter.checksumPrefix {
            conditions.append("substr(sha256, 1, ?) = ?")
            values += [.integer(Int64(prefix.utf8.count)), .text(prefix.lowercased())]
        }
        add("updated_at < ?", filter.updatedBefore)
        add("token = ?", filter.token)
        let sql = "SELECT \(Self.columns) FROM uploads"
            + (conditions.isEmpty ? "" : " WHERE " + conditions.joined(separator: " AND "))
            + " ORDER BY \(filter.sort.sql)" + (filter.limit == nil ? "" : " LIMIT ?")
        // The limit is bound, not written into the text: each distinct text is a
        // statement the connection keeps (Database's cache).
        if let limit = filter.limit { values.append(.integer(Int64(limit))) }
        return try locked { db throws(StoreError) in try db.query(sql, values, Self.record) }
    }

    /// How many uploads point at each content.
    public func referenceCount(sha256: String) throws(StoreError) -> Int {
        try locked { db throws(StoreError) in
            try db.query("SELECT count(*) FROM uploads WHERE sha256 = ? AND state = 'complete'", [.text(sha256)]) {
                Int($0.int(0))
            }.first ?? 0
        }
    }

public func adminStats(today: String, days: [String]) throws(StoreError) -> AdminStats {
        try locked { db throws(StoreError) in
            let perState = try db.query("SELECT state, count(*) FROM uploads GROUP BY state") { ($0.text(0), Int($0.int(1))) }
            let bytes = try db.query(
                """
                SELECT (\(Self.bytesStoredSQL)),
                       coalesce((SELECT sum(size) FROM uploads WHERE state = 'complete'), 0)
                """
            ) { ($0.int(0), $0.int(1)) }.first ?? (0, 0)
            let counts = Dictionary(
                try db.query(
                    "SELECT substr(created_at, 1, 10), count(*) FROM uploads WHERE created_at >= ? GROUP BY 1",
                    [.text(days.first ?? today)]
                ) { ($0.text(0), Int($0.int(1))) },
                uniquingKeysWith: +)
            return AdminStats(
                perState: Dictionary(perState, uniquingKeysWith: +),
                uploads: perState.reduce(0) { $0 + $1.1 },
                bytesStored: bytes.0,
                bytesSaved: bytes.1 - bytes.0,
                perDay: days.map { AdminStats.DayCount(day: $0, uploads: counts[$0] ?? 0) })
        }
    }
}

extension Store {
    /// Deletes an upload's row, its temporary file, and its object when no other
    /// upload (complete, or on its way there) has the same content. In two steps,
    /// so that a crash between any two never leaves a complete row without its
    /// object: first the row goes (durably), then its files. The object is checked
    /// and unlinked inside a write transaction: an upload of the same content
    /// records its row before it names its object, so it is either seen here (and
    /// the object kept) or names its object after this unlink. A crash between the
    /// steps leaves an object nothing names, which `admin audit --repair` removes.
    public func delete(id: String) throws(StoreError) -> DeleteOutcome {
        let sha256: String
        switch try catalog.deleteRow(id: id) {
        case .notFound: return .notFound
        case .receiving: return .receiving
        case .deleted(let content): sha256 = content
        }
        CrashPoint.reach("delete-after-commit")
        blobs.removeStaging(id: id)
        // No checksum yet (a tus upload without one, or one declared after its body): no object either.
        guard !sha256.isEmpty else { return .deleted(removedObject: false) }
        // The row's removal is committed: the upload is deleted whatever happens next.
        // An object this step fails to remove is named by nothing, which the audit
        // reports and `--repair` moves to quarantine; the caller is not told "failed"
        // about a delete that took place.
        do {
            return .deleted(removedObject: try removeObjectIfUnreferenced(sha256: sha256, event: id))
        } catch {
            return .deleted(removedObject: false, objectError: error.description)
        }
    }

    /// Removes the object of `sha256` when no upload (complete, or on its way
    /// there) names it: the second step of a delete, and the cleanup after an upload
    /// failed past naming its object. Checked and unlinked inside a write
    /// transaction, so an upload of that content either is counted (and the object
    /// kept) or names its object afresh after the unlink. `event`: the upload whose
    /// event log records the removal.
    @discardableResult
    func removeObjectIfUnreferenced(sha256: String, event id: String) throws(StoreError) -> Bool {
        try catalog.whileUnreferenced(sha256: sha256, event: id) { () throws(StoreError) -> Bool in
            try system { () throws(SystemError) in try blobs.removeObject(sha256: sha256) }
        }
    }
}
