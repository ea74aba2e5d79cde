import Crypto
import SpoolStore

/// The catalog's SQL on PostgreSQL (`SQLEngine`): `?` and `?N` placeholders
/// become `$N`; a connection that broke is replaced at the next statement
/// outside a transaction.
///
/// Write transactions take one transaction-scoped advisory lock first, so they
/// run one at a time across every process and host on this database, as SQLite's
/// write lock makes them on one machine. That keeps SQLite's rules without
/// rewriting them: admission reads totals no concurrent admission is changing,
/// and events commit in `seq` order (an identity column hands out numbers at
/// insert, not at commit; without the lock a cursor could pass an event that
/// commits later below it). Reads take no lock. What it costs: commits do not
/// overlap (measured in bench/).
public final class PostgresEngine: SQLEngine {
    public let url: PostgresURL
    public var path: String { url.redacted }
    private let timeout: Int
    private var connection: PGConnection?
    private var inTransaction = false
    /// Statements whose answer nobody waits for (`runLater`), sent with the next one.
    private var later: [UInt8] = []
    private var laterCount = 0
    /// The leases this connection holds (session advisory locks), by key.
    private var leases: Set<Int64> = []
    /// The advisory lock every write transaction takes (an arbitrary constant: "spool").
    static let writeLock: Int64 = 0x73_70_6f_6f_6c

    public init(_ url: PostgresURL, timeout: Int = 120) throws(StoreError) {
        self.url = url
        self.timeout = timeout
        connection = try PGConnection(url, timeout: timeout)
    }

    /// COMMIT itself waits for the log: nothing to sync after it.
    public static var commitSyncsLog: Bool { true }

    /// migrations/postgres/0001: `lower` under the C collation, whatever the database's locale.
    public static var asciiLower: String { "ascii_lower" }

    private func open() throws(StoreError) -> PGConnection {
        if let connection, connection.usable { return connection }
        guard !inTransaction else {
            throw .postgres(operation: "continue a transaction", code: "", message: "the connection to \(url.redacted) broke")
        }
        let fresh = try PGConnection(url, timeout: timeout)
        connection = fresh
        // The leases went with the old connection: taken again, and one that
        // another process took meanwhile is lost (its writer's next step says so).
        let held = leases
        leases = []
        var lost: [Int64] = []
        for key in held {
            let granted = try fresh.extendedQuery("SELECT pg_try_advisory_lock($1)", Self.parameters([.integer(key)])).rows
            if granted.first?.first??.first == UInt8(ascii: "t") { leases.insert(key) } else { lost.append(key) }
        }
        if !lost.isEmpty {
            throw .postgres(
                operation: "reconnect to \(url.redacted)", code: "",
                message: "\(lost.count) upload lease(s) were taken by another writer while the connection was down")
        }
        return fresh
    }

    public func tryLease(_ name: String) throws(StoreError) -> Bool {
        let key = Self.leaseKey(name)
        // This process holds it already: its other writer is kept out by the staging's flock.
        if leases.contains(key) { return true }
        let granted = try query("SELECT pg_try_advisory_lock(?)", [.integer(key)]) { $0.text(0) == "t" }.first ?? false
        if granted { leases.insert(key) }
        return granted
    }

    public func releaseLease(_ name: String) {
        let key = Self.leaseKey(name)
        guard leases.remove(key) != nil, let connection, connection.usable else { return }
        _ = try? connection.extendedQuery("SELECT pg_advisory_unlock($1)", Self.parameters([.integer(key)]))
    }

    /// An identity column's sequence moved past the copied numbers.
    public func continueIdentity(table: String, column: String) throws(StoreError) {
        try run(
            "SELECT setval(pg_get_serial_sequence('\(table)', '\(column)'), coalesce((SELECT max(\(column)) FROM \(table)), 0) + 1, false)", [])
    }

    /// A lease's advisory lock key: 64 bits of the SHA-256 of its name (the
    /// one-argument form, apart from `writeLock`).
    static func leaseKey(_ name: String) -> Int64 {
        let digest = Array(SHA256.hash(data: Array(name.utf8)))
        return digest.prefix(8).reduce(Int64(0)) { $0 << 8 | Int64($1) }
    }

    public func execute(_ script: String) throws(StoreError) {
        let connection = try open()
        try flushLater(connection)
        try connection.simpleQuery(script)
    }

    @discardableResult
    public func run(_ sql: String, _ values: [SQLValue]) throws(StoreError) -> Int {
        try send(sql, values).changed
    }

