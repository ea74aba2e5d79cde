import Crypto
import SpoolProtocol
import SpoolSystem

/// One forward-only schema step from migrations/NNNN_name.sql.
public struct Migration: Sendable, Equatable {
    public let version: Int
    public let name: String
    public let sql: String

    /// SHA-256 of the SQL text: a shipped migration that is later edited is detected, not silently skipped.
    public var checksum: String {
        Checksum.hex(SHA256.hash(data: Array(sql.utf8)))
    }

    public init(version: Int, name: String, sql: String) {
        self.version = version
        self.name = name
        self.sql = sql
    }

    /// Parses `0001_create_uploads.sql` into version 1, name `create_uploads`.
    public init(file: String, sql: String) throws(StoreError) {
        guard file.hasSuffix(".sql") else { throw .badMigration(file: file, reason: "name must end in .sql") }
        let stem = file.dropLast(4)
        guard let underscore = stem.firstIndex(of: "_"),
            let version = Int(stem[..<underscore]), version > 0,
            stem[..<underscore].count == 4
        else {
            throw .badMigration(file: file, reason: "name must be NNNN_description.sql with NNNN from 0001")
        }
        self.init(version: version, name: String(stem[stem.index(after: underscore)...]), sql: sql)
    }
}

public struct SchemaStatus: Equatable, Sendable {
    public let current: Int
    public let latest: Int
    public var pending: Int { latest - current }
}

/// Applies migrations like GRDB's migrator: in order, each in its own transaction,
/// recorded in `spool_migrations`; never edited once shipped; a database newer
/// than this binary is refused rather than guessed at.
public enum Migrator {
    /// The migrations built into this binary, from migrations/*.sql.
    public static func embedded() throws(StoreError) -> [Migration] {
        try embedded(EmbeddedMigrations.files)
    }

    /// Migrations from (file name, SQL) pairs in order: another engine's (migrations/postgres/).
    public static func embedded(_ files: [(String, String)]) throws(StoreError) -> [Migration] {
        var result: [Migration] = []
        for (file, sql) in files {
            result.append(try Migration(file: file, sql: sql))
        }
        for (index, migration) in result.enumerated() where migration.version != index + 1 {
            throw .badMigration(file: "\(migration.version)", reason: "versions must be 1, 2, 3… without gaps")
        }
        return result
    }

    static let ledger = """
        CREATE TABLE IF NOT EXISTS spool_migrations (
            version    INTEGER PRIMARY KEY,
            name       TEXT NOT NULL,
            checksum   TEXT NOT NULL,
            applied_at TEXT NOT NULL
        )
        """

    /// Applies every pending migration; returns the ones it applied.
    @discardableResult
    public static func migrate(_ db: some SQLEngine, migrations: [Migration]) throws(StoreError) -> [Migration] {
        try db.execute(ledger)
        var applied: [Migration] = []
        for migration in migrations {
            let didApply = try db.transaction { () throws(StoreError) -> Bool in
                // Re-read inside the write lock: another process may have just applied it.
                let recorded = try self.recorded(db)
                try verify(recorded, against: migrations, path: db.path)
                if recorded[migration.version] != nil { return false }
                try db.execute(migration.sql)
                try db.run(
                    "INSERT INTO spool_migrations (version, name, checksum, applied_at) VALUES (?, ?, ?, ?)",
                    [.integer(Int64(migration.version)), .text(migration.name), .text(migration.checksum),
                     .text(UTCTime.now())]
                )
                return true
            }
            if didApply { applied.append(migration) }
        }
        return applied
    }

    /// Where the database stands against `migrations`, without changing it.
    public static func status(_ db: some SQLEngine, migrations: [Migration]) throws(StoreError) -> SchemaStatus {
        try db.execute(ledger)
        let recorded = try self.recorded(db)
        try verify(recorded, against: migrations, path: db.path)
        return SchemaStatus(current: recorded.keys.max() ?? 0, latest: migrations.last?.version ?? 0)
    }

    /// Throws unless the database is exactly at the latest version.
    public static func requireCurrent(_ db: some SQLEngine, migrations: [Migration]) throws(StoreError) {
        let status = try status(db, migrations: migrations)
        if status.pending > 0 { throw .schemaBehind(path: db.path, version: status.current, latest: status.latest) }
    }

    private static func recorded<DB: SQLEngine>(_ db: DB) throws(StoreError) -> [Int: String] {
        let rows = try db.query("SELECT version, checksum FROM spool_migrations") { (row: DB.Row) throws(StoreError) in
            (Int(row.int(0)), row.text(1))
        }
        return Dictionary(rows, uniquingKeysWith: { first, _ in first })
    }

    private static func verify(_ recorded: [Int: String], against migrations: [Migration], path: String) throws(StoreError) {
        let known = migrations.last?.version ?? 0
        if let newest = recorded.keys.max(), newest > known {
            throw .schemaTooNew(path: path, version: newest, known: known)
        }
        // The ledger's version is its highest entry; that is only true when no entry
        // below it is missing (each migration is applied in order, one transaction each).
        if let newest = recorded.keys.max() {
            let missing = (1...newest).filter { recorded[$0] == nil }
            if !missing.isEmpty { throw .migrationGap(path: path, missing: missing) }
        }
        for migration in migrations {
            if let checksum = recorded[migration.version], checksum != migration.checksum {
                throw .migrationEdited(version: migration.version, name: migration.name)
            }
        }
    }
}
