import Foundation
import SpoolClient
import SpoolProtocol
import SpoolStore
import SpoolTestSupport
import Testing

/// Holes in "nothing acknowledged is ever lost" that a review found, each closed
/// and checked here (issue "Prove nothing acknowledged is ever lost").
@Suite struct DurabilityTests {
    static func inode(_ path: String) -> UInt64? {
        (try? FileManager.default.attributesOfItem(atPath: path)[.systemFileNumber] as? UInt64) ?? nil
    }

    /// An object already stored is never replaced by an upload of the same content:
    /// in a batch the new name would come before the bytes are synced, and the
    /// acknowledged object's name would then point at bytes a crash can lose.
    @Test func anExistingObjectIsNeverReplaced() throws {
        let server = try Server(workers: 2)
        let files = try TempDirectory()
        let bytes = pseudoRandomBytes(count: 2 << 20, seed: 97)  // streamed, not stored whole
        let first = writeFile(files.path + "/first.bin", bytes)
        let stored = try run(Binaries.spool, ["upload", "--quiet", "--server", server.address, first])
        #expect(stored.status == 0, "\(stored.stderr)")
        let object = server.directory.objectFile(sha256: sha256Hex(bytes))
        let before = try #require(Self.inode(object))

        // The same content again, eight at once, so that several finish together.
        let copies = (0..<8).map { writeFile(files.path + "/copy\($0).bin", bytes) }
        let again = try run("/usr/bin/xargs", ["-P", "8", "-n", "1", Binaries.spool, "upload", "--quiet", "--no-resume", "--server", server.address],
                            stdin: copies.joined(separator: "\n") + "\n")
        #expect(again.status == 0, "\(again.stderr)")
        #expect(try server.uploads().filter { $0.state == .complete }.count == 9)
        #expect(Self.inode(object) == before, "the acknowledged object is the same file")
        #expect(try Data(contentsOf: URL(fileURLWithPath: object)) == Data(bytes))
        #expect(try FileManager.default.contentsOfDirectory(atPath: server.directory.tempPath).isEmpty, "no temporary name left")
        try server.stop()
    }

    /// `admin delete` removes the row (durably) before the object: killed between
    /// the two, it leaves an object nothing names, never a complete row without
    /// its object; `audit --repair` takes the orphan away.
    @Test func aDeleteKilledHalfWayLeavesNoRowWithoutItsObject() throws {
        let server = try Server(workers: 1)
        let files = try TempDirectory()
        let bytes = pseudoRandomBytes(count: 5000, seed: 98)
        let file = writeFile(files.path + "/gone.bin", bytes)
        #expect(try run(Binaries.spool, ["upload", "--quiet", "--server", server.address, file]).status == 0)
        let id = try #require(try server.uploads().first?.id)
        let object = server.directory.objectFile(sha256: sha256Hex(bytes))

        let killed = try run(Binaries.spoold, ["admin", "delete", id, "--data-dir", server.directory.root],
                             environment: ["SPOOL_CRASH_AT": "delete-after-commit"])
        #expect(killed.status != 0, "the delete was killed at its crash point: \(killed.stdout)")
        #expect(try server.uploads().isEmpty, "the row is gone")
        #expect(FileManager.default.fileExists(atPath: object), "its object is not yet")
        let audit = try run(Binaries.spoold, ["admin", "audit", "--data-dir", server.directory.root])
        #expect(audit.stdout.contains("orphan"), "\(audit.stdout)")
        let repaired = try run(Binaries.spoold, ["admin", "audit", "--repair", "--data-dir", server.directory.root])
        #expect(repaired.stdout.contains("moved orphan object") && !FileManager.default.fileExists(atPath: object), "\(repaired.stdout)")
        #expect(try run(Binaries.spoold, ["admin", "audit", "--data-dir", server.directory.root]).status == 0)
        try server.stop()
    }

    /// A resume of an upload whose temporary file is gone (expiry won a race, or it
    /// never had one) finds nothing to resume, and creates no empty file.
    @Test func aResumeWithoutItsFileCreatesNothing() throws {
        let server = try Server(workers: 1)
        let upload = try PartialUpload(server: server, size: 100_000)
        try upload.send(30_000, directory: server.directory)
        upload.connection.close()
        #expect(eventually { (try? server.upload(id: upload.id))?.state == .interrupted })
        let path = server.directory.tempFile(id: upload.id)
        try FileManager.default.removeItem(atPath: path)

        let connection = try Connection(server: server.address)
        try connection.send(line: "RESUME \(upload.id) \(sha256Hex(upload.bytes))")
        let reply = try connection.readReply()
        #expect(reply.code != .sendBody, "\(reply)")
        #expect(!FileManager.default.fileExists(atPath: path), "no empty file was made")
        #expect(try server.upload(id: upload.id)?.state == .failed)
        try server.stop()
    }
}
