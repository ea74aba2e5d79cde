/// A SQL connection as the catalog uses it, one thread at a time (the catalog's
/// lock). SQLite (`Database`) is one; PostgreSQL (the SpoolPostgres module) the
/// other. The catalog's statements are written once, in the SQL both speak
/// (docs/SCALING.md lists the few things that takes), so the two catalogs cannot
/// drift apart: the same code keeps the same rules on both.
public protocol SQLEngine: AnyObject {
    associatedtype Row: SQLRow
    /// Names the database in errors.
    var path: String { get }
    /// Runs a script of statements that return nothing (a migration).
    func execute(_ script: String) throws(StoreError)
    /// Runs a statement with `?` placeholders; returns how many rows it changed.
    @discardableResult
    func run(_ sql: String, _ values: [SQLValue]) throws(StoreError) -> Int
    /// Runs a statement whose answer nobody needs: at once (SQLite), or sent with
    /// the next statement, in one round trip (PostgreSQL, inside a transaction).
    /// Its error is thrown by that next statement at the latest, so call it only
    /// where the next statement is in the same savepoint or transaction.
    func runLater(_ sql: String, _ values: [SQLValue]) throws(StoreError)
    /// Runs a query and maps each row.
    func query<T>(_ sql: String, _ values: [SQLValue], _ row: (Row) throws(StoreError) -> T) throws(StoreError) -> [T]
    /// Runs `body` in a write transaction. Write transactions are one at a time
    /// across every process and host that shares the database (SQLite's write
    /// lock; an advisory lock on PostgreSQL), so admission sees every other
    /// reservation and events commit in `seq` order. `durable`: on disk when this
    /// returns; without it, the next durable commit or `syncCommitted` makes it so.
    func transaction<T>(durable: Bool, _ body: () throws(StoreError) -> T) throws(StoreError) -> T
    /// Makes every transaction committed so far durable (a group commit's one wait).
    func syncCommitted() throws(StoreError)
    /// Whether a durable COMMIT waits for the log itself (PostgreSQL). If not
    /// (SQLite here), a group commits without waiting and syncs once after
    /// letting the connection go, so other threads' statements run meanwhile.
    static var commitSyncsLog: Bool { get }
    /// The function that lowers ASCII letters and leaves every other character
    /// as it is (SQLite's `lower`; PostgreSQL's follows the locale).
    static var asciiLower: String { get }
    /// A lock named `name` held by this connection until released or closed;
    /// false when another connection holds it (see `Catalog.takeLease`).
    func tryLease(_ name: String) throws(StoreError) -> Bool
    func releaseLease(_ name: String)
    /// After rows were inserted with their own numbers (a copy), new rows of
    /// `table` number on from the highest `column`.
    func continueIdentity(table: String, column: String) throws(StoreError)
}

extension SQLEngine {
    @discardableResult
    public func run(_ sql: String) throws(StoreError) -> Int { try run(sql, []) }

    public func query<T>(_ sql: String, _ row: (Row) throws(StoreError) -> T) throws(StoreError) -> [T] {
        try query(sql, [], row)
    }

    public func transaction<T>(_ body: () throws(StoreError) -> T) throws(StoreError) -> T {
        try transaction(durable: true, body)
    }
}

/// One row of a query's answer, read by column (from 0). A NULL reads as 0 or "".
public protocol SQLRow {
    func int(_ column: Int32) -> Int64
    func text(_ column: Int32) -> String
    func optionalText(_ column: Int32) -> String?
    func isNull(_ column: Int32) -> Bool
}
