import Crypto
import Foundation
import Synchronization
import SpoolTestSupport
import SpoolProtocol
import SpoolSystem
import Testing
@testable import SpoolStore

private func sha256(_ bytes: [UInt8]) -> String { Checksum.hex(SHA256.hash(data: bytes)) }

private func newUpload(_ bytes: [UInt8], name: String = "f.bin") -> NewUpload {
    NewUpload(name: name, size: Int64(bytes.count), sha256: sha256(bytes), clientIP: "127.0.0.1", clientPort: 4242, workerPID: 77)
}

private func writeFile(_ path: String, _ bytes: [UInt8]) {
    _ = FileManager.default.createFile(atPath: path, contents: Data(bytes))
}

private func write(_ upload: OpenUpload, _ bytes: [UInt8]) throws {
    try bytes.withUnsafeBytes { try Files.writeAll(upload.fd, $0) }
}

@Suite struct StoreTests {
    @Test(arguments: CatalogKind.allCases) func completedUploadIsPublishedUnderItsChecksum(_ catalog: CatalogKind) throws {
        let dir = try TempDirectory()
        let store = try catalog.open(dir)
        let bytes = Array("hello, spool".utf8)
        let upload = try store.begin(newUpload(bytes, name: "hello world.txt"), id: "ID-A")
        #expect(try store.upload(id: "ID-A")?.state == .receiving)
        try write(upload, bytes)

        let outcome = try store.complete(upload, received: Int64(bytes.count), sha256: sha256(bytes))
        let object = store.directory.objectFile(sha256: sha256(bytes))
        #expect(outcome == .stored(objectPath: object))
        #expect(FileManager.default.contents(atPath: object) == Data(bytes))
        #expect(!Files.exists(upload.tempPath))

        let row = try #require(try store.upload(id: "ID-A"))
        #expect(row.state == .complete && row.received == Int64(bytes.count) && row.name == "hello world.txt")
        #expect(row.clientIP == "127.0.0.1" && row.clientPort == 4242 && row.workerPID == 77)
        #expect(row.finishedAt != nil && row.error == nil)
    }

    @Test(arguments: CatalogKind.allCases) func checksumMismatchPublishesNothing(_ catalog: CatalogKind) throws {
        let dir = try TempDirectory()
        let store = try catalog.open(dir)
        let declared = Array("what was promised".utf8)
        let sent = Array("what was delivered".utf8.prefix(declared.count))
        let upload = try store.begin(newUpload(declared), id: "ID-B")
        try write(upload, sent)
        let outcome = try store.complete(upload, received: Int64(sent.count), sha256: sha256(sent))
        #expect(outcome == .checksumMismatch(actual: sha256(sent)))
        #expect(!Files.exists(store.directory.objectFile(sha256: sha256(declared))))
        #expect(!Files.exists(store.directory.objectFile(sha256: sha256(sent))))
        #expect(!Files.exists(upload.tempPath))
        let row = try #require(try store.upload(id: "ID-B"))
        #expect(row.state == .failed)
        #expect(row.error?.contains("checksum mismatch") == true)
    }

    @Test(arguments: CatalogKind.allCases) func sameContentIsStoredOnce(_ catalog: CatalogKind) throws {
        let dir = try TempDirectory()
        let store = try catalog.open(dir)
        let bytes = Array(repeating: UInt8(7), count: 10_000)
        for (id, name) in [("ID-1", "first"), ("ID-2", "second")] {
            let upload = try store.begin(newUpload(bytes, name: name), id: id)
            try write(upload, bytes)
            _ = try store.complete(upload, received: Int64(bytes.count), sha256: sha256(bytes))
        }
        #expect(try store.uploads().map(\.state) == [.complete, .complete])
        let objectDir = store.directory.objectDirectory(sha256: sha256(bytes))
        #expect(try Files.list(objectDir) == [sha256(bytes)])
    }

    @Test(arguments: CatalogKind.allCases) func anObjectDirectoryRemovedByHandIsMadeAgain(_ catalog: CatalogKind) throws {
        let dir = try TempDirectory()
        let store = try catalog.open(dir)
        let bytes = Array("its directory is gone".utf8)
        try FileManager.default.removeItem(atPath: store.directory.objectDirectory(sha256: sha256(bytes)))
        let upload = try store.begin(newUpload(bytes), id: "ID-D")
        try write(upload, bytes)
        _ = try store.complete(upload, received: Int64(bytes.count), sha256: sha256(bytes))
        #expect(FileManager.default.contents(atPath: store.directory.objectFile(sha256: sha256(bytes))) == Data(bytes))
        #expect(try store.upload(id: "ID-D")?.state == .complete)
    }

    @Test(arguments: CatalogKind.allCases) func aChecksumSentAfterTheBodyIsRecordedOnTheRow(_ catalog: CatalogKind) throws {
        let dir = try TempDirectory()
        let store = try catalog.open(dir)
        let bytes = Array("declared afterwards".utf8)
        var new = newUpload(bytes)
        new.sha256 = ""
        let upload = try store.begin(new, id: "ID-E")
        try write(upload, bytes)
        _ = try store.complete(upload, received: Int64(bytes.count), sha256: sha256(bytes), declared: sha256(bytes))
        #expect(try store.upload(id: "ID-E")?.sha256 == sha256(bytes))
    }

