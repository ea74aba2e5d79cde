import SpoolSystem

/// Figures for STATS and `admin stats`.
public struct StoreStats: Sendable, Equatable {
    public var uploads: Int
    public var receiving: Int
    public var completedSince: Int
    /// Bytes on disk for complete uploads, each content counted once.
    public var bytesStored: Int64
}

extension SQLCatalog {
    /// Uploads whose name contains `text` or `alternative` (ASCII case-insensitively)
    /// or whose SHA-256 starts with `text`, newest first.
    /// With `token`, only that token's uploads.
    public func find(_ text: String, or alternative: String? = nil, limit: Int, token: String? = nil) throws(StoreError)
        -> [UploadRecord]
    {
        let lower = DB.asciiLower
        let sql = """
            SELECT \(Self.columns) FROM uploads
            WHERE (instr(\(lower)(name), \(lower)(?1)) > 0 OR instr(\(lower)(name), \(lower)(?4)) > 0
                   OR substr(sha256, 1, length(?1)) = \(lower)(?1))
              AND (CAST(?3 AS TEXT) IS NULL OR token = ?3)
            ORDER BY created_at DESC, rowid DESC LIMIT ?2
            """
        return try locked { db throws(StoreError) in
            try db.query(
                sql, [.text(text), .integer(Int64(limit)), token.map { .text($0) } ?? .null, .text(alternative ?? text)],
                Self.record)
        }
    }

    /// `since` is an ISO time: uploads completed at or after it are counted.
    public func stats(completedSince since: String) throws(StoreError) -> StoreStats {
        try locked { db throws(StoreError) in
            let counts = try db.query(
                """
                SELECT count(*),
                       coalesce(sum(CASE WHEN state = 'receiving' THEN 1 ELSE 0 END), 0),
                       coalesce(sum(CASE WHEN state = 'complete' AND finished_at >= ? THEN 1 ELSE 0 END), 0)
                FROM uploads
                """,
                [.text(since)]
            ) { ($0.int(0), $0.int(1), $0.int(2)) }
            let bytes = try db.query(Self.bytesStoredSQL) { $0.int(0) }
            let (uploads, receiving, completed) = counts.first ?? (0, 0, 0)
            return StoreStats(
                uploads: Int(uploads), receiving: Int(receiving), completedSince: Int(completed),
                bytesStored: bytes.first ?? 0)
        }
    }
}