    /// Inside a transaction, the statement waits to go with the next one: one
    /// round trip for several (the catalog's savepoints, event rows, final states).
    /// Its error, if any, is thrown by that next statement, in the same savepoint.
    public func runLater(_ sql: String, _ values: [SQLValue]) throws(StoreError) {
        guard inTransaction else {
            try run(sql, values)
            return
        }
        later += try open().statement(Self.numbered(sql), Self.parameters(values))
        laterCount += 1
    }

    /// A statement with whatever waits to go before it, in one round trip.
    private func send(_ sql: String, _ values: [SQLValue]) throws(StoreError) -> (rows: [[[UInt8]?]], changed: Int) {
        let connection = try open()
        let (waiting, count) = (later, laterCount)
        (later, laterCount) = ([], 0)
        let operation = PGConnection.summary(sql) + (count > 0 ? " (or one of the \(count) statements before it)" : "")
        return try connection.exchange(waiting + connection.statement(Self.numbered(sql), Self.parameters(values)), operation: operation)
    }

    private func flushLater(_ connection: PGConnection) throws(StoreError) {
        guard !later.isEmpty else { return }
        let (waiting, count) = (later, laterCount)
        (later, laterCount) = ([], 0)
        _ = try connection.exchange(waiting, operation: "\(count) statements")
    }

    public func query<T>(_ sql: String, _ values: [SQLValue], _ row: (PGRow) throws(StoreError) -> T) throws(StoreError) -> [T] {
        let rows = try send(sql, values).rows
        var mapped: [T] = []
        mapped.reserveCapacity(rows.count)
        for columns in rows { mapped.append(try row(PGRow(columns: columns))) }
        return mapped
    }

    public func transaction<T>(durable: Bool, _ body: () throws(StoreError) -> T) throws(StoreError) -> T {
        let connection = try open()
        // One round trip: BEGIN, the writers' lock, and (for a change nothing is
        // promised on yet) a commit that does not wait for the disk; the next
        // durable commit flushes the log past it.
        try connection.simpleQuery(
            "BEGIN; SELECT pg_advisory_xact_lock(\(Self.writeLock));" + (durable ? "" : " SET LOCAL synchronous_commit = off;"))
        inTransaction = true
        defer { inTransaction = false }
        do {
            let result = try body()
            try send("COMMIT", [])  // with the statements still waiting: one round trip
            return result
        } catch {
            if !later.isEmpty { connection.forgetUnsent() }
            (later, laterCount) = ([], 0)
            if connection.usable { try? connection.simpleQuery("ROLLBACK") }
            throw error
        }
    }

    public func syncCommitted() throws(StoreError) {}

    /// `?` placeholders numbered in order, `?N` kept as `$N`; text inside quotes untouched.
    static func numbered(_ sql: String) -> String {
        guard sql.contains("?") else { return sql }
        var out = ""
        out.reserveCapacity(sql.utf8.count + 8)
        var next = 1
        var quoted = false
        var characters = sql[...]
        while let c = characters.popFirst() {
            if c == "'" { quoted.toggle() }
            guard c == "?", !quoted else {
                out.append(c)
                continue
            }
            let digits = characters.prefix { $0.isASCII && $0.isNumber }
            if digits.isEmpty {
                out += "$\(next)"
                next += 1
            } else {
                out += "$" + digits
                characters = characters.dropFirst(digits.count)
            }
        }
        return out
    }

    static func parameters(_ values: [SQLValue]) -> [PGConnection.Parameter] {
        values.map { value in
            switch value {
            case .text(let text): (Array(text.utf8), 25)
            case .integer(let number): (Array(String(number).utf8), 0)
            case .null: (nil, 0)
            }
        }
    }
}

/// A row in text format. A NULL reads as 0 or "", as SQLite's do.
public struct PGRow: SQLRow {
    let columns: [[UInt8]?]

    public func int(_ column: Int32) -> Int64 {
        guard let bytes = value(column) else { return 0 }
        // Sums come back as numeric: "123" (never a fraction here), parsed as an integer.
        return Int64(String(decoding: bytes, as: UTF8.self)) ?? 0
    }

    public func text(_ column: Int32) -> String { value(column).map { String(decoding: $0, as: UTF8.self) } ?? "" }

    public func optionalText(_ column: Int32) -> String? { value(column).map { String(decoding: $0, as: UTF8.self) } }

    public func isNull(_ column: Int32) -> Bool { value(column) == nil }

    private func value(_ column: Int32) -> [UInt8]? {
        let index = Int(column)
        return index < columns.count ? columns[index] : nil
    }
}