    /// A checksum sent after the body that the bytes do not match is still the
    /// declared one: the failed row records it, as a row declared up front does.
    @Test(arguments: CatalogKind.allCases) func aWrongChecksumSentAfterTheBodyIsRecordedOnTheFailedRow(_ catalog: CatalogKind) throws {
        let dir = try TempDirectory()
        let store = try catalog.open(dir)
        let bytes = Array("declared afterwards".utf8), lie = sha256(Array("something else".utf8))
        var new = newUpload(bytes)
        new.sha256 = ""
        let upload = try store.begin(new, id: "ID-F")
        try write(upload, bytes)
        #expect(try store.complete(upload, received: Int64(bytes.count), sha256: sha256(bytes), declared: lie)
            == .checksumMismatch(actual: sha256(bytes)))
        let row = try #require(try store.upload(id: "ID-F"))
        #expect(row.state == .failed && row.sha256 == lie)
        #expect(row.error == "checksum mismatch: declared \(lie), received \(sha256(bytes))")
        #expect(!Files.exists(store.directory.objectFile(sha256: sha256(bytes))))
    }

    @Test(arguments: CatalogKind.allCases) func interruptedUploadKeepsItsBytesForResume(_ catalog: CatalogKind) throws {
        let dir = try TempDirectory()
        let store = try catalog.open(dir)
        let bytes = Array(repeating: UInt8(1), count: 1000)
        let upload = try store.begin(newUpload(bytes), id: "ID-C")
        try write(upload, Array(bytes.prefix(400)))
        try store.interrupt(upload, received: 400, reason: "client disconnected")
        let row = try #require(try store.upload(id: "ID-C"))
        #expect(row.state == .interrupted && row.received == 400 && row.finishedAt == nil)
        #expect(try Files.size(upload.tempPath) == 400)
    }

    @Test(arguments: CatalogKind.allCases) func uploadsOfADeadWorkerBecomeInterruptedWithTheirBytesOnDisk(_ catalog: CatalogKind) throws {
        let dir = try TempDirectory()
        let store = try catalog.open(dir)
        let mine = try store.begin(newUpload(Array(repeating: 9, count: 100)), id: "ID-MINE")
        try write(mine, Array(repeating: 9, count: 60))
        Files.close(mine.fd)
        var other = newUpload([1, 2, 3])
        other.workerPID = 88
        Files.close(try store.begin(other, id: "ID-OTHER").fd)

        let changed = try store.interruptReceiving(workerPID: 77, reason: "worker 77 killed by KILL")
        #expect(changed.map(\.id) == ["ID-MINE"] && changed.map(\.received) == [60])
        let row = try #require(try store.upload(id: "ID-MINE"))
        #expect(row.state == .interrupted && row.received == 60 && row.error == "worker 77 killed by KILL")
        #expect(try store.upload(id: "ID-OTHER")?.state == .receiving)

        // At start-up every upload still receiving lost its worker.
        #expect(try store.interruptReceiving(workerPID: nil, reason: "server restarted").map(\.id) == ["ID-OTHER"])
        #expect(try store.interruptReceiving(workerPID: nil, reason: "server restarted").isEmpty)
    }

    /// One that never had a named file (a small upload written whole to an unnamed
    /// one) has nothing a resume could use: it fails, and holds no space for a TTL.
    @Test(arguments: CatalogKind.allCases) func anUploadOfADeadWorkerWithoutAFileFails(_ catalog: CatalogKind) throws {
        let dir = try TempDirectory()
        let store = try catalog.open(dir)
        let whole = try store.begin(newUpload(Array(repeating: 5, count: 500)), id: "ID-WHOLE", unnamed: true)
        Files.close(whole.fd)
        #expect(try store.interruptReceiving(workerPID: 77, reason: "worker 77 killed by KILL").isEmpty)
        let row = try #require(try store.upload(id: "ID-WHOLE"))
        #expect(row.state == .failed && row.error?.contains("no bytes were kept") == true, "\(row)")
        let reserved = try store.query("SELECT total FROM reserved_bytes WHERE id = 1") { $0.int(0) }
        #expect(reserved == [0], "its reservation is given back")
    }

    @Test(arguments: CatalogKind.allCases) func strayTempFilesAreRemovedAndResumableOnesKept(_ catalog: CatalogKind) throws {
        let dir = try TempDirectory()
        let store = try catalog.open(dir)
        let kept = try store.begin(newUpload([1, 2, 3]), id: "ID-KEPT")
        Files.close(kept.fd)
        writeFile(store.directory.tempFile(id: "ID-NOBODY"), [0])
        writeFile(store.directory.tempPath + "/junk", [0])
        #expect(try store.removeStrayTempFiles() == ["ID-NOBODY.part", "junk"])
        #expect(try Files.list(store.directory.tempPath) == ["ID-KEPT.part"])
    }

    @Test(arguments: CatalogKind.allCases) func listsNewestFirstWithALimit(_ catalog: CatalogKind) throws {
        let dir = try TempDirectory()
        let store = try catalog.open(dir)
        for i in 0..<3 {
            let upload = try store.begin(newUpload([UInt8(i)]), id: "ID-\(i)")
            Files.close(upload.fd)
            usleep(2000)  // distinct created_at milliseconds
        }
        #expect(try store.uploads().map(\.id) == ["ID-2", "ID-1", "ID-0"])
        #expect(try store.uploads(limit: 1).map(\.id) == ["ID-2"])
    }
}

