import CSQLite
import Foundation
import SpoolTestSupport
import SpoolClient
import SpoolProtocol
import Testing

/// Uploads that get cut, and come back.
@Suite struct ResumeTests {
    /// Opens a fresh connection and resumes `id`, waiting out "busy" while the
    /// server is still noticing that the previous connection is gone.
    static func resume(_ server: Server, id: String, sha256: String) throws -> (Connection, Int) {
        for _ in 0..<200 {
            let connection = try Connection(server: server.address)
            try connection.send(line: "RESUME \(id) \(sha256)")
            let reply = try connection.readReply()
            if reply.code == .busy {
                usleep(20_000)
                continue
            }
            guard reply.code == .sendBody, reply.fields["id"] == id, let offset = reply.fields["offset"].flatMap(Int.init)
            else { throw HarnessError("RESUME answered \(reply)") }
            return (connection, offset)
        }
        throw HarnessError("upload \(id) stayed busy")
    }

    @Test func fiftyCutsAtRandomPointsOfA64MiBUploadStillGiveTheSameFile() throws {
        let server = try Server(workers: 2)
        let size = 64 << 20
        let bytes = pseudoRandomBytes(count: size, seed: 64)
        let sha = sha256Hex(bytes)
        var rng = SeededGenerator(seed: 2026)
        let cuts = (0..<50).map { _ in Int.random(in: 1..<size, using: &rng) }.sorted()

        var connection = try Connection(server: server.address)
        try connection.send(line: UploadRequest(name: "cut-50.bin", size: Int64(size), sha256: sha).line)
        let ready = try connection.readReply()
        let id = try #require(ready.fields["id"])
        var position = 0
        for cut in cuts {
            if cut > position { try connection.send(bytes: bytes[position..<cut]) }
            connection.close()
            let (next, offset) = try Self.resume(server, id: id, sha256: sha)
            #expect(offset <= max(cut, position), "the server offers only what it received")
            connection = next
            position = offset
        }
        try connection.send(bytes: bytes[position...])
        let verdict = try connection.readReply()
        #expect(verdict.code == .stored, "\(verdict)")
        let row = try #require(try server.upload(id: id))
        #expect(row.state == .complete && row.received == Int64(size))
        let stored = try #require(FileManager.default.contents(atPath: server.directory.objectFile(sha256: sha)))
        #expect(stored == Data(bytes))
        #expect(server.count("upload resumed") >= 1)
        try server.stop()
    }

    @Test func uploadCutByAKilledWorkerResumesThroughAnother() throws {
        let server = try Server(workers: 2)
        let upload = try PartialUpload(server: server, size: 3_000_000)
        try upload.send(1_000_000, directory: server.directory)
        kill(upload.worker, SIGKILL)
        #expect(try eventually { try server.upload(id: upload.id)?.state == .interrupted })

        let (connection, offset) = try Self.resume(server, id: upload.id, sha256: sha256Hex(upload.bytes))
        #expect(offset == 1_000_000)
        #expect(connection.greeting.fields["worker"] != String(upload.worker))
        try connection.send(bytes: upload.bytes[offset...])
        #expect(try connection.readReply().code == .stored)
        let stored = FileManager.default.contents(atPath: server.directory.objectFile(sha256: sha256Hex(upload.bytes)))
        #expect(stored == Data(upload.bytes))
        try server.stop()
    }

    @Test func twoClientsResumingOneUploadAtOnceOnlyOneProceeds() throws {
        let server = try Server(workers: 2)
        let upload = try PartialUpload(server: server, size: 500_000)
        try upload.send(100_000, directory: server.directory)
        upload.connection.close()
        #expect(try eventually { try server.upload(id: upload.id)?.state == .interrupted })
        let sha = sha256Hex(upload.bytes)

        // Both ask at the same moment, most likely on different workers.
        let a = try Connection(server: server.address)
        let b = try Connection(server: server.address)
        try a.send(line: "RESUME \(upload.id) \(sha)")
        try b.send(line: "RESUME \(upload.id) \(sha)")
        let replies = [try a.readReply(), try b.readReply()]
        #expect(replies.map(\.code).filter { $0 == .sendBody }.count == 1, "\(replies)")
        #expect(replies.map(\.code).filter { $0 == .busy }.count == 1, "\(replies)")

        let winner = replies[0].code == .sendBody ? a : b
        let loser = winner === a ? b : a
        // While the winner holds it, asking again is still turned away.
        try loser.send(line: "RESUME \(upload.id) \(sha)")
        #expect(try loser.readReply().code == .busy)
        try winner.send(bytes: upload.bytes[100_000...])
        #expect(try winner.readReply().code == .stored)
        // Once stored, a late resume learns so.
        try loser.send(line: "RESUME \(upload.id) \(sha)")
        #expect(try loser.readReply().code == .stored)
        try server.stop()
    }

