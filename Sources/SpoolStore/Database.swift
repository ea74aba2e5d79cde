import CSQLite
import SpoolSystem

#if canImport(Glibc)
import Glibc
#endif

/// A SQLite connection, used by one thread at a time (the caller serialises).
///
/// A thin wrapper rather than GRDB: the master must stay single-threaded until it
/// forks, and each process needs just one connection and a dozen statements.
final class Database: SQLEngine {
    public let path: String
    private let handle: OpaquePointer
    /// With `queueWriters`, `<database>-writers` is flock'ed around each write
    /// transaction: the workers then wait for each other in the kernel and are
    /// woken the moment the lock is free, instead of polling SQLite's lock in the
    /// busy handler (which also holds up every other thread of the worker waiting
    /// for the store). With two workers that was worth 1.28× on small uploads
    /// (bench/README.md). SQLite's own lock stays the guard, and the master and
    /// admin commands do not queue here: they wait in the busy handler, which
    /// gives up after ~5 s, so a stopped admin command cannot hang the workers.
    /// A worker that hangs holding the file is killed by the master's watchdog,
    /// which releases it. -1 when not used.
    private let writerLock: Int32
    /// Synced after every durable commit; see `transaction(durable:)`.
    let log: WriteAheadLog
    /// Prepared statements by their text, reset and reused: a worker runs the same
    /// dozen statements for every upload, and parsing them each time was a tenth of
    /// its CPU on small uploads (bench/README.md). A statement in use is taken out,
    /// so a query run from inside another's row mapping prepares its own. Each
    /// remembers when it was last used (`uses`).
    private var statements: [String: (statement: Statement, lastUse: Int)] = [:]
    private var uses = 0
    /// Bounds the cache should texts vary (a query built from filters, or a name
    /// per savepoint as there once was). When full, the statement used longest
    /// ago makes room: refusing newcomers instead once left every statement first
    /// used after the cache filled to be compiled on every use.
    static let maxCachedStatements = 64
    var cachedStatements: Int { statements.count }
    /// Statements compiled since the connection opened (tests).
    private(set) var prepared = 0

    /// Opens (and with `create`, creates) the database in WAL mode with a busy timeout,
    /// so several worker processes can write to it at once.
    public init(path: String, create: Bool = true, queueWriters: Bool = false) throws(StoreError) {
        self.path = path
        // NOMUTEX: one thread at a time uses a connection (the store's lock), so
        // SQLite's own per-call mutex would only add cost.
        var flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX
        if create { flags |= SQLITE_OPEN_CREATE }
        var db: OpaquePointer?
        let rc = sqlite3_open_v2(path, &db, flags, nil)
        guard rc == SQLITE_OK, let db else {
            let message = db.map { String(cString: sqlite3_errmsg($0)) } ?? "out of memory"
            sqlite3_close_v2(db)
            if rc == SQLITE_CANTOPEN && !create { throw .noDatabase(path: path) }
            throw .sqlite(operation: "open \(path)", code: rc, message: message)
        }
        handle = db
        log = WriteAheadLog(databasePath: path)
        writerLock = queueWriters ? Glibc.open(path + Self.writersSuffix, O_RDWR | O_CREAT | O_CLOEXEC, 0o640) : -1
        // SQLite's own busy timeout sleeps in steps of up to 100 ms; with several
        // worker processes committing small transactions, that stalls uploads far
        // longer than the lock is held. Retry quickly instead, for up to ~5 s.
        sqlite3_busy_handler(db, { _, attempt in
            if attempt >= Database.busyAttempts { return 0 }
            usleep(attempt < 10 ? 50 : attempt < 100 ? 200 : 1000)
            return 1
        }, nil)
        try execute("PRAGMA journal_mode = WAL")
        // NORMAL: COMMIT does not wait for the disk, and never holds the write lock
        // across an fsync; a durable transaction syncs the log afterwards instead.
        try execute("PRAGMA synchronous = NORMAL")
        try execute("PRAGMA foreign_keys = ON")
        // Statement and savepoint journals in memory. Each change of a batch runs in
        // a savepoint, which journals every page it touches (about 15 per upload);
        // past a small size SQLite spilled those to a temp file in /var/tmp, often the
        // spool's own file system, so every batch's syncfs wrote them back too.
        // They only serve a live transaction (crash recovery is the WAL's job).
        try execute("PRAGMA temp_store = MEMORY")
    }