@Suite struct ResumeStoreTests {
    @Test(arguments: CatalogKind.allCases) func interruptedUploadResumesWhereItsBytesEnd(_ catalog: CatalogKind) throws {
        let dir = try TempDirectory()
        let store = try catalog.open(dir)
        let bytes = (0..<50_000).map { UInt8(truncatingIfNeeded: $0 &* 31) }
        let first = try store.begin(newUpload(bytes), id: "ID-R")
        try write(first, Array(bytes.prefix(20_000)))
        try store.interrupt(first, received: 20_000, reason: "cut")

        guard case .opened(let again, var prefix) = try store.resume(
            id: "ID-R", sha256: sha256(bytes), clientIP: "::1", clientPort: 9, workerPID: 78)
        else { Issue.record("not reopened"); return }
        #expect(again.offset == 20_000)
        let row = try #require(try store.upload(id: "ID-R"))
        #expect(row.state == .receiving && row.workerPID == 78 && row.clientIP == "::1")

        let rest = Array(bytes.dropFirst(20_000))
        try write(again, rest)
        rest.withUnsafeBytes { prefix.hasher.update(bufferPointer: $0) }
        let outcome = try store.complete(again, received: 50_000, sha256: Checksum.hex(prefix.hasher.finalize()))
        #expect(outcome == .stored(objectPath: store.directory.objectFile(sha256: sha256(bytes))))
        #expect(FileManager.default.contents(atPath: store.directory.objectFile(sha256: sha256(bytes))) == Data(bytes))

        // Asking again once it is stored answers with the stored upload.
        guard case .alreadyComplete(let done) = try store.resume(
            id: "ID-R", sha256: sha256(bytes), clientIP: "::1", clientPort: 9, workerPID: 78)
        else { Issue.record("expected alreadyComplete"); return }
        #expect(done.state == .complete)
    }

    @Test(arguments: CatalogKind.allCases) func aSecondWriterIsTurnedAway(_ catalog: CatalogKind) throws {
        let dir = try TempDirectory()
        let store = try catalog.open(dir)
        let bytes = Array(repeating: UInt8(3), count: 100)
        let held = try store.begin(newUpload(bytes), id: "ID-BUSY")
        guard case .busy = try store.resume(id: "ID-BUSY", sha256: sha256(bytes), clientIP: "x", clientPort: 1, workerPID: 2)
        else { Issue.record("expected busy while the first writer holds it"); return }
        try store.interrupt(held, received: 0, reason: "cut")
        guard case .opened(let again, _) = try store.resume(
            id: "ID-BUSY", sha256: sha256(bytes), clientIP: "x", clientPort: 1, workerPID: 2)
        else { Issue.record("expected to reopen once released"); return }
        Files.close(again.fd)
    }

    @Test(arguments: CatalogKind.allCases) func findMatchesANameOrItsOtherSpellingOrAChecksumPrefix(_ catalog: CatalogKind) throws {
        let dir = try TempDirectory()
        let store = try catalog.open(dir)
        let bytes = Array("cv".utf8)
        let upload = try store.begin(newUpload(bytes, name: "Résumé 2026.pdf"), id: "ID-CV")
        try write(upload, bytes)
        _ = try store.complete(upload, received: 2, sha256: sha256(bytes))
        #expect(try store.find("sumé", limit: 10).map(\.id) == ["ID-CV"])
        #expect(try store.find("RÉSUMÉ", limit: 10).isEmpty, "case folds ASCII letters only")
        #expect(try store.find("r%C3%A9sum%C3%A9", limit: 10).isEmpty)
        #expect(try store.find("r%C3%A9sum%C3%A9", or: "résumé", limit: 10).map(\.id) == ["ID-CV"])
        #expect(try store.find(String(sha256(bytes).prefix(10)), limit: 10).map(\.id) == ["ID-CV"])
        #expect(try store.find("nothing", or: "else", limit: 10).isEmpty)
    }

    @Test(arguments: CatalogKind.allCases) func wrongChecksumOrIdLearnsNothing(_ catalog: CatalogKind) throws {
        let dir = try TempDirectory()
        let store = try catalog.open(dir)
        let bytes = Array(repeating: UInt8(4), count: 10)
        try store.interrupt(try store.begin(newUpload(bytes), id: "ID-W"), received: 0, reason: "cut")
        for (id, sum) in [("ID-W", sha256([1])), ("ID-NOPE", sha256(bytes))] {
            guard case .notResumable(let reason) = try store.resume(id: id, sha256: sum, clientIP: "x", clientPort: 1, workerPID: 2)
            else { Issue.record("expected notResumable"); continue }
            #expect(reason == "no upload \(id) with that checksum; start a new upload")
        }
    }

