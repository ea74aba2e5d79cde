import Foundation
import SpoolProtocol
import SpoolStore
import SpoolTestSupport
import Testing

/// `spoold serve --database postgres://…` against a real PostgreSQL (scripts/pg),
/// with the objects in a real S3 store (scripts/s3): the scaled-out backends on
/// one host, through the real binaries.
@Suite struct PostgresCatalogTests {
    @Test func aServerKeepsItsCatalogInPostgreSQL() throws {
        let database = try PostgresServer.database("serve")
        let objects = "s3://\(S3Server.bucketName("pg"))/spool"
        let environment = try S3Server.environment().merging(["SPOOL_DATABASE": database]) { $1 }
        let server = try Server(workers: 2, arguments: ["--objects", objects, "--part-size", "5M"], environment: environment)
        let files = try TempDirectory()
        var ids: [String] = []
        for (name, bytes) in [("small.bin", pseudoRandomBytes(count: 1000, seed: 1)), ("large.bin", pseudoRandomBytes(count: 11 << 20, seed: 2))] {
            let result = try run(Binaries.spool, ["upload", "--quiet", "--server", server.address, writeFile(files.path + "/" + name, bytes)])
            #expect(result.status == 0, "\(result.stderr)")
            ids.append(String(result.stdout.prefix(26)))
        }
        let put = try HTTPTests.put(writeFile(files.path + "/put.bin", pseudoRandomBytes(count: 3000, seed: 3)), to: server.httpBase + "/files/put.bin")
        #expect(put.status == 201, "\(put)")
        let again = try run(Binaries.spool, ["upload", "--quiet", "--server", server.address, files.path + "/large.bin"])
        #expect(again.status == 0, "\(again.stderr)")
        // STATUS over the line protocol reads the row from PostgreSQL.
        let status = try run(Binaries.spool, ["status", "--server", server.address, ids[1]])
        #expect(status.status == 0 && status.stdout.contains("complete"), "\(status.stdout)\(status.stderr)")

        // No SQLite database in the data directory: the rows are in PostgreSQL.
        #expect(!FileManager.default.fileExists(atPath: server.directory.databasePath))
        let admin = environment.merging(["SPOOL_OBJECTS": objects]) { $1 }
        let list = try run(Binaries.spoold, ["admin", "list", "--json", "--data-dir", server.directory.root], environment: admin)
        let rows = try JSONDecoder().decode([UploadRecord].self, from: Data(list.stdout.utf8))
        #expect(rows.count == 4 && rows.allSatisfy { $0.state == .complete }, "\(list.stdout)\(list.stderr)")
        let audit = try run(Binaries.spoold, ["admin", "audit", "--json", "--data-dir", server.directory.root], environment: admin)
        #expect(audit.status == 0 && audit.stdout.contains("\"checked_objects\" : 3"), "\(audit.stdout)\(audit.stderr)")
        let migrate = try run(Binaries.spoold, ["admin", "migrate", "--check", "--data-dir", server.directory.root], environment: admin)
        #expect(migrate.status == 0 && migrate.stdout.contains("schema version 1 of 1: current"), "\(migrate.stdout)\(migrate.stderr)")
        try server.stop()

        // Another server on another data directory (another host, as far as it can
        // tell) sees the same uploads and serves their bytes.
        let other = try Server(workers: 1, arguments: ["--objects", objects, "--part-size", "5M"], environment: environment)
        let out = try TempDirectory()
        let got = try DownloadTests.download(other, ["-o", "large", ids[1].lowercased()], in: out.path)
        #expect(got.status == 0, "\(got.stderr)")
        #expect(try Data(contentsOf: URL(fileURLWithPath: out.path + "/large")) == Data(pseudoRandomBytes(count: 11 << 20, seed: 2)))
        try other.stop()

        // A wrong URL or password stops serve at once, with the reason.
        let bad = try run(Binaries.spoold, ["serve", "--listen", "127.0.0.1:0", "--database", "mysql://x", "--data-dir", files.path + "/d"], timeout: 20)
        #expect(bad.status == 64 && bad.stderr.contains("--database"), "\(bad.stderr)")
        let wrong = database.replacingOccurrences(of: "spoolpassword", with: "nope")
        let refused = try run(Binaries.spoold, ["serve", "--listen", "127.0.0.1:0", "--data-dir", files.path + "/e"], environment: ["SPOOL_DATABASE": wrong], timeout: 20)
        #expect(refused.status != 0 && refused.stderr.contains("password authentication failed") && !refused.stderr.contains("nope"), "\(refused.stderr)")
    }
}