    @Test func sameContentUnderTwoNamesIsTwoRowsAndOneObject() throws {
        let server = try Server(workers: 2)
        let dir = try TempDirectory()
        let bytes = pseudoRandomBytes(count: 300_000, seed: 77)
        let first = writeFile(dir.path + "/first.bin", bytes)
        let second = writeFile(dir.path + "/second copy.bin", bytes)
        #expect(try run(Binaries.spool, ["upload", "--quiet", "--server", server.address, first, second]).status == 0)
        let rows = try server.uploads()
        #expect(Set(rows.map(\.name)) == ["first.bin", "second copy.bin"])
        #expect(rows.allSatisfy { $0.state == .complete && $0.sha256 == sha256Hex(bytes) })
        #expect(try allObjects(server) == [sha256Hex(bytes)])
        try server.stop()
    }

    @Test func spoolResumesByItselfWhenItsConnectionDrops() throws {
        let server = try Server(workers: 2)
        let dir = try TempDirectory()
        let bytes = pseudoRandomBytes(count: 8 << 20, seed: 8)
        let file = writeFile(dir.path + "/dropped.bin", bytes)
        let client = try startSpool(["upload", "--quiet", "--limit-rate", "4M", "--server", server.address, file],
                                    state: dir.path + "/state", output: dir.path)
        var worker: Int32 = 0
        #expect(try eventually {
            guard let row = try server.newestUpload(pastBytes: 1 << 20), row.state == .receiving else { return false }
            worker = Int32(row.workerPID)
            return true
        })
        kill(worker, SIGKILL)
        client.waitUntilExit()
        let stderr = (try? String(contentsOfFile: dir.path + "/stderr", encoding: .utf8)) ?? ""
        #expect(client.terminationStatus == 0, "\(stderr)")
        #expect(stderr.contains("retrying in") && stderr.contains("resuming upload"), "\(stderr)")
        let rows = try server.uploads()
        #expect(rows.count == 1 && rows.first?.state == .complete)
        #expect(FileManager.default.contents(atPath: server.directory.objectFile(sha256: sha256Hex(bytes))) == Data(bytes))
        try server.stop()
    }

    @Test func runningSpoolAgainResumesTheUploadItWasKilledIn() throws {
        let server = try Server(workers: 2)
        let dir = try TempDirectory()
        let bytes = pseudoRandomBytes(count: 6 << 20, seed: 6)
        let file = writeFile(dir.path + "/again.bin", bytes)
        let state = dir.path + "/state"
        let first = try startSpool(["upload", "--quiet", "--limit-rate", "2M", "--server", server.address, file],
                                   state: state, output: dir.path)
        var id = ""
        #expect(try eventually {
            guard let row = try server.newestUpload(pastBytes: 1 << 20) else { return false }
            id = row.id
            return true
        })
        kill(first.processIdentifier, SIGKILL)
        first.waitUntilExit()
        #expect(try eventually { try server.upload(id: id)?.state == .interrupted })

        let second = try run(Binaries.spool, ["upload", "--quiet", "--server", server.address, file],
                             environment: ["SPOOL_STATE_DIR": state])
        #expect(second.status == 0, "\(second.stderr)")
        #expect(second.stdout.hasPrefix(id + " "), "the same upload, resumed: \(second.stdout)")
        #expect(second.stderr.contains("resuming upload \(id) at byte"), "\(second.stderr)")
        #expect(try server.uploads().count == 1)
        #expect(try server.upload(id: id)?.state == .complete)
        try server.stop()
    }

    @Test func abandonedPartialUploadsExpire() throws {
        let server = try Server(workers: 1, arguments: ["--partial-ttl", "1s"])
        let upload = try PartialUpload(server: server, size: 100_000)
        try upload.send(10_000, directory: server.directory)
        upload.connection.close()
        #expect(try eventually(timeout: 15) { try server.upload(id: upload.id)?.state == .expired })
        #expect(!FileManager.default.fileExists(atPath: server.directory.tempFile(id: upload.id)))
        let connection = try Connection(server: server.address)
        try connection.send(line: "RESUME \(upload.id) \(sha256Hex(upload.bytes))")
        let reply = try connection.readReply()
        #expect(reply.code == .notFound && reply.text.contains("expired"), "\(reply)")
        try server.stop()
    }

    @Test func crashesDuringTwentyConcurrentUploadsLoseNothing() throws {
        let server = try Server(workers: 2)
        let dir = try TempDirectory()
        let state = dir.path + "/state"
        let files = (0..<20).map { n in
            writeFile(dir.path + "/crash-\(n).bin", pseudoRandomBytes(count: 2 << 20, seed: UInt64(1000 + n)))
        }
        let clients = try files.map { file in
            try startSpool(["upload", "--quiet", "--retries", "0", "--limit-rate", "1M", "--server", server.address, file],
                           state: state, output: nil)
        }
        var rng = SystemRandomNumberGenerator()
        let delay = Double.random(in: 0.3...1.5, using: &rng)
        print("crashing master and workers after \(delay) s")
        usleep(UInt32(delay * 1_000_000))
        let workers = server.workerPIDs()
        server.signal(SIGKILL)
        for pid in workers { kill(pid, SIGKILL) }
        for client in clients { client.waitUntilExit() }

        let restarted = try Server(workers: 2, data: server.data)
        var resumed = 0
        for file in files {
            let result = try run(Binaries.spool, ["upload", "--quiet", "--server", restarted.address, file],
                                 environment: ["SPOOL_STATE_DIR": state])
            #expect(result.status == 0, "\(file): \(result.stderr)")
            if result.stderr.contains("resuming upload") { resumed += 1 }
        }
        print("after the crash, \(resumed) of 20 uploads resumed from their partial bytes")
        #expect(resumed > 0)
        let rows = try restarted.uploads()
        for file in files {
            let sha = sha256Hex(try Data(contentsOf: URL(fileURLWithPath: file)))
            #expect(rows.contains { $0.sha256 == sha && $0.state == .complete }, "\(file) is not stored")
        }
        // Anything not complete is resumable, and every temporary file belongs to such an upload.
        #expect(rows.allSatisfy { $0.state == .complete || $0.state == .interrupted })
        let resumable = Set(rows.filter { $0.state == .interrupted }.map { "\($0.id).part" })
        #expect(Set(try FileManager.default.contentsOfDirectory(atPath: restarted.directory.tempPath)).isSubset(of: resumable))
        // Objects: exactly the complete uploads' contents, each intact.
        let complete = Set(rows.filter { $0.state == .complete }.map(\.sha256))
        #expect(try allObjects(restarted) == complete)
        for sha in complete {
            let object = try Data(contentsOf: URL(fileURLWithPath: restarted.directory.objectFile(sha256: sha)))
            #expect(sha256Hex(object) == sha)
        }
        try restarted.stop()
        #expect(try integrityCheck(restarted.directory.databasePath) == "ok")
    }
}