    @Test(arguments: CatalogKind.allCases) func abandonedPartialsExpireUnlessBeingResumed(_ catalog: CatalogKind) throws {
        let dir = try TempDirectory()
        let store = try catalog.open(dir)
        let a = try store.begin(newUpload([1]), id: "ID-OLD")
        try store.interrupt(a, received: 0, reason: "cut")
        let b = try store.begin(newUpload([2]), id: "ID-HELD")
        try store.interrupt(b, received: 0, reason: "cut")
        guard case .opened(let held, _) = try store.resume(id: "ID-HELD", sha256: sha256([2]), clientIP: "x", clientPort: 1, workerPID: 2)
        else { Issue.record("not reopened"); return }
        try store.interrupt(held, received: 0, reason: "cut again")
        let relock = try Files.open(held.tempPath, flags: O_RDONLY)
        #expect(try Files.tryLock(relock))

        #expect(try store.expireInterrupted(before: "9999-01-01T00:00:00.000Z") == ["ID-OLD"])
        #expect(try store.upload(id: "ID-OLD")?.state == .expired)
        #expect(!Files.exists(a.tempPath))
        #expect(try store.upload(id: "ID-HELD")?.state == .interrupted)
        Files.close(relock)
        #expect(try store.expireInterrupted(before: "2000-01-01T00:00:00.000Z").isEmpty)
    }
}

/// First rows of concurrent uploads share transactions (Store.together): each is
/// still admitted on its own, counting those committed before it in its batch.
@Suite struct BatchedBeginTests {
    @Test(arguments: CatalogKind.allCases) func concurrentBeginsAreEachAdmittedAgainstTheOthers(_ catalog: CatalogKind) throws {
        let dir = try TempDirectory()
        let store = try catalog.open(dir)
        let quota = TokenQuota(files: 5)
        let outcomes = Mutex<[String]>([])
        DispatchQueue.concurrentPerform(iterations: 16) { n in
            let bytes = Array("upload \(n)".utf8)
            var new = newUpload(bytes, name: "f\(n)")
            new.token = "alice"
            let outcome: String
            do {
                let upload = try store.begin(new, id: "ID-\(n)", quota: quota)
                Files.close(upload.fd)
                outcome = "opened"
            } catch StoreError.refused(.quotaFiles) {
                outcome = "refused"
            } catch {
                outcome = "\(error)"
            }
            outcomes.withLock { $0.append(outcome) }
        }
        let seen = outcomes.withLock { $0 }
        #expect(seen.filter { $0 == "opened" }.count == 5, "\(seen)")
        #expect(seen.filter { $0 == "refused" }.count == 11, "\(seen)")
        let rows = try store.uploads()
        #expect(rows.count == 5 && rows.allSatisfy { $0.state == .receiving && $0.token == "alice" })
        #expect(try store.events().filter { $0.kind == "created" }.count == 5)
    }
}

/// Small uploads written whole go through a file with no name (O_TMPFILE) that is
/// linked into place: nothing appears in `tmp/` or under `objects/` before it is complete.
@Suite struct UnnamedUploadTests {
    static func listing(_ store: Store, _ sha: String) throws -> [String] {
        try FileManager.default.contentsOfDirectory(atPath: store.directory.objectDirectory(sha256: sha))
    }

    @Test(arguments: CatalogKind.allCases) func anUnnamedUploadIsLinkedIntoPlaceOnlyWhenComplete(_ catalog: CatalogKind) throws {
        let dir = try TempDirectory()
        let store = try catalog.open(dir)
        let bytes = Array("small and whole".utf8)
        let upload = try store.begin(newUpload(bytes), id: "ID-U", unnamed: true)
        #expect(upload.unnamed, "this file system offers O_TMPFILE")
        try write(upload, bytes)
        #expect(try FileManager.default.contentsOfDirectory(atPath: store.directory.tempPath).isEmpty)
        #expect(try Self.listing(store, sha256(bytes)).isEmpty)
        let outcome = try store.complete(upload, received: Int64(bytes.count), sha256: sha256(bytes))
        #expect(outcome == .stored(objectPath: store.directory.objectFile(sha256: sha256(bytes))))
        #expect(FileManager.default.contents(atPath: store.directory.objectFile(sha256: sha256(bytes))) == Data(bytes))
        #expect(try store.upload(id: "ID-U")?.state == .complete)
    }

    @Test(arguments: CatalogKind.allCases) func aMismatchLeavesNothingBehind(_ catalog: CatalogKind) throws {
        let dir = try TempDirectory()
        let store = try catalog.open(dir)
        let declared = Array("promised".utf8)
        let sent = Array("received".utf8)
        let upload = try store.begin(newUpload(declared), id: "ID-M", unnamed: true)
        try write(upload, sent)
        #expect(try store.complete(upload, received: Int64(sent.count), sha256: sha256(sent)) == .checksumMismatch(actual: sha256(sent)))
        #expect(try Self.listing(store, sha256(declared)).isEmpty)
        #expect(try FileManager.default.contentsOfDirectory(atPath: store.directory.tempPath).isEmpty)
        #expect(try store.upload(id: "ID-M")?.state == .failed)
    }

