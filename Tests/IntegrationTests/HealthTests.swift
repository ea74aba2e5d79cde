import CSQLite
import Foundation
import SpoolTestSupport
import Testing

/// GET /healthz, GET /readyz and the line protocol's HEALTH (docs/OPERATIONS.md):
/// the same checks on both doors, each failure named.
@Suite struct HealthTests {
    /// Status code and body of a GET.
    static func get(_ url: String) throws -> (status: Int, body: String) {
        let dir = try TempDirectory()
        let result = try HTTPTests.curl(["-o", dir.path + "/body", "-w", "%{http_code}", url])
        return (Int(result.stdout) ?? 0, (try? String(contentsOfFile: dir.path + "/body", encoding: .utf8)) ?? "")
    }

    @Test func aHealthyServerIsAliveAndReadyOnBothDoors() throws {
        let server = try Server(workers: 2)
        let alive = try Self.get(server.httpBase + "/healthz")
        #expect(alive.status == 200 && alive.body == "ok\n")
        #expect(try eventually { try Self.get(server.httpBase + "/readyz").status == 200 })
        let ready = try Self.get(server.httpBase + "/readyz")
        #expect(ready.body.hasPrefix("ready\ndatabase ok: writable\ndisk ok: "), "\(ready.body)")
        #expect(ready.body.contains("workers ok: 2 of 2 up\n"), "\(ready.body)")
        // No token is needed, even where one is: a load balancer has none.
        _ = try server.createToken(["--name", "someone"])
        #expect(try Self.get(server.httpBase + "/readyz").status == 200)

        let nc = try RawSession(port: server.port)
        let answer = try nc.ask("HEALTH")
        #expect(answer.first?.hasPrefix("200 ready: database ok (writable); disk ok (") == true, "\(answer)")
        #expect(answer.first?.hasSuffix("workers ok (2 of 2 up)") == true, "\(answer)")
        try server.stop()
    }

    @Test func tooLittleFreeSpaceIsNotReady() throws {
        // More to keep free than any disk here has: the server runs, but should get no uploads.
        let server = try Server(workers: 1, arguments: ["--min-free", "1000000T"])
        let ready = try Self.get(server.httpBase + "/readyz")
        #expect(ready.status == 503, "\(ready.body)")
        #expect(ready.body.hasPrefix("not ready\n") && ready.body.contains("disk FAIL: "), "\(ready.body)")
        #expect(try Self.get(server.httpBase + "/healthz").status == 200, "alive all the same")
        let answer = try RawSession(port: server.port).ask("HEALTH")
        #expect(answer.first?.hasPrefix("453 not ready: ") == true && answer.first?.contains("disk FAIL") == true, "\(answer)")
        try server.stop()
    }

    @Test func aDatabaseThatCannotBeWrittenIsNotReady() throws {
        let server = try Server(workers: 1)
        // Another process holds the write lock past the workers' busy time (about 5 s).
        var db: OpaquePointer?
        try #require(sqlite3_open(server.directory.databasePath, &db) == SQLITE_OK)
        defer { sqlite3_close(db) }
        try #require(sqlite3_exec(db, "BEGIN IMMEDIATE", nil, nil, nil) == SQLITE_OK)
        let ready = try Self.get(server.httpBase + "/readyz")
        #expect(ready.status == 503 && ready.body.contains("database FAIL: cannot be written"), "\(ready.body)")
        sqlite3_exec(db, "ROLLBACK", nil, nil, nil)
        #expect(try Self.get(server.httpBase + "/readyz").status == 200)
        try server.stop()
    }

    @Test func aStoppedWorkerIsNotReadyUntilItRuns() throws {
        let server = try Server(workers: 2, arguments: ["--timeout", "120"])
        let stopped = try #require(server.workerPIDs().first)
        kill(stopped, SIGSTOP)
        defer { kill(stopped, SIGCONT) }
        // Its heartbeat ages past 10 s; the other worker answers.
        #expect(try eventually(timeout: 30) {
            let ready = try Self.get(server.httpBase + "/readyz")
            return ready.status == 503 && ready.body.contains("workers FAIL: 1 of 2 up")
        })
        kill(stopped, SIGCONT)
        #expect(try eventually(timeout: 10) { try Self.get(server.httpBase + "/readyz").status == 200 })
        try server.stop()
    }
}