    deinit {
        statements.removeAll()  // finalized before the connection closes
        sqlite3_close_v2(handle)
        if writerLock >= 0 { Glibc.close(writerLock) }
    }

    /// Runs one or more statements that return nothing the caller needs.
    public func execute(_ sql: String) throws(StoreError) {
        var errorMessage: UnsafeMutablePointer<CChar>?
        let rc = sqlite3_exec(handle, sql, nil, nil, &errorMessage)
        if rc != SQLITE_OK {
            let message = errorMessage.map { String(cString: $0) } ?? lastMessage
            sqlite3_free(errorMessage)
            throw .sqlite(operation: Self.summary(sql), code: rc, message: message)
        }
    }

    public func prepare(_ sql: String) throws(StoreError) -> Statement {
        var stmt: OpaquePointer?
        let rc = sqlite3_prepare_v2(handle, sql, -1, &stmt, nil)
        guard rc == SQLITE_OK, let stmt else {
            throw .sqlite(operation: Self.summary(sql), code: rc, message: lastMessage)
        }
        prepared += 1
        return Statement(stmt, connection: handle, sql: sql)
    }

    /// Runs `body` with the prepared statement for `sql`, from the cache when it is there.
    private func withStatement<T>(_ sql: String, _ body: (Statement) throws(StoreError) -> T) throws(StoreError) -> T {
        let stmt: Statement
        if let cached = statements.removeValue(forKey: sql) { stmt = cached.statement } else { stmt = try prepare(sql) }
        defer {
            stmt.reset()
            if statements.count >= Self.maxCachedStatements,
               let oldest = statements.min(by: { $0.value.lastUse < $1.value.lastUse })?.key {
                statements.removeValue(forKey: oldest)
            }
            uses += 1
            statements[sql] = (stmt, uses)
        }
        return try body(stmt)
    }

    static let writersSuffix = "-writers"

    /// ~5 s of retries: 10 × 50 µs, 90 × 200 µs, then 1 ms each.
    static let busyAttempts: Int32 = 10 + 90 + 4_900

    /// Runs `body` in a write transaction (BEGIN IMMEDIATE takes the write lock up
    /// front, so a busy database waits at BEGIN instead of failing at COMMIT).
    ///
    /// A durable transaction is on disk when this returns: the log is synced after
    /// COMMIT, once the locks are released (WriteAheadLog says why that is as safe
    /// as `synchronous=FULL`). `durable: false` skips the sync, for a change that
    /// nothing has been promised on yet (an upload's first row; a crash simply loses
    /// it) or whose caller syncs the log itself (group commit); the next sync of the
    /// log makes it durable too.
    public func transaction<T>(durable: Bool, _ body: () throws(StoreError) -> T) throws(StoreError) -> T {
        let result = try locked(body)
        if durable { try log.sync() }
        return result
    }

    /// Test builds only: a commit that fails on purpose (`SPOOL_FAULT=commit:<n>`, Sources/SpoolSystem/Fault.swift).
    private func injectedCommitFailure() throws(StoreError) {
        do { try Fault.check("commit", path) } catch { throw .system(error) }
    }

    private func locked<T>(_ body: () throws(StoreError) -> T) throws(StoreError) -> T {
        // The store serialises its threads, so one open file description per
        // connection is enough; flock only orders the processes.
        if writerLock >= 0 { while flock(writerLock, LOCK_EX) != 0 && errno == EINTR {} }
        defer { if writerLock >= 0 { flock(writerLock, LOCK_UN) } }
        try run("BEGIN IMMEDIATE")
        do {
            let result = try body()
            try injectedCommitFailure()
            try run("COMMIT")
            return result
        } catch {
            _ = try? run("ROLLBACK")
            throw error
        }
    }

    public func syncCommitted() throws(StoreError) { try log.sync() }