    /// The same content again keeps the object there; a damaged object is replaced,
    /// so the object always holds what the last upload of it received.
    @Test(arguments: CatalogKind.allCases) func anExistingObjectIsKeptWhenIntactAndReplacedWhenDamaged(_ catalog: CatalogKind) throws {
        let dir = try TempDirectory()
        let store = try catalog.open(dir)
        let bytes = Array("the same bytes, twice".utf8)
        let object = store.directory.objectFile(sha256: sha256(bytes))
        for id in ["ID-1", "ID-2"] {
            let upload = try store.begin(newUpload(bytes), id: id, unnamed: true)
            try write(upload, bytes)
            _ = try store.complete(upload, received: Int64(bytes.count), sha256: sha256(bytes))
        }
        #expect(FileManager.default.contents(atPath: object) == Data(bytes))

        writeFile(object, Array("the same bytes, twicE".utf8))  // damaged in place, same size
        let again = try store.begin(newUpload(bytes), id: "ID-3", unnamed: true)
        try write(again, bytes)
        #expect(try store.complete(again, received: Int64(bytes.count), sha256: sha256(bytes)) == .stored(objectPath: object))
        #expect(FileManager.default.contents(atPath: object) == Data(bytes))
        #expect(try store.uploads().map(\.state) == [.complete, .complete, .complete])
    }

    @Test(arguments: CatalogKind.allCases) func withoutADeclaredChecksumTheFileIsNamedAsUsual(_ catalog: CatalogKind) throws {
        let dir = try TempDirectory()
        let store = try catalog.open(dir)
        var new = newUpload(Array("later".utf8))
        new.sha256 = ""
        let upload = try store.begin(new, id: "ID-L", unnamed: true)
        #expect(!upload.unnamed && Files.exists(store.directory.tempFile(id: "ID-L")))
        try store.fail(upload, received: 0, reason: "test")
    }
}

/// Takes uploads through every change of state a running total must follow
/// (receiving, complete, interrupted, failed, resumed, expired, interrupted at a
/// restart, deleted), and reads `measure` after each step. A and B are alice's,
/// C and D bob's, E anonymous.
func walkEveryTransition<T>(_ store: Store, measure: () throws -> T) throws -> [(String, T)] {
    var steps: [(String, T)] = []
    func check(_ step: String) throws { steps.append((step, try measure())) }
    func begin(_ bytes: [UInt8], _ id: String, token: String?, unnamed: Bool = false) throws -> OpenUpload {
        var new = newUpload(bytes, name: id)
        new.token = token
        return try store.begin(new, id: id, unnamed: unnamed)
    }
    try check("empty")
    let a = Array(repeating: UInt8(1), count: 1000), b = Array(repeating: UInt8(2), count: 3000)
    let c = Array(repeating: UInt8(3), count: 500), d = Array(repeating: UInt8(4), count: 700)
    let e = Array(repeating: UInt8(5), count: 90)
    let ua = try begin(a, "ID-A", token: "alice")
    let ub = try begin(b, "ID-B", token: "alice")
    let uc = try begin(c, "ID-C", token: "bob", unnamed: true)
    let ud = try begin(d, "ID-D", token: "bob")
    let ue = try begin(e, "ID-E", token: nil)
    try check("five receiving")
    try write(ua, a)
    _ = try store.complete(ua, received: 1000, sha256: sha256(a))
    try check("one complete")
    try write(ub, Array(b[0..<1200]))
    try store.interrupt(ub, received: 1200, reason: "cut")
    try check("one interrupted with 1,200 of 3,000 bytes")
    try store.fail(uc, received: 0, reason: "write failed")
    try store.fail(ue, received: 0, reason: "write failed")
    try check("two failed")
    guard case .opened(let again, _) = try store.resume(
        id: "ID-B", sha256: sha256(b), token: "alice", clientIP: "127.0.0.1", clientPort: 1, workerPID: 1)
    else {
        Issue.record("not resumed")
        return steps
    }
    try check("resumed")
    try store.interrupt(again, received: 1200, reason: "cut again")
    _ = try store.expireInterrupted(before: "9999-12-31T00:00:00.000Z")
    try check("expired")
    Files.close(ud.fd)
    _ = try store.interruptReceiving(workerPID: nil, reason: "restart")
    try check("left receiving at a restart")
    _ = try store.delete(id: "ID-D")
    _ = try store.delete(id: "ID-A")
    try check("deleted")
    return steps
}

/// Walks every transition in a new store, expects each running total `measure`
/// reads to equal the sum it replaces after every step, and returns the sums.
func totalsAfterEveryTransition<T: Equatable>(
    _ catalog: CatalogKind, _ measure: @escaping (Store) throws -> (kept: T, summed: T)
) throws -> [T] {
    let dir = try TempDirectory()
    let store = try catalog.open(dir)
    let steps = try walkEveryTransition(store) { () throws -> (kept: T, summed: T) in try measure(store) }
    for (step, (kept, summed)) in steps {
        #expect(kept == summed, "after \(step): the running total says \(kept), the rows \(summed)")
    }
    return steps.map(\.1.summed)
}

