import SpoolTestSupport
import Testing
@testable import SpoolStore

/// Statements are prepared once and reused; these are the ways reuse could go wrong.
@Suite struct StatementCacheTests {
    static func database(_ dir: TempDirectory) throws -> Database {
        let db = try Database(path: dir.path + "/t.db")
        try db.execute("CREATE TABLE t (k INTEGER PRIMARY KEY, v TEXT NOT NULL)")
        return db
    }

    @Test func aReusedStatementCarriesNoValuesOver() throws {
        let dir = try TempDirectory()
        let db = try Self.database(dir)
        let insert = "INSERT INTO t (k, v) VALUES (?, ?)"
        try db.run(insert, [.integer(1), .text("one")])
        try db.run(insert, [.integer(2), .text("two")])
        let rows = try db.query("SELECT k, v FROM t ORDER BY k") { row in "\(row.int(0))=\(row.text(1))" }
        #expect(rows == ["1=one", "2=two"])
    }

    @Test func aStatementThatFailedRunsAgain() throws {
        let dir = try TempDirectory()
        let db = try Self.database(dir)
        let insert = "INSERT INTO t (k, v) VALUES (?, ?)"
        try db.run(insert, [.integer(1), .text("one")])
        #expect(throws: StoreError.self) { try db.run(insert, [.integer(1), .text("again")]) }
        try db.run(insert, [.integer(2), .text("two")])
        #expect(try db.query("SELECT count(*) FROM t") { $0.int(0) } == [2])
    }

    @Test func aQueryRunFromInsideTheSameQueryGetsItsOwnStatement() throws {
        let dir = try TempDirectory()
        let db = try Self.database(dir)
        try db.run("INSERT INTO t (k, v) VALUES (1, 'a'), (2, 'b')")
        let sql = "SELECT v FROM t WHERE k >= ? ORDER BY k"
        let nested = try db.query(sql, [.integer(1)]) { row throws(StoreError) in
            row.text(0) + (try db.query(sql, [.integer(2)]) { $0.text(0) }).joined()
        }
        #expect(nested == ["ab", "bb"])
    }

    @Test func aQueryLeftHalfReadHoldsNoLock() throws {
        let dir = try TempDirectory()
        let db = try Self.database(dir)
        try db.run("INSERT INTO t (k, v) VALUES (1, 'a'), (2, 'b')")
        // The mapping throws after the first row: the statement goes back to the
        // cache mid-result, and must be reset, or its read would pin the database.
        #expect(throws: StoreError.self) {
            try db.query("SELECT v FROM t") { _ throws(StoreError) -> String in
                throw .sqlite(operation: "test", code: 1, message: "stop after one row")
            }
        }
        let other = try Database(path: dir.path + "/t.db")
        _ = try other.transaction { () throws(StoreError) in try other.run("DELETE FROM t") }
        // Column 0 is 1 when a reader kept the checkpoint from finishing.
        #expect(try other.query("PRAGMA wal_checkpoint(TRUNCATE)") { $0.int(0) } == [0])
        #expect(try db.query("SELECT count(*) FROM t") { $0.int(0) } == [0])
    }

    @Test func theCacheIsBoundedWhateverTheTexts() throws {
        let dir = try TempDirectory()
        let db = try Self.database(dir)
        for n in 0..<(Database.maxCachedStatements * 3) {
            #expect(try db.query("SELECT \(n)") { $0.int(0) } == [Int64(n)])
        }
        #expect(db.cachedStatements == Database.maxCachedStatements)
    }

    /// A statement first used once the cache is full is kept all the same (the
    /// one used longest ago makes room), and is not compiled again.
    @Test func aStatementFirstUsedWhenTheCacheIsFullIsKept() throws {
        let dir = try TempDirectory()
        let db = try Self.database(dir)
        for n in 0..<(Database.maxCachedStatements * 2) { _ = try db.query("SELECT \(n)") { $0.int(0) } }
        let before = db.prepared
        for k in 0..<3 { try db.run("INSERT INTO t (k, v) VALUES (?, 'late')", [.integer(Int64(k))]) }
        #expect(db.prepared == before + 1)
        #expect(db.cachedStatements == Database.maxCachedStatements)
    }

    /// The statements in use stay while texts used once come and go.
    @Test func aStatementInUseOutlivesOnesUsedOnce() throws {
        let dir = try TempDirectory()
        let db = try Self.database(dir)
        let hot = "SELECT count(*) FROM t"
        _ = try db.query(hot) { $0.int(0) }
        let before = db.prepared
        for n in 0..<(Database.maxCachedStatements * 3) {
            _ = try db.query("SELECT \(n)") { $0.int(0) }
            _ = try db.query(hot) { $0.int(0) }
        }
        #expect(db.prepared == before + Database.maxCachedStatements * 3)
    }
}