    /// COMMIT does not sync (`transaction(durable:)` syncs the log after it).
    public static var commitSyncsLog: Bool { false }

    public static var asciiLower: String { "lower" }

    /// One machine: the staging file's flock is the lease (`Catalog.takeLease`).
    public func tryLease(_ name: String) throws(StoreError) -> Bool { true }
    public func releaseLease(_ name: String) {}

    /// AUTOINCREMENT follows inserted numbers by itself (sqlite_sequence).
    public func continueIdentity(table: String, column: String) throws(StoreError) {}

    public func runLater(_ sql: String, _ values: [SQLValue]) throws(StoreError) { try run(sql, values) }

    /// Runs a statement and returns how many rows it changed.
    @discardableResult
    public func run(_ sql: String, _ values: [SQLValue]) throws(StoreError) -> Int {
        try withStatement(sql) { stmt throws(StoreError) in
            try stmt.bind(values)
            while try stmt.step() {}
            return Int(sqlite3_changes(handle))
        }
    }

    /// Runs a query and maps each row.
    public func query<T>(_ sql: String, _ values: [SQLValue], _ row: (Statement) throws(StoreError) -> T)
        throws(StoreError) -> [T]
    {
        try withStatement(sql) { stmt throws(StoreError) in
            try stmt.bind(values)
            var rows: [T] = []
            while try stmt.step() { rows.append(try row(stmt)) }
            return rows
        }
    }

    var lastMessage: String { Self.message(handle) }

    static func message(_ connection: OpaquePointer) -> String { String(cString: sqlite3_errmsg(connection)) }

    static func summary(_ sql: String) -> String {
        let flat = sql.split(whereSeparator: \.isWhitespace).joined(separator: " ")
        return flat.count > 60 ? String(flat.prefix(60)) + "…" : flat
    }
}

public enum SQLValue: Sendable, Equatable {
    case integer(Int64)
    case text(String)
    case null
}

/// A prepared statement. Finalized when released.
public final class Statement: SQLRow {
    private let stmt: OpaquePointer
    /// The connection's handle, not the `Database`: the database caches its
    /// statements, and a reference back would keep both alive forever.
    private let connection: OpaquePointer
    private let sql: String

    init(_ stmt: OpaquePointer, connection: OpaquePointer, sql: String) {
        self.stmt = stmt
        self.connection = connection
        self.sql = sql
    }

    deinit {
        sqlite3_finalize(stmt)
    }

    /// Ready to run again, with no values bound.
    func reset() {
        sqlite3_reset(stmt)
        sqlite3_clear_bindings(stmt)
    }

    // SQLITE_TRANSIENT: SQLite copies the bound text before bind returns.
    private static let transient = unsafeBitCast(-1, to: sqlite3_destructor_type.self)

    public func bind(_ values: [SQLValue]) throws(StoreError) {
        for (offset, value) in values.enumerated() {
            let index = Int32(offset + 1)
            let rc: Int32
            switch value {
            case .integer(let v): rc = sqlite3_bind_int64(stmt, index, v)
            case .text(let v): rc = sqlite3_bind_text(stmt, index, v, -1, Self.transient)
            case .null: rc = sqlite3_bind_null(stmt, index)
            }
            if rc != SQLITE_OK {
                throw .sqlite(operation: "bind \(Database.summary(sql))", code: rc, message: Database.message(connection))
            }
        }
    }

    /// Advances to the next row; false when done.
    public func step() throws(StoreError) -> Bool {
        switch sqlite3_step(stmt) {
        case SQLITE_ROW: return true
        case SQLITE_DONE: return false
        case let rc: throw .sqlite(operation: Database.summary(sql), code: rc, message: Database.message(connection))
        }
    }

    public func int(_ column: Int32) -> Int64 { sqlite3_column_int64(stmt, column) }

    public func text(_ column: Int32) -> String {
        guard let raw = sqlite3_column_text(stmt, column) else { return "" }
        return String(cString: raw)
    }

    public func optionalText(_ column: Int32) -> String? {
        isNull(column) ? nil : text(column)
    }

    public func isNull(_ column: Int32) -> Bool { sqlite3_column_type(stmt, column) == SQLITE_NULL }
}