/// A database brought up to just before migration `version`, given `rows` (an
/// INSERT), then migrated to the end: how a running total starts on a database
/// that already has uploads.
func migratedPast(_ version: Int, in dir: TempDirectory, rows: String) throws -> Database {
    let db = try Database(path: dir.path + "/t.db")
    let migrations = try Migrator.embedded()
    try Migrator.migrate(db, migrations: Array(migrations.prefix { $0.version < version }))
    try db.run(rows)
    try Migrator.migrate(db, migrations: migrations)
    return db
}

/// Admission reads the bytes reserved by uploads in progress from a running total
/// kept by triggers (migrations/0004); it must always equal the sum it replaces.
@Suite struct ReservedBytesTests {
    static func totals(_ store: Store) throws -> (kept: Int64, summed: Int64) {
        let kept = try store.query("SELECT total FROM reserved_bytes WHERE id = 1") { $0.int(0) }.first ?? -1
        let summed = try store.query(
            "SELECT coalesce(sum(size - received), 0) FROM uploads WHERE state IN ('receiving', 'interrupted')"
        ) { $0.int(0) }.first ?? -1
        return (kept, summed)
    }

    @Test(arguments: CatalogKind.allCases) func theRunningTotalFollowsEveryChangeOfState(_ catalog: CatalogKind) throws {
        #expect(try totalsAfterEveryTransition(catalog, Self.totals) == [0, 5290, 4290, 3090, 2500, 2500, 700, 700, 0])
    }

    /// A database from before migration 0004, with uploads in progress, starts its total right.
    @Test func theMigrationStartsFromTheUploadsInProgress() throws {
        let dir = try TempDirectory()
        let db = try migratedPast(4, in: dir, rows: """
            INSERT INTO uploads (id, name, size, received, sha256, client_ip, client_port, state, worker_pid, created_at, updated_at)
            VALUES ('A', 'a', 100, 40, '', 'x', 1, 'interrupted', 1, 't', 't'), ('B', 'b', 50, 0, '', 'x', 1, 'receiving', 1, 't', 't'),
                   ('C', 'c', 70, 70, '', 'x', 1, 'complete', 1, 't', 't')
            """)
        #expect(try db.query("SELECT total FROM reserved_bytes") { $0.int(0) } == [110])
    }
}

/// Admission reads what a token has stored or in flight from running totals kept
/// by triggers (migrations/0005); they must always equal the sums they replace.
@Suite struct TokenUsageTests {
    static let counted = "state IN ('complete', 'receiving', 'interrupted')"

    /// (token, bytes, files) as kept, and as summed from the rows; tokens with nothing counted left out.
    static func usage(_ store: Store) throws -> (kept: [String], summed: [String]) {
        let kept = try store.query("SELECT token, bytes, files FROM token_usage WHERE files > 0 ORDER BY token") {
            "\($0.text(0)) \($0.int(1)) \($0.int(2))"
        }
        let summed = try store.query(
            "SELECT token, sum(size), count(*) FROM uploads WHERE token IS NOT NULL AND \(counted) GROUP BY token ORDER BY token"
        ) { "\($0.text(0)) \($0.int(1)) \($0.int(2))" }
        return (kept, summed)
    }

    @Test(arguments: CatalogKind.allCases) func theTotalsFollowEveryChangeOfState(_ catalog: CatalogKind) throws {
        #expect(try totalsAfterEveryTransition(catalog, Self.usage) == [
            [], ["alice 4000 2", "bob 1200 2"], ["alice 4000 2", "bob 1200 2"], ["alice 4000 2", "bob 1200 2"],
            ["alice 4000 2", "bob 700 1"], ["alice 4000 2", "bob 700 1"], ["alice 1000 1", "bob 700 1"],
            ["alice 1000 1", "bob 700 1"], [],
        ])
    }

    /// A quota is still checked against everything the token has, now from the totals.
    @Test(arguments: CatalogKind.allCases) func aQuotaCountsWhatTheTokenHas(_ catalog: CatalogKind) throws {
        let dir = try TempDirectory()
        let store = try catalog.open(dir)
        for n in 0..<3 {
            var new = newUpload(Array("file \(n)".utf8), name: "f\(n)")
            new.token = "alice"
            Files.close(try store.begin(new, id: "ID-\(n)", quota: TokenQuota(files: 3)).fd)
        }
        var fourth = newUpload(Array("file 3".utf8), name: "f3")
        fourth.token = "alice"
        #expect(throws: StoreError.refused(.quotaFiles(used: 3, quota: 3))) {
            try store.begin(fourth, id: "ID-3", quota: TokenQuota(files: 3))
        }
        #expect(throws: StoreError.refused(.quotaBytes(used: 18, size: 6, quota: 20))) {
            try store.begin(fourth, id: "ID-3", quota: TokenQuota(bytes: 20))
        }
        fourth.token = "bob"
        Files.close(try store.begin(fourth, id: "ID-B", quota: TokenQuota(files: 1)).fd)
    }

    /// A database from before migration 0005 starts each token's totals from its uploads.
    @Test func theMigrationStartsFromTheUploadsOnRecord() throws {
        let dir = try TempDirectory()
        let db = try migratedPast(5, in: dir, rows: """
            INSERT INTO uploads (id, name, size, received, sha256, client_ip, client_port, state, worker_pid, created_at, updated_at, token)
            VALUES ('A', 'a', 100, 40, '', 'x', 1, 'interrupted', 1, 't', 't', 'alice'),
                   ('B', 'b', 50, 0, '', 'x', 1, 'receiving', 1, 't', 't', 'alice'),
                   ('C', 'c', 70, 70, '', 'x', 1, 'complete', 1, 't', 't', 'bob'),
                   ('D', 'd', 30, 0, '', 'x', 1, 'failed', 1, 't', 't', 'bob'),
                   ('E', 'e', 20, 20, '', 'x', 1, 'complete', 1, 't', 't', NULL)
            """)
        #expect(try db.query("SELECT token, bytes, files FROM token_usage ORDER BY token") {
            "\($0.text(0)) \($0.int(1)) \($0.int(2))"
        } == ["alice 150 2", "bob 70 1"])
    }
}

