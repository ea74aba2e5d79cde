import Glibc
import SpoolSystem
import SpoolTestSupport
import Testing
@testable import SpoolStore

@Suite struct WriteAheadLogTests {
    @Test func syncsTheLogThatHoldsACommit() throws {
        let dir = try TempDirectory()
        let path = dir.path + "/t.db"
        let db = try Database(path: path)
        try db.transaction(durable: false) { () throws(StoreError) in try db.execute("CREATE TABLE a (x)") }
        let log = WriteAheadLog(databasePath: path)
        #expect((try Files.size(log.path) ?? 0) > 0)  // the commit is in the log, not yet in the database file
        try log.sync()
        try log.sync()  // the second call finds the log's directory entry already synced
    }

    @Test func withoutALogTheDatabaseFileIsSynced() throws {
        let dir = try TempDirectory()
        let path = dir.path + "/t.db"
        do {
            let db = try Database(path: path)
            try db.execute("CREATE TABLE a (x)")
        }  // the last connection checkpoints the log and deletes it
        #expect(!Files.exists(path + "-wal"))
        try WriteAheadLog(databasePath: path).sync()
    }

    @Test func aMissingDatabaseIsATypedError() throws {
        let dir = try TempDirectory()
        #expect {
            try WriteAheadLog(databasePath: dir.path + "/missing/t.db").sync()
        } throws: { error in
            guard case StoreError.system(let system) = error else { return false }
            return system.errno == ENOENT && system.subject.hasSuffix("missing/t.db")
        }
    }
}

@Suite struct WriterQueueTests {
    /// Whether another open file description could take `<db>-writers` right now.
    static func writersLockIsFree(_ path: String) -> Bool {
        let fd = open(path + "-writers", O_RDWR)
        guard fd >= 0 else { return true }
        defer { close(fd) }
        guard flock(fd, LOCK_EX | LOCK_NB) == 0 else { return false }
        flock(fd, LOCK_UN)
        return true
    }

    @Test func aQueueingConnectionHoldsTheWritersLockForItsTransactionOnly() throws {
        let dir = try TempDirectory()
        let path = dir.path + "/t.db"
        let db = try Database(path: path, queueWriters: true)
        var heldInside = false
        try db.transaction { () throws(StoreError) in
            try db.execute("CREATE TABLE a (x)")
            heldInside = !Self.writersLockIsFree(path)
        }
        #expect(heldInside)
        #expect(Self.writersLockIsFree(path))
    }

    @Test func aConnectionThatDoesNotQueueNeverTakesIt() throws {
        let dir = try TempDirectory()
        let path = dir.path + "/t.db"
        _ = try Database(path: path, queueWriters: true)  // creates the file
        let db = try Database(path: path)
        var freeInside = false
        try db.transaction { () throws(StoreError) in
            try db.execute("CREATE TABLE a (x)")
            freeInside = Self.writersLockIsFree(path)
        }
        #expect(freeInside)
    }
}
