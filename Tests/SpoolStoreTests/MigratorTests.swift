import SpoolTestSupport
import Testing
@testable import SpoolStore

@Suite struct MigratorTests {
    @Test func embeddedMigrationsComeFromTheMigrationsFolder() throws {
        let migrations = try Migrator.embedded()
        #expect(migrations.first?.version == 1)
        #expect(migrations.first?.name == "create_uploads")
        #expect(migrations.first?.sql.contains("CREATE TABLE uploads") == true)
    }

    @Test func appliesOnceAndIsIdempotent() throws {
        let dir = try TempDirectory()
        let db = try Database(path: dir.path + "/t.db")
        let migrations = try Migrator.embedded()
        #expect(try Migrator.migrate(db, migrations: migrations).count == migrations.count)
        #expect(try Migrator.migrate(db, migrations: migrations).isEmpty)
        let status = try Migrator.status(db, migrations: migrations)
        #expect(status.current == migrations.count && status.pending == 0)
        let rows = try db.query("SELECT count(*) FROM spool_migrations") { $0.int(0) }
        #expect(rows == [Int64(migrations.count)])
    }

    @Test func eachMigrationIsOneTransaction() throws {
        let dir = try TempDirectory()
        let db = try Database(path: dir.path + "/t.db")
        let good = Migration(version: 1, name: "one", sql: "CREATE TABLE a (x)")
        let bad = Migration(version: 2, name: "two", sql: "CREATE TABLE b (x); THIS IS NOT SQL")
        #expect(throws: StoreError.self) { try Migrator.migrate(db, migrations: [good, bad]) }
        // The first stays applied; nothing of the second (not even table b) remains.
        #expect(try Migrator.status(db, migrations: [good, bad]).current == 1)
        let tables = try db.query("SELECT name FROM sqlite_master WHERE type = 'table' AND name = 'b'") { $0.text(0) }
        #expect(tables.isEmpty)
    }

    @Test func refusesADatabaseNewerThanTheBinary() throws {
        let dir = try TempDirectory()
        let db = try Database(path: dir.path + "/t.db")
        let one = Migration(version: 1, name: "one", sql: "CREATE TABLE a (x)")
        let two = Migration(version: 2, name: "two", sql: "CREATE TABLE b (x)")
        try Migrator.migrate(db, migrations: [one, two])
        #expect(throws: StoreError.schemaTooNew(path: db.path, version: 2, known: 1)) {
            try Migrator.migrate(db, migrations: [one])
        }
        #expect(throws: StoreError.self) { try Migrator.status(db, migrations: [one]) }
    }

    @Test func refusesAnEditedMigration() throws {
        let dir = try TempDirectory()
        let db = try Database(path: dir.path + "/t.db")
        try Migrator.migrate(db, migrations: [Migration(version: 1, name: "one", sql: "CREATE TABLE a (x)")])
        let edited = Migration(version: 1, name: "one", sql: "CREATE TABLE a (x, y)")
        #expect(throws: StoreError.migrationEdited(version: 1, name: "one")) {
            try Migrator.migrate(db, migrations: [edited])
        }
    }

    /// "Current is the highest applied" holds only without gaps: a ledger missing an
    /// entry below its highest (edited by hand, or a bug) is refused, never trusted.
    @Test func refusesALedgerWithAGap() throws {
        let dir = try TempDirectory()
        let db = try Database(path: dir.path + "/t.db")
        let migrations = [
            Migration(version: 1, name: "one", sql: "CREATE TABLE a (x)"),
            Migration(version: 2, name: "two", sql: "CREATE TABLE b (x)"),
            Migration(version: 3, name: "three", sql: "CREATE TABLE c (x)"),
        ]
        try Migrator.migrate(db, migrations: migrations)
        try db.run("DELETE FROM spool_migrations WHERE version = 2")
        #expect(throws: StoreError.migrationGap(path: db.path, missing: [2])) { try Migrator.status(db, migrations: migrations) }
        #expect(throws: StoreError.migrationGap(path: db.path, missing: [2])) { try Migrator.migrate(db, migrations: migrations) }
    }

    @Test(arguments: ["create.sql", "1_create.sql", "0001create.sql", "0000_zero.sql", "0001_x.txt", "abcd_x.sql"])
    func rejectsBadFileNames(file: String) {
        #expect(throws: StoreError.self) { try Migration(file: file, sql: "") }
    }

    @Test func storeRefusesAMissingOrStaleDatabase() throws {
        let dir = try TempDirectory()
        let directory = DataDirectory(dir.path)
        #expect(throws: StoreError.noDatabase(path: directory.databasePath)) { try Store(directory: directory) }
        _ = try Database(path: directory.databasePath)  // exists, but no schema
        let latest = try Migrator.embedded().count
        #expect(throws: StoreError.schemaBehind(path: directory.databasePath, version: 0, latest: latest)) {
            try Store(directory: directory)
        }
    }
}
