import Foundation
import SpoolStore
import SpoolTestSupport
import Testing

/// `spoold admin copy-to`: an installation on SQLite and the spool directory
/// copied into PostgreSQL and S3, then served from there by another server.
@Suite struct CopyToTests {
    @Test func anInstallationIsCopiedAndServedFromTheNewBackends() throws {
        let old = try Server(workers: 1)
        let secret = try old.createToken(["--name", "alice"])
        #expect(old.waitForAuthRequired())
        let files = try TempDirectory()
        let small = pseudoRandomBytes(count: 5000, seed: 1)
        let large = pseudoRandomBytes(count: 6 << 20, seed: 2)
        var ids: [String] = []
        for (name, bytes) in [("a.bin", small), ("b.bin", large), ("c.bin", small), ("gone.bin", pseudoRandomBytes(count: 10, seed: 3))] {
            let result = try run(Binaries.spool, ["upload", "--quiet", "--token", secret, "--server", old.address, writeFile(files.path + "/" + name, bytes)])
            #expect(result.status == 0, "\(result.stderr)")
            ids.append(String(result.stdout.prefix(26)))
        }
        let deleted = try run(Binaries.spoold, ["admin", "delete", ids[3], "--data-dir", old.directory.root])
        #expect(deleted.status == 0, "\(deleted.stderr)")
        try old.stop()
        let oldEvents = try events(old.directory.root, [:])

        let database = try PostgresServer.database("copy")
        let objects = "s3://\(S3Server.bucketName("copy"))/spool"
        let aws = try S3Server.environment()
        let copy = try run(Binaries.spoold, ["admin", "copy-to", "--database", database, "--objects", objects, "--part-size", "5M",
                                             "--data-dir", old.directory.root], environment: aws)
        #expect(copy.status == 0, "\(copy.stdout)\(copy.stderr)")
        #expect(copy.stdout.contains("objects: 2 copied, 0 already there"), "\(copy.stdout)")
        #expect(copy.stdout.contains("catalog: 3 uploads, \(oldEvents.count) events, 1 tokens copied"), "\(copy.stdout)")
        // Once only: the catalog is no longer empty (the objects, already there, are kept).
        let again = try run(Binaries.spoold, ["admin", "copy-to", "--database", database, "--objects", objects, "--data-dir", old.directory.root],
                            environment: aws)
        #expect(again.status == 2 && again.stderr.contains("copy into an empty one"), "\(again.stdout)\(again.stderr)")

        // Another server on the new backends: the same uploads, bytes, token and history.
        let environment = aws.merging(["SPOOL_DATABASE": database]) { $1 }
        let new = try Server(workers: 1, arguments: ["--objects", objects, "--part-size", "5M"], environment: environment)
        let out = try TempDirectory()
        let got = try DownloadTests.download(new, ["-o", "b", ids[1].lowercased()], in: out.path, token: secret)
        #expect(got.status == 0, "\(got.stderr)")
        #expect(try Data(contentsOf: URL(fileURLWithPath: out.path + "/b")) == Data(large))
        let more = try run(Binaries.spool, ["upload", "--quiet", "--token", secret, "--server", new.address,
                                            writeFile(files.path + "/d.bin", pseudoRandomBytes(count: 700, seed: 4))])
        #expect(more.status == 0, "\(more.stderr)")
        try new.stop()
        let admin = environment.merging(["SPOOL_OBJECTS": objects]) { $1 }
        let newEvents = try events(new.directory.root, admin)
        // The copied log comes first, as it was; new events number on after it.
        #expect(Array(newEvents.prefix(oldEvents.count)) == oldEvents)
        #expect(newEvents.count > oldEvents.count && zip(newEvents, newEvents.dropFirst()).allSatisfy { $0.seq < $1.seq })
        let audit = try run(Binaries.spoold, ["admin", "audit", "--data-dir", new.directory.root], environment: admin)
        #expect(audit.status == 0, "\(audit.stdout)\(audit.stderr)")
    }

    func events(_ root: String, _ environment: [String: String]) throws -> [UploadEvent] {
        let result = try run(Binaries.spoold, ["admin", "events", "--json", "--data-dir", root], environment: environment)
        guard result.status == 0 else { throw HarnessError("admin events: \(result.stderr)") }
        return try JSONDecoder().decode([UploadEvent].self, from: Data(result.stdout.utf8))
    }
}
