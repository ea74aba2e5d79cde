import Foundation
import SpoolStore
import SpoolTestSupport
import Testing

/// `--retain`: the server removes old finished uploads by itself, by state, as
/// `admin delete` would: an object another upload still names stays.
@Suite struct RetentionTests {
    @Test func oldUploadsGoByPolicyAndSharedObjectsStay() throws {
        // A short partial TTL makes the master's chores (expiry, then retention) run twice a second.
        let server = try Server(workers: 1, arguments: ["--retain", "complete=30d,failed=forever", "--partial-ttl", "2s"])
        let files = try TempDirectory()
        func upload(_ name: String, _ bytes: [UInt8]) throws -> String {
            let path = writeFile(files.path + "/" + name, bytes)
            #expect(try run(Binaries.spool, ["upload", "--quiet", "--server", server.address, path]).status == 0)
            return try #require(try server.uploads().first { $0.name == name }?.id)
        }
        let shared = pseudoRandomBytes(count: 100_000, seed: 1)
        let alone = pseudoRandomBytes(count: 100_000, seed: 2)
        let oldShared = try upload("old-shared.bin", shared)
        _ = try upload("new-shared.bin", shared)
        let oldAlone = try upload("old-alone.bin", alone)
        let young = try upload("young.bin", pseudoRandomBytes(count: 1_000, seed: 3))

        // Aged in the database: 31 days for two, 29 for the young one.
        try sqlite(server.directory.databasePath, """
            UPDATE uploads SET updated_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now', '-31 days') WHERE id IN ('\(oldShared)', '\(oldAlone)');
            UPDATE uploads SET updated_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now', '-29 days') WHERE id = '\(young)';
            """)
        #expect(eventually(timeout: 20) { server.count("upload removed by retention") == 2 }, "\(server.log())")
        let left = try server.uploads()
        #expect(Set(left.map(\.name)) == ["new-shared.bin", "young.bin"])
        #expect(FileManager.default.fileExists(atPath: server.directory.objectFile(sha256: sha256Hex(shared))), "still named by new-shared.bin")
        #expect(!FileManager.default.fileExists(atPath: server.directory.objectFile(sha256: sha256Hex(alone))))
        #expect(server.log().contains("upload removed by retention id=\(oldAlone) retain=complete=30d,failed=forever,expired=forever,lost=forever state=complete"),
                "\(server.log())")
        try server.stop()
        // Every removal is in the event log, and the spool agrees with the database.
        let events = try run(Binaries.spoold, ["admin", "events", "--id", oldAlone, "--data-dir", server.directory.root])
        #expect(events.stdout.contains("deleted"), "\(events.stdout)")
        let audit = try run(Binaries.spoold, ["admin", "audit", "--data-dir", server.directory.root])
        #expect(audit.status == 0, "\(audit.stdout)\(audit.stderr)")
    }

    @Test func adminStatsForecastsWhatTheNextTurnsRemove() throws {
        let server = try Server(workers: 1)
        let files = try TempDirectory()
        for (index, size) in [1000, 2000, 4000].enumerated() {
            let path = writeFile(files.path + "/f\(index)", pseudoRandomBytes(count: size, seed: UInt64(index)))
            #expect(try run(Binaries.spool, ["upload", "--quiet", "--server", server.address, path]).status == 0)
        }
        try server.stop()
        let rows = try server.uploads().sorted { $0.size < $1.size }
        try sqlite(server.directory.databasePath, """
            UPDATE uploads SET updated_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now', '-31 days') WHERE id IN ('\(rows[0].id)', '\(rows[1].id)');
            UPDATE uploads SET state = 'failed' WHERE id = '\(rows[1].id)';
            """)
        let stats = try run(Binaries.spoold, ["admin", "stats", "--data-dir", server.directory.root], environment: ["SPOOL_RETAIN": "complete=30d,failed=7d,expired=7d"])
        #expect(stats.stdout.contains("retention      complete=30d,failed=7d,expired=7d,lost=forever"), "\(stats.stdout)")
        #expect(stats.stdout.contains("  complete     1 (1000 B)") && stats.stdout.contains("  failed       1 (2.0 KiB)"), "\(stats.stdout)")
        let json = try run(Binaries.spoold, ["admin", "stats", "--json", "--data-dir", server.directory.root])
        let forecast = try #require(try JSONDecoder().decode(AdminStats.self, from: Data(json.stdout.utf8)).retention)
        #expect(forecast.policy == "complete=forever,failed=7d,expired=7d,lost=forever")
        #expect(forecast.due.map(\.state) == [.failed, .expired] && forecast.due.map(\.uploads) == [1, 0] && forecast.due[0].bytes == 2000)
        // Nothing was removed by asking.
        #expect(try server.uploads().count == 3)
    }

    @Test func aPolicyOfTheWrongFormIsRefused() throws {
        for bad in ["complete=soon", "receiving=1d", "complete=1d,complete=2d", "complete"] {
            let result = try run(Binaries.spoold, ["config", "check", "--config", "none", "--retain", bad], timeout: 20)
            #expect(result.status == 64 && result.stderr.contains("--retain: expected STATE=AGE pairs"), "\(bad): \(result.stderr)")
        }
        let shown = try run(Binaries.spoold, ["config", "show", "--config", "none"], timeout: 20).stdout
        #expect(shown.contains("retain = complete=forever,failed=7d,expired=7d"), "\(shown)")
    }
}
