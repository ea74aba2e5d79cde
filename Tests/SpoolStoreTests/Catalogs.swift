import Foundation
import SpoolPostgres
import SpoolSystem
import SpoolTestSupport
import Testing

@testable import SpoolStore

/// The catalogs the store's tests run against: every rule of the catalog
/// (admission, totals, states, events, tokens) is checked on both engines by
/// the same tests. PostgreSQL is a real server (`scripts/pg`), a database per test.
enum CatalogKind: String, CaseIterable, CustomTestStringConvertible, Sendable {
    case sqlite, postgres

    var testDescription: String { rawValue }

    /// A new store in `dir` (its blobs in the spool directory), its catalog migrated.
    func open(_ dir: TempDirectory) throws -> Store {
        switch self {
        case .sqlite:
            return try Store.openMigrating(directory: DataDirectory(dir.path)).0
        case .postgres:
            let location = try PostgresCatalog.location(PostgresServer.database("store"), environment: [:])
            return try Store.openMigrating(directory: DataDirectory(dir.path), backends: StoreBackends(catalog: location)).0
        }
    }
}

extension Store {
    /// Runs a query on the catalog's own connection, whichever engine (tests that
    /// compare a running total with the sum it replaces).
    func query<T>(_ sql: String, _ row: @escaping (any SQLRow) -> T) throws(StoreError) -> [T] {
        if let sqlite = catalog as? SQLiteCatalog {
            return try sqlite.locked { db throws(StoreError) in try db.query(sql) { row($0) } }
        }
        if let postgres = catalog as? SQLCatalog<PostgresEngine> {
            return try postgres.locked { db throws(StoreError) in try db.query(sql) { row($0) } }
        }
        throw .sqlite(operation: "test", code: 0, message: "an unknown catalog")
    }
}

/// What the catalog keeps besides upload rows, and the SQL the two engines
/// spell differently (GLOB, ASCII case), checked alike on both.
@Suite struct CatalogContractTests {
    static func begin(_ store: Store, _ name: String, token: String? = nil) throws {
        var new = NewUpload(
            name: name, size: 1, sha256: String(repeating: "a", count: 64), clientIP: "127.0.0.1", clientPort: 1, workerPID: 1)
        new.token = token
        Files.close(try store.begin(new, id: "ID-\(name)").fd)
    }

    @Test(arguments: CatalogKind.allCases) func namesMatchGlobPatternsAsSQLiteDoes(_ catalog: CatalogKind) throws {
        let dir = try TempDirectory()
        let store = try catalog.open(dir)
        for name in ["a.pdf", "b.PDF", "report-2024.txt", "report-20.txt", "a*b", "axb", "[x]", "ünï.pdf", "back\\slash"] {
            try Self.begin(store, name)
        }
        func matching(_ pattern: String) throws -> Set<String> {
            var filter = UploadFilter()
            filter.nameGlob = pattern
            return Set(try store.uploads(matching: filter).map(\.name))
        }
        #expect(try matching("*.pdf") == ["a.pdf", "ünï.pdf"])
        #expect(try matching("report-202?*") == ["report-2024.txt"])
        #expect(try matching("a[*]b") == ["a*b"])
        #expect(try matching("a?b") == ["a*b", "axb"])
        #expect(try matching("[ab].*") == ["a.pdf", "b.PDF"])
        #expect(try matching("[^ab]*") == ["report-2024.txt", "report-20.txt", "[x]", "ünï.pdf"])
        #expect(try matching("[[]x]") == ["[x]"])
        #expect(try matching("back\\slash") == ["back\\slash"])
        #expect(try matching("*") .count == 9)
        #expect(try matching("report.*").isEmpty, "a dot is a dot")
    }

