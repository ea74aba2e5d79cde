#if canImport(Glibc)
import Glibc
#endif
import SpoolProtocol
import SpoolSystem

/// The catalog in SQL: the uploads table, the event log, the running totals the
/// triggers keep, the tokens (migrations/). On SQLite (`SQLiteCatalog`,
/// `spool.db` in WAL mode) by default; on PostgreSQL with `--database`
/// (SpoolPostgres), through the same statements.
///
/// Each process opens its own. Calls may come from several threads: statements
/// are serialised by a lock, and changes are grouped: durable changes (an
/// upload's final state) and the others (its first row) are each batched with
/// those of other threads arriving meanwhile, a batch being one transaction,
/// so that the rows of concurrent uploads share the pages it writes to the log
/// instead of each upload writing the same few pages again in a commit of its own.
public final class SQLCatalog<DB: SQLEngine>: Catalog, @unchecked Sendable {
    let database: DB
    private let lock = Lock()
    private let groupCommit = GroupCommit<Change>()
    private let groupWrite = GroupCommit<Change>()
    /// One change to the database, run inside a batch's transaction.
    typealias Change = (DB) throws(StoreError) -> Void
    /// Who this process is in the event log: `worker:<pid>`, `master:<pid>`, `admin:<user>`.
    let actor: String
    /// Other hosts may share it: leases and live progress are worth their statements.
    public let isShared: Bool

    /// A catalog on a connection whose schema is current.
    public init(database: DB, actor: String) {
        self.database = database
        self.actor = actor
        isShared = !(database is Database)
    }

    /// On one machine (SQLite) every lease is granted without a statement: the staging's flock is the lease.
    public func takeLease(id: String) throws(StoreError) -> Bool {
        guard isShared else { return true }
        return try locked { db throws(StoreError) in try db.tryLease("upload:" + id) }
    }

    public func releaseLease(id: String) {
        guard isShared else { return }
        lock.withLock { database.releaseLease("upload:" + id) }
    }

    public func probeWritable() throws(StoreError) {
        try locked { db throws(StoreError) in try db.transaction(durable: false) {} }
    }

    @discardableResult
    func locked<T>(_ body: (DB) throws(StoreError) -> T) throws(StoreError) -> T {
        try lock.withLock { () throws(StoreError) -> T in try body(database) }
    }

    /// Moves an upload to `state` and logs the event, durably, in a commit shared
    /// with the other threads of this process that are committing at the same time.
    public func mark(_ id: String, _ state: UploadState, received: Int64, error: String?, finished: Bool) throws(StoreError) {
        let now = UTCTime.now()
        try durably { db throws(StoreError) in
            try self.markRow(db, id, state, received: received, error: error, finished: finished, at: now)
        }
    }

    /// The row's new state and its event, inside a transaction of the caller's.
    func markRow(
        _ db: DB, _ id: String, _ state: UploadState, received: Int64, error: String?, finished: Bool, at now: String
    ) throws(StoreError) {
        try db.runLater(
            """
            UPDATE uploads SET state = ?, received = ?, error = ?, updated_at = ?,
                               finished_at = CASE WHEN ? = 1 THEN ? ELSE finished_at END
            WHERE id = ?
            """,
            [.text(state.rawValue), .integer(received), error.map { .text($0) } ?? .null, .text(now),
             .integer(finished ? 1 : 0), .text(now), .text(id)]
        )
        try appendEvent(db, id, state.eventKind, detail: error ?? (state == .complete ? "\(received) bytes" : nil))
    }

    /// Runs `work` in a durable transaction, grouped with concurrent ones (GroupCommit).
    /// The log is synced once for the batch, after this process's lock is
    /// released too, and only then does this return.
    func durably(_ work: @escaping (DB) throws(StoreError) -> Void) throws(StoreError) {
        try groupCommit.run(work) { batch throws(StoreError) in
            let timings = StoreTimings.shared
            try timings.time(.commit, batch: batch.count) { () throws(StoreError) in try commit(batch, durable: DB.commitSyncsLog) }
            if !DB.commitSyncsLog {
                try timings.time(.logSync, batch: batch.count) { () throws(StoreError) in try database.syncCommitted() }
            }
        }
    }