/// Every object file under the spool's objects directory, by name.
func allObjects(_ server: Server) throws -> Set<String> {
    let root = server.directory.objectsPath
    let enumerator = FileManager.default.enumerator(atPath: root)
    var names = Set<String>()
    while let path = enumerator?.nextObject() as? String {
        var isDirectory: ObjCBool = false
        if FileManager.default.fileExists(atPath: root + "/" + path, isDirectory: &isDirectory), !isDirectory.boolValue {
            names.insert(URL(fileURLWithPath: path).lastPathComponent)
        }
    }
    return names
}

func integrityCheck(_ path: String) throws -> String {
    var db: OpaquePointer?
    guard sqlite3_open(path, &db) == SQLITE_OK else { throw HarnessError("cannot open \(path)") }
    defer { sqlite3_close(db) }
    var stmt: OpaquePointer?
    guard sqlite3_prepare_v2(db, "PRAGMA integrity_check", -1, &stmt, nil) == SQLITE_OK else { throw HarnessError("prepare") }
    defer { sqlite3_finalize(stmt) }
    guard sqlite3_step(stmt) == SQLITE_ROW, let text = sqlite3_column_text(stmt, 0) else { throw HarnessError("step") }
    return String(cString: text)
}

/// Starts `spool` in the background with its own journal directory.
func startSpool(_ arguments: [String], state: String, output: String?) throws -> Process {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: Binaries.spool)
    process.arguments = arguments
    process.environment = ["SPOOL_STATE_DIR": state]
    process.standardInput = FileHandle.nullDevice
    if let output {
        _ = FileManager.default.createFile(atPath: output + "/stdout", contents: nil)
        _ = FileManager.default.createFile(atPath: output + "/stderr", contents: nil)
        process.standardOutput = FileHandle(forWritingAtPath: output + "/stdout")
        process.standardError = FileHandle(forWritingAtPath: output + "/stderr")
    } else {
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
    }
    try process.run()
    return process
}

/// A reproducible random sequence (SplitMix64), so a failing run can be replayed.
struct SeededGenerator: RandomNumberGenerator {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