/// Small uploads stored in batches (Store.storeWhole): each gets the outcome it
/// would have had alone, and only the good ones are published and complete.
@Suite struct WholeUploadTests {
    static func whole(_ bytes: [UInt8], _ id: String, declared: [UInt8]? = nil, token: String? = nil,
                      quota: TokenQuota? = nil, limits: AdmissionLimits = AdmissionLimits()) -> WholeUpload {
        var new = newUpload(declared ?? bytes, name: id)
        new.token = token
        return WholeUpload(new: new, id: id, limits: limits, quota: quota) { staging throws(SystemError) in
            let written: Result<Void, SystemError> = bytes.withUnsafeBytes { raw in
                do throws(SystemError) {
                    try staging.write(raw)
                    return .success(())
                } catch {
                    return .failure(error)
                }
            }
            try written.get()
            return sha256(bytes)
        }
    }

    @Test(arguments: CatalogKind.allCases) func aMixedBatchGetsOneOutcomeEach(_ catalog: CatalogKind) throws {
        let dir = try TempDirectory()
        let store = try catalog.open(dir)
        let a = Array("first".utf8), b = Array("second".utf8), lie = Array("promised".utf8)
        var small = AdmissionLimits()
        small.maxFileSize = 5
        let batch = [
            Self.whole(a, "ID-A"),
            Self.whole(b, "ID-B", declared: lie),                      // the bytes are not what was declared
            Self.whole(a, "ID-A2"),                                    // the same content again, same batch
            Self.whole(b, "ID-BIG", limits: small),                    // over the size limit
            Self.whole(b, "ID-Q1", token: "alice", quota: TokenQuota(files: 1)),
            Self.whole(a, "ID-Q2", token: "alice", quota: TokenQuota(files: 1)),  // alice's second: over quota
        ]
        let outcomes = store.storeWhole(batch)
        #expect(outcomes == [
            .stored, .checksumMismatch(actual: sha256(b)), .stored,
            .refused(.tooLarge(size: 6, limit: 5)), .stored, .refused(.quotaFiles(used: 1, quota: 1)),
        ])
        let rows = Dictionary(uniqueKeysWithValues: try store.uploads().map { ($0.id, $0) })
        #expect(rows.keys.sorted() == ["ID-A", "ID-A2", "ID-B", "ID-Q1"])
        #expect(rows["ID-A"]?.state == .complete && rows["ID-A2"]?.state == .complete && rows["ID-Q1"]?.state == .complete)
        #expect(rows["ID-B"]?.state == .failed && rows["ID-B"]?.error?.contains("checksum mismatch") == true)
        #expect(FileManager.default.contents(atPath: store.directory.objectFile(sha256: sha256(a))) == Data(a))
        #expect(FileManager.default.contents(atPath: store.directory.objectFile(sha256: sha256(b))) == Data(b))
        #expect(!Files.exists(store.directory.objectFile(sha256: sha256(lie))))
        #expect(try FileManager.default.contentsOfDirectory(atPath: store.directory.tempPath).isEmpty)
        let kinds = try store.events().filter { $0.uploadID == "ID-A" }.map(\.kind)
        #expect(kinds == ["created", "completed"])
    }

    /// A batch's rows share their creation time: newest first is then the reverse
    /// of the order they arrived in, whatever their ids.
    @Test(arguments: CatalogKind.allCases) func aBatchIsListedInTheOrderItArrived(_ catalog: CatalogKind) throws {
        let dir = try TempDirectory()
        let store = try catalog.open(dir)
        let ids = ["ID-C", "ID-B", "ID-A"]
        let batch = ids.enumerated().map { Self.whole(Array("body \($0.offset)".utf8), $0.element) }
        #expect(store.storeWhole(batch) == [.stored, .stored, .stored])
        #expect(try store.uploads().map(\.id) == ids.reversed())
        var oldest = UploadFilter()
        oldest.sort = .oldest
        #expect(try store.uploads(matching: oldest).map(\.id) == ids)
    }

    /// A batch far larger than the statement cache reuses the same few
    /// statements: per-entry statement texts once filled the cache, and every
    /// upload's INSERT and UPDATE (triggers included) was then parsed afresh.
    @Test func aLargeBatchKeepsTheStatementCacheSmall() throws {
        let dir = try TempDirectory()
        let (store, _) = try Store.openMigrating(directory: DataDirectory(dir.path))
        let batch = (0..<(Database.maxCachedStatements * 2)).map { Self.whole(Array("body \($0)".utf8), "ID-\($0)") }
        #expect(store.storeWhole(batch).allSatisfy { $0 == .stored })
        let afterOne = store.cachedStatements
        #expect(afterOne < 24)
        #expect(store.storeWhole(batch.map { Self.whole(Array("again \($0.id)".utf8), $0.id + "-2") })
            .allSatisfy { $0 == .stored })
        #expect(store.cachedStatements == afterOne)
    }

    /// Each change of a batch runs in a savepoint, whose journal holds every page
    /// the change touches; spilled to a temp file, that was 32 writes per upload,
    /// to a file system the batch's syncfs then had to write back.
    @Test func savepointJournalsStayInMemory() throws {
        let dir = try TempDirectory()
        let (store, _) = try Store.openMigrating(directory: DataDirectory(dir.path))
        let mode = try store.locked { db throws(StoreError) in try db.query("PRAGMA temp_store") { $0.int(0) } }
        #expect(mode == [2])  // MEMORY
    }

    /// A batch of one takes the file-by-file way (fsync, name, fsync the directory).
    @Test(arguments: CatalogKind.allCases) func aBatchOfOneIsStoredToo(_ catalog: CatalogKind) throws {
        let dir = try TempDirectory()
        let store = try catalog.open(dir)
        let bytes = Array("alone".utf8)
        #expect(store.storeWhole([Self.whole(bytes, "ID-1")]) == [.stored])
        #expect(FileManager.default.contents(atPath: store.directory.objectFile(sha256: sha256(bytes))) == Data(bytes))
        #expect(try store.upload(id: "ID-1")?.state == .complete)
        #expect(store.storeWhole([]) == [])
    }

    /// An upload whose body cannot be written fails alone; the rest of its batch is stored.
    @Test(arguments: CatalogKind.allCases) func aWriteFailureFailsOnlyItsOwnUpload(_ catalog: CatalogKind) throws {
        let dir = try TempDirectory()
        let store = try catalog.open(dir)
        let good = Array("good".utf8)
        let broken = WholeUpload(new: newUpload(Array("never".utf8), name: "broken"), id: "ID-X",
                                 limits: AdmissionLimits(), quota: nil) { _ throws(SystemError) in
            throw SystemError("write", "broken", errno: EIO)
        }
        let outcomes = store.storeWhole([broken, Self.whole(good, "ID-G")])
        guard case .failed = outcomes[0] else {
            Issue.record("\(outcomes[0])")
            return
        }
        #expect(outcomes[1] == .stored)
        #expect(try store.upload(id: "ID-X")?.state == .failed)
        #expect(try store.upload(id: "ID-G")?.state == .complete)
    }

    /// Uploads finishing on many threads at once are named and made durable in
    /// shared syncs (DurableFiles), and every one is complete and intact.
    @Test(arguments: CatalogKind.allCases) func concurrentCompletionsAreAllStored(_ catalog: CatalogKind) throws {
        let dir = try TempDirectory()
        let store = try catalog.open(dir)
        let failures = Mutex<[String]>([])
        DispatchQueue.concurrentPerform(iterations: 32) { n in
            let bytes = Array("content number \(n)".utf8)
            do {
                let upload = try store.begin(newUpload(bytes, name: "f\(n)"), id: "ID-\(n)", unnamed: n % 2 == 0)
                try write(upload, bytes)
                _ = try store.complete(upload, received: Int64(bytes.count), sha256: sha256(bytes))
            } catch {
                failures.withLock { $0.append("\(n): \(error)") }
            }
        }
        #expect(failures.withLock { $0 }.isEmpty)
        let rows = try store.uploads()
        #expect(rows.count == 32 && rows.allSatisfy { $0.state == .complete })
        for row in rows {
            let object = try #require(FileManager.default.contents(atPath: store.directory.objectFile(sha256: row.sha256)))
            #expect(sha256(Array(object)) == row.sha256)
        }
        #expect(try FileManager.default.contentsOfDirectory(atPath: store.directory.tempPath).isEmpty)
    }
}

extension Store {
    /// The tests reach into the SQLite catalog to set up rows as a crash would leave them.
    @discardableResult
    func locked<T>(_ body: (Database) throws(StoreError) -> T) throws(StoreError) -> T {
        guard let sqlite = catalog as? SQLiteCatalog else { throw .sqlite(operation: "test", code: 0, message: "not SQLite") }
        return try sqlite.locked(body)
    }
}