    /// Runs `work` in a transaction grouped with concurrent ones, without waiting
    /// for the disk: for a change nothing has been promised on yet (the next
    /// durable commit of this database covers it).
    func together(_ work: @escaping (DB) throws(StoreError) -> Void) throws(StoreError) {
        try groupWrite.run(work) { batch throws(StoreError) in try commit(batch) }
    }

    /// Several changes run as `together` runs one, all in the same transaction;
    /// returns each one's error (a refusal undoes only its own change), nil for those made.
    func together(_ changes: [Change]) -> [StoreError?] {
        groupWrite.runAll(changes) { batch throws(StoreError) in try commit(batch) }
    }

    /// One transaction for a batch, each change in its own savepoint, so that one
    /// that fails (a refusal, a constraint) is undone alone and reported to its caller.
    private func commit(_ batch: [GroupCommit<Change>.Entry], durable: Bool = false) throws(StoreError) {
        try locked { db throws(StoreError) in
            try db.transaction(durable: durable) { () throws(StoreError) in
                // One name for every savepoint: each is released before the next, and
                // a text per entry would fill the statement cache (64) in one large
                // batch, after which the upload statements were parsed afresh every time.
                for entry in batch {
                    try db.runLater("SAVEPOINT change", [])
                    do throws(StoreError) {
                        try entry.work(db)
                        try db.run("RELEASE change")
                    } catch {
                        try db.run("ROLLBACK TO change")
                        try db.run("RELEASE change")
                        entry.error = error
                    }
                }
            }
        }
    }

    // MARK: - Reading

    static var columns: String {
        """
        id, name, size, received, sha256, client_ip, client_port, state, error, worker_pid,
        created_at, updated_at, finished_at, token
        """
    }
    /// How many columns `columns` names: what a query selects after them starts here.
    static var columnCount: Int32 { 14 }

    /// Bytes on disk for complete uploads, each content counted once.
    static var bytesStoredSQL: String {
        "SELECT coalesce(sum(size), 0) FROM (SELECT DISTINCT sha256, size FROM uploads WHERE state = 'complete') AS objects"
    }

    public func upload(id: String) throws(StoreError) -> UploadRecord? {
        try locked { db throws(StoreError) in
            try db.query("SELECT \(Self.columns) FROM uploads WHERE id = ?", [.text(id)], Self.record).first
        }
    }

    static func record(_ row: DB.Row) throws(StoreError) -> UploadRecord {
        let stateText = row.text(7)
        guard let state = UploadState(rawValue: stateText) else {
            throw .sqlite(operation: "read upload \(row.text(0))", code: 0, message: "unknown state \"\(stateText)\"")
        }
        return UploadRecord(
            id: row.text(0), name: row.text(1), size: row.int(2), received: row.int(3), sha256: row.text(4),
            clientIP: row.text(5), clientPort: Int(row.int(6)), state: state, error: row.optionalText(8),
            workerPID: Int(row.int(9)), createdAt: row.text(10), updatedAt: row.text(11),
            finishedAt: row.optionalText(12), token: row.optionalText(13)
        )
    }
}

/// The catalog in SQLite.
typealias SQLiteCatalog = SQLCatalog<Database>

extension SQLCatalog where DB == Database {
    /// Opens an existing database whose schema is current (workers, admin commands).
    /// Workers pass `queueWriters` (see `Database`).
    convenience init(path: String, actor: String, queueWriters: Bool = false) throws(StoreError) {
        let database = try Database(path: path, create: false, queueWriters: queueWriters)
        try Migrator.requireCurrent(database, migrations: try Migrator.embedded())
        self.init(database: database, actor: actor)
    }

    /// Creates the database as needed and applies pending migrations (the master, `admin migrate`).
    static func migrate(path: String) throws(StoreError) -> [Migration] {
        let db = try Database(path: path, create: true)
        return try Migrator.migrate(db, migrations: try Migrator.embedded())
    }

    /// How far the database's schema is from this build's migrations, changing nothing.
    static func schemaStatus(path: String) throws(StoreError) -> SchemaStatus {
        let db = try Database(path: path, create: false)
        return try Migrator.status(db, migrations: try Migrator.embedded())
    }

    /// How many prepared statements the connection keeps (tests).
    var cachedStatements: Int { lock.withLock { database.cachedStatements } }
}