    @Test(arguments: CatalogKind.allCases) func tokensEventsAndTheHookCursor(_ catalog: CatalogKind) throws {
        let dir = try TempDirectory()
        let store = try catalog.open(dir)
        #expect(try !store.hasActiveTokens())
        let secret = try store.createToken(name: "alice", admin: false, quota: TokenQuota(bytes: 10, files: nil))
        _ = try store.createToken(name: "root", admin: true, quota: TokenQuota())
        #expect(try store.hasActiveTokens())
        let alice = try #require(try store.authenticate(secret: secret))
        #expect(alice.name == "alice" && !alice.admin && alice.quotaBytes == 10 && alice.quotaFiles == nil)
        #expect(try store.tokens().map(\.name) == ["alice", "root"])
        #expect(try store.tokens().last?.quotaBytes == nil)
        #expect(try store.authenticate(secret: secret + "x") == nil)
        #expect(try store.revokeToken(name: "alice") && !store.revokeToken(name: "alice"))
        #expect(try store.authenticate(secret: secret) == nil)

        #expect(try store.hookCursor() == nil)
        let start = try store.startHookCursor()
        try Self.begin(store, "one", token: "root")
        try Self.begin(store, "two")
        let events = try store.events(after: start, limit: 10)
        #expect(events.map(\.kind) == ["created", "created"] && events.map(\.uploadID) == ["ID-one", "ID-two"])
        #expect(events[1].seq > events[0].seq)
        #expect(try store.advanceHookCursor(from: start, to: events[0].seq))
        #expect(try !store.advanceHookCursor(from: start, to: events[1].seq), "moved meanwhile")
        for attempt in 1...105 {
            try store.recordHookFailure(HookFailure(at: "t", seq: events[1].seq, hook: "post-finish", attempt: attempt, outcome: "exit 1"))
        }
        let ledger = try store.hookLedger(failures: 3)
        #expect(ledger.cursor == events[0].seq && ledger.pending == 1 && ledger.lastEvent == events[1].seq)
        #expect(ledger.failures.map(\.attempt) == [105, 104, 103])
        #expect(try store.query("SELECT count(*) FROM hook_failures") { $0.int(0) } == [100])
        try store.setHookCursor(0)
        #expect(try store.hookCursor() == 0)
        let stats = try store.stats(completedSince: "0")
        #expect(stats.uploads == 2 && stats.receiving == 2 && stats.completedSince == 0 && stats.bytesStored == 0)
        #expect(try store.find("ONE", limit: 5).map(\.name) == ["one"])
        #expect(try store.find("one", limit: 5, token: "nobody").isEmpty)
        #expect(try store.find("one", limit: 5, token: "root").map(\.name) == ["one"])
    }
}

/// Two stores on one PostgreSQL catalog, as two hosts: one writer per upload
/// across them (the catalog's lease), given back when a writer lets go or dies.
@Suite struct LeaseTests {
    @Test func aWriterOnOneHostMakesTheUploadBusyOnTheOther() throws {
        let url = try PostgresServer.database("lease")
        let location = try PostgresCatalog.location(url, environment: [:])
        let (dirA, dirB) = (try TempDirectory(), try TempDirectory())
        var hostA: Store? = try Store.openMigrating(directory: DataDirectory(dirA.path), backends: StoreBackends(catalog: location)).0
        let hostB = try Store.openMigrating(directory: DataDirectory(dirB.path), backends: StoreBackends(catalog: location)).0
        let bytes = Array(repeating: UInt8(7), count: 1000)
        let new = NewUpload(name: "f", size: 1000, sha256: String(repeating: "b", count: 64), clientIP: "127.0.0.1", clientPort: 1, workerPID: 42)
        let upload = try #require(hostA).begin(new, id: "ID-L")
        try bytes[0..<100].withUnsafeBytes { try Files.writeAll(upload.fd, $0) }
        func resumeOnB() throws -> String {
            switch try hostB.resume(id: "ID-L", sha256: new.sha256, clientIP: "127.0.0.1", clientPort: 2, workerPID: 43) {
            case .busy: return "busy"
            case .opened: return "opened"
            case .alreadyComplete: return "complete"
            case .notResumable(let reason): return reason
            }
        }
        // Receiving on A: busy on B (not "gone", though B has no staging of it).
        #expect(try resumeOnB() == "busy")
        // B's start-up recovery leaves A's live upload alone (and B's worker 42 is not A's).
        #expect(try hostB.interruptReceiving(workerPID: 42, reason: "worker 42 died").isEmpty)
        #expect(try hostB.upload(id: "ID-L")?.state == .receiving)
        // A lets go (interrupted): the lease is free; A resumes it and holds it again.
        try #require(hostA).interrupt(upload, received: 100, reason: "cut")
        guard case .opened(let again, _) = try #require(hostA).resume(
            id: "ID-L", sha256: new.sha256, clientIP: "127.0.0.1", clientPort: 3, workerPID: 42)
        else { Issue.record("A could not resume its own upload"); return }
        #expect(again.offset == 100)
        #expect(try resumeOnB() == "busy")
        // A dies (its connection to the catalog closes): the lease is B's at once.
        Files.close(again.fd)
        hostA = nil
        var taken = false
        for _ in 0..<50 where !taken {
            taken = try hostB.catalog.takeLease(id: "ID-L")
            if !taken { usleep(20_000) }
        }
        #expect(taken)
    }
}
