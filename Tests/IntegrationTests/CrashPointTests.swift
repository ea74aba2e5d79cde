import CSQLite
import Foundation
import SpoolClient
import SpoolProtocol
import SpoolStore
import SpoolTestSupport
import Testing

/// A worker killed (SIGKILL) between every two durability steps
/// (`SPOOL_CRASH_AT`, Sources/SpoolSystem/CrashPoint.swift), then the server
/// started again without it: every upload the client heard `250` for names an
/// object with exactly its bytes, no complete row lacks its object, the database
/// passes its integrity check, the audit is clean after `--repair`, and the same
/// client finishes what was cut off, verified. docs/DESIGN.md has the table.
@Suite struct CrashPointTests {
    struct Point: CustomStringConvertible, Sendable {
        let name: String
        let batch: Bool
        var description: String { name }
    }

    static let points: [Point] = [
        Point(name: "upload-after-write", batch: false),
        Point(name: "upload-after-fsync", batch: false),
        Point(name: "upload-after-link", batch: false),
        Point(name: "upload-after-dirsync", batch: false),
        Point(name: "upload-after-commit", batch: false),
        Point(name: "batch-after-link", batch: true),
        Point(name: "batch-after-sync", batch: true),
        Point(name: "batch-after-commit", batch: true),
    ]

    /// `PRAGMA integrity_check`'s first line.
    static func integrity(_ path: String) -> String {
        var db: OpaquePointer?
        guard sqlite3_open(path, &db) == SQLITE_OK else { return "cannot open" }
        defer { sqlite3_close(db) }
        var statement: OpaquePointer?
        guard sqlite3_prepare_v2(db, "PRAGMA integrity_check", -1, &statement, nil) == SQLITE_OK else { return "cannot prepare" }
        defer { sqlite3_finalize(statement) }
        guard sqlite3_step(statement) == SQLITE_ROW, let text = sqlite3_column_text(statement, 0) else { return "no answer" }
        return String(cString: text)
    }

    /// The SHA-256s the client printed as stored (`<id> <sha256> <path>` per `250`).
    static func acknowledged(_ output: String) -> [String] {
        output.split(separator: "\n").compactMap { (line: Substring) -> String? in
            let fields = line.split(separator: " ")
            guard fields.count >= 3, fields[1].count == 64 else { return nil }
            return String(fields[1])
        }
    }

    static func checkInvariants(_ server: Server, acknowledged: [String], files: [String: [UInt8]], _ point: Point) throws {
        for sha in acknowledged {
            let object = server.directory.objectFile(sha256: sha)
            #expect(try Data(contentsOf: URL(fileURLWithPath: object)) == Data(files[sha] ?? []), "\(point): acknowledged \(sha)")
        }
        for row in try server.uploads() where row.state == .complete {
            #expect(FileManager.default.fileExists(atPath: server.directory.objectFile(sha256: row.sha256)), "\(point): \(row.id)")
        }
        #expect(Self.integrity(server.directory.databasePath) == "ok", "\(point)")
        _ = try run(Binaries.spoold, ["admin", "audit", "--repair", "--data-dir", server.directory.root])
        let audit = try run(Binaries.spoold, ["admin", "audit", "--data-dir", server.directory.root])
        #expect(audit.status == 0, "\(point): \(audit.stdout)")
    }

