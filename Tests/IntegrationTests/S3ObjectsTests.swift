import Foundation
import SpoolProtocol
import SpoolS3
import SpoolTestSupport
import Testing

/// `spoold serve --objects s3://…` against a real S3 server (Ceph RGW from
/// scripts/s3): uploads through both doors land in the bucket, come back
/// verified, and the admin commands see them there.
@Suite struct S3ObjectsTests {
    @Test func uploadsThroughBothDoorsAreStoredInTheBucket() throws {
        let aws = try S3Server.environment()
        let bucket = S3Server.bucketName("serve")
        let objects = "s3://\(bucket)/spool"
        let server = try Server(workers: 2, arguments: ["--objects", objects, "--part-size", "5M"], environment: aws)
        let files = try TempDirectory()
        let small = pseudoRandomBytes(count: 1000, seed: 1)
        let large = pseudoRandomBytes(count: 12 << 20 + 4321, seed: 2)
        let undeclared = pseudoRandomBytes(count: 6 << 20, seed: 3)

        var ids: [String: [UInt8]] = [:]
        for (name, bytes) in [("small.bin", small), ("large.bin", large)] {
            let result = try run(Binaries.spool, ["upload", "--quiet", "--server", server.address, writeFile(files.path + "/" + name, bytes)])
            #expect(result.status == 0, "\(result.stderr)")
            ids[String(result.stdout.prefix(26))] = bytes
        }
        // curl's PUT declares no checksum: sent as parts to a staging key, then copied to its name.
        let put = try HTTPTests.put(writeFile(files.path + "/plain.bin", undeclared), to: server.httpBase + "/files/plain.bin")
        #expect(put.status == 201, "\(put)")
        // The same content again: stored once.
        let again = try run(Binaries.spool, ["upload", "--quiet", "--server", server.address, files.path + "/large.bin"])
        #expect(again.status == 0, "\(again.stderr)")

        // Each comes back verified (spool download checks the server's SHA-256).
        let out = try TempDirectory()
        for (id, bytes) in ids {
            let got = try DownloadTests.download(server, ["-o", id, id.lowercased()], in: out.path)
            #expect(got.status == 0, "\(got.stderr)")
            #expect(try Data(contentsOf: URL(fileURLWithPath: out.path + "/" + id)) == Data(bytes))
        }
        let plain = try HTTPTests.curl(["-f", "-o", out.path + "/plain", server.httpBase + "/names/plain.bin"])
        #expect(plain.status == 0, "\(plain.stderr)")
        #expect(try Data(contentsOf: URL(fileURLWithPath: out.path + "/plain")) == Data(undeclared))
        let range = try HTTPTests.curl(["-f", "-r", "5242000-5243999", "-o", out.path + "/range", server.httpBase + "/names/plain.bin"])
        #expect(range.status == 0, "\(range.stderr)")
        #expect(try Data(contentsOf: URL(fileURLWithPath: out.path + "/range")) == Data(undeclared[5_242_000..<5_244_000]))

        // Nothing in the spool directory's objects; three objects in the bucket, nothing staged.
        let local = FileManager.default.enumerator(atPath: server.directory.objectsPath)?.allObjects.compactMap { $0 as? String } ?? []
        #expect(local.filter { $0.count > 60 }.isEmpty, "\(local)")
        let admin = aws.merging(["SPOOL_OBJECTS": objects, "SPOOL_PART_SIZE": "5M"]) { $1 }
        let audit = try run(Binaries.spoold, ["admin", "audit", "--data-dir", server.directory.root], environment: admin)
        #expect(audit.status == 0, "\(audit.stdout)\(audit.stderr)")
        let json = try run(Binaries.spoold, ["admin", "audit", "--json", "--data-dir", server.directory.root], environment: admin)
        // Deep: every object read back from the bucket and hashed.
        #expect(json.stdout.contains("\"checked_objects\" : 3") && json.stdout.contains("\"checked_uploads\" : 4"), "\(json.stdout)")
        // Without the setting, admin looks in the spool directory and finds every object missing.
        let blind = try run(Binaries.spoold, ["admin", "audit", "--data-dir", server.directory.root])
        #expect(blind.status != 0)

        // A wrong location stops serve at once, with the reason.
        let wrong = try run(Binaries.spoold, ["serve", "--listen", "127.0.0.1:0", "--objects", objects, "--data-dir", files.path + "/d"], timeout: 20)
        #expect(wrong.status == 64 && wrong.stderr.contains("AWS_ENDPOINT_URL"), "\(wrong.stderr)")
        try server.stop()
    }

    /// `admin delete` and retention with the objects in S3 keep the reference
    /// rule: an object goes with the last upload that names it, not before.
    @Test func deleteAndRetentionRemoveAnObjectWithItsLastUpload() throws {
        let aws = try S3Server.environment()
        let bucket = S3Server.bucketName("retain")
        let objects = "s3://\(bucket)/spool"
        let server = try Server(
            workers: 1, arguments: ["--objects", objects, "--retain", "complete=30d", "--partial-ttl", "2s"], environment: aws)
        let files = try TempDirectory()
        func upload(_ name: String, _ bytes: [UInt8]) throws -> String {
            let result = try run(Binaries.spool, ["upload", "--quiet", "--server", server.address, writeFile(files.path + "/" + name, bytes)])
            #expect(result.status == 0, "\(result.stderr)")
            return String(result.stdout.prefix(26))
        }
        let client = S3Client(try S3Location(objects, environment: aws))
        func stored() throws -> Set<String> {
            Set(try client.list(prefix: client.key("sha256/")).map { String($0.key.split(separator: "/").last ?? "") })
        }
        let shared = pseudoRandomBytes(count: 100_000, seed: 1)
        let alone = pseudoRandomBytes(count: 100_000, seed: 2)
        let oldShared = try upload("old-shared.bin", shared)
        let newShared = try upload("new-shared.bin", shared)
        let oldAlone = try upload("old-alone.bin", alone)
        #expect(try stored() == [sha256Hex(shared), sha256Hex(alone)])

        // Retention: two aged past 30 days; the shared object stays, named by the newer upload.
        try sqlite(server.directory.databasePath, """
            UPDATE uploads SET updated_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now', '-31 days') WHERE id IN ('\(oldShared)', '\(oldAlone)');
            """)
        #expect(eventually(timeout: 20) { server.count("upload removed by retention") == 2 }, "\(server.log())")
        #expect(try stored() == [sha256Hex(shared)])

        // admin delete of the last upload naming it takes the object too.
        let admin = aws.merging(["SPOOL_OBJECTS": objects]) { $1 }
        let deleted = try run(Binaries.spoold, ["admin", "delete", newShared, "--data-dir", server.directory.root], environment: admin)
        #expect(deleted.status == 0 && deleted.stdout.contains("and its object"), "\(deleted.stdout)\(deleted.stderr)")
        #expect(try stored().isEmpty)
        let audit = try run(Binaries.spoold, ["admin", "audit", "--data-dir", server.directory.root], environment: admin)
        #expect(audit.status == 0, "\(audit.stdout)\(audit.stderr)")
        try server.stop()
    }
}