    @Test(arguments: points)
    func killedAt(_ point: Point) throws {
        let data = try TempDirectory()
        let dir = try TempDirectory()
        let state = ["SPOOL_STATE_DIR": dir.path + "/state"]
        var files: [String: [UInt8]] = [:]
        var paths: [String] = []
        for n in 0..<(point.batch ? 6 : 1) {
            let bytes = pseudoRandomBytes(count: point.batch ? 4000 : 3 << 20, seed: UInt64(300 + n))
            files[sha256Hex(bytes)] = bytes
            paths.append(writeFile(dir.path + "/f\(n).bin", bytes))
        }

        let crashing = try Server(workers: 1, data: data, environment: ["SPOOL_CRASH_AT": point.name])
        let first = try run(Binaries.spool, ["upload", "--quiet", "--retries", "0", "--server", crashing.address] + paths, environment: state)
        #expect(eventually { crashing.log().contains("killed by KILL") }, "\(point): the worker reached its crash point")
        try crashing.stop()

        let server = try Server(workers: 1, data: data)
        try Self.checkInvariants(server, acknowledged: Self.acknowledged(first.stdout), files: files, point)
        // The same client, run again, finishes every file, each verified.
        let again = try run(Binaries.spool, ["upload", "--quiet", "--retries", "0", "--server", server.address] + paths, environment: state)
        #expect(again.status == 0, "\(point): \(again.stderr)")
        for (sha, bytes) in files {
            let object = server.directory.objectFile(sha256: sha)
            #expect(try Data(contentsOf: URL(fileURLWithPath: object)) == Data(bytes), "\(point): \(sha)")
        }
        #expect(try run(Binaries.spoold, ["admin", "audit", "--data-dir", server.directory.root]).status == 0)
        try server.stop()
    }

    /// Killed while a resume reopens the upload (its bytes fsynced, the row not yet
    /// changed): the next resume starts from the bytes on disk.
    @Test func killedWhileResuming() throws {
        let data = try TempDirectory()
        let first = try Server(workers: 1, data: data)
        let upload = try PartialUpload(server: first, size: 2_000_000)
        try upload.send(700_000, directory: first.directory)
        upload.connection.close()
        #expect(eventually { (try? first.upload(id: upload.id))?.state == .interrupted })
        try first.stop()

        let crashing = try Server(workers: 1, data: data, environment: ["SPOOL_CRASH_AT": "resume-after-fsync"])
        let connection = try Connection(server: crashing.address)
        try connection.send(line: "RESUME \(upload.id) \(sha256Hex(upload.bytes))")
        _ = try? connection.readReply()
        #expect(eventually { crashing.log().contains("killed by KILL") })
        try crashing.stop()

        let server = try Server(workers: 1, data: data)
        let (again, offset) = try ResumeTests.resume(server, id: upload.id, sha256: sha256Hex(upload.bytes))
        #expect(offset == 700_000)
        try again.send(bytes: upload.bytes[offset...])
        #expect(try again.readReply().code == .stored)
        try Self.checkInvariants(server, acknowledged: [sha256Hex(upload.bytes)], files: [sha256Hex(upload.bytes): upload.bytes],
                                 Point(name: "resume-after-fsync", batch: false))
        try server.stop()
    }

    /// Expiry records the row first and removes the file after: killed between the
    /// two (in the master's helper), it leaves an expired row and a file no upload
    /// owns, which the next start removes; never a resumable upload without its bytes.
    @Test func killedWhileExpiring() throws {
        let data = try TempDirectory()
        let server = try Server(workers: 1, data: data, arguments: ["--partial-ttl", "1s"],
                                environment: ["SPOOL_CRASH_AT": "expire-after-commit"])
        let upload = try PartialUpload(server: server, size: 100_000)
        try upload.send(40_000, directory: server.directory)
        upload.connection.close()
        #expect(eventually(timeout: 20) { (try? server.upload(id: upload.id))?.state == .expired }, "\(server.log())")
        #expect(eventually { server.log().contains("database work failed") }, "the helper was killed at its crash point")
        let path = server.directory.tempFile(id: upload.id)
        #expect(FileManager.default.fileExists(atPath: path), "the file outlived the crash")
        try server.stop()

        let again = try Server(workers: 1, data: data)
        #expect(!FileManager.default.fileExists(atPath: path), "removed at the start: no upload owns it")
        #expect(Self.integrity(again.directory.databasePath) == "ok")
        #expect(try run(Binaries.spoold, ["admin", "audit", "--data-dir", again.directory.root]).status == 0)
        try again.stop()
    }
}
