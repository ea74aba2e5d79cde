import Foundation
import SpoolTestSupport
import Testing

/// GET /metrics: the whole server's figures whichever worker answers, counters that
/// survive a worker's death, Prometheus' format (promtool), and a real Prometheus
/// scraping it (Debian's prometheus package, installed by scripts/setup).
@Suite struct MetricsTests {
    static func scrape(_ server: Server, _ extra: [String] = []) throws -> (status: Int, body: String) {
        let dir = try TempDirectory()
        let result = try HTTPTests.curl(["-o", dir.path + "/body", "-w", "%{http_code}"] + extra + [server.httpBase + "/metrics"])
        return (Int(result.stdout) ?? 0, (try? String(contentsOfFile: dir.path + "/body", encoding: .utf8)) ?? "")
    }

    /// The value of one sample line (`name{labels} value`).
    static func sample(_ text: String, _ name: String) -> Double? {
        text.split(separator: "\n").first { $0.hasPrefix(name + " ") }.flatMap { Double($0.split(separator: " ").last ?? "") }
    }

    @Test func countersAddUpAcrossWorkersAndSurviveAWorkersDeath() throws {
        let server = try Server(workers: 2)
        let files = try TempDirectory()
        var sent = 0
        func upload(_ size: Int, seed: UInt64) throws {
            let file = writeFile(files.path + "/f\(seed).bin", pseudoRandomBytes(count: size, seed: seed))
            #expect(try run(Binaries.spool, ["upload", "--quiet", "--server", server.address, file]).status == 0)
            sent += size
        }
        for seed: UInt64 in 1...3 { try upload(200_000 * Int(seed), seed: seed) }
        // Small files go another way (stored whole, in batches): counted the same.
        for seed: UInt64 in 5...6 { try upload(1_000 * Int(seed), seed: seed) }
        // A worker killed: what it counted stays in the sums.
        let victim = try #require(server.workerPIDs().first)
        kill(victim, SIGKILL)
        #expect(eventually { server.count("killed by KILL") == 1 && server.workerPIDs().count == 2 })
        try upload(3 << 20, seed: 4)

        // One over HTTP, counted under its own protocol.
        let put = writeFile(files.path + "/h.bin", pseudoRandomBytes(count: 777_777, seed: 8))
        #expect(try HTTPTests.put(put, to: server.httpBase + "/files/h.bin").status == 201)

        // Every scrape, whichever worker answers, sees the same totals.
        for _ in 0..<4 {
            let scraped = try Self.scrape(server)
            #expect(scraped.status == 200)
            #expect(Self.sample(scraped.body, "spool_received_bytes_total{protocol=\"line\"}") == Double(sent), "\(scraped.body)")
            #expect(Self.sample(scraped.body, "spool_received_bytes_total{protocol=\"http\"}") == 777_777)
            #expect(Self.sample(scraped.body, "spool_received_bytes_total{protocol=\"tus\"}") == 0)
            #expect(Self.sample(scraped.body, "spool_uploads_completed_total{protocol=\"line\"}") == 6)
            #expect(Self.sample(scraped.body, "spool_uploads_started_total{protocol=\"line\"}") == 6)
            #expect(Self.sample(scraped.body, "spool_uploads_completed_total{protocol=\"http\"}") == 1)
            #expect(Self.sample(scraped.body, "spool_upload_duration_seconds_count") == 7)
            #expect(Self.sample(scraped.body, "spool_worker_deaths_total") == 1)
            // The durability steps were timed: commits, log syncs, file syncs, batch sizes.
            for name in ["spool_commit_seconds_count", "spool_wal_sync_seconds_count", "spool_file_sync_seconds_count",
                         "spool_commit_batch_size_count"] {
                #expect((Self.sample(scraped.body, name) ?? 0) >= 1, "\(name)")
            }
            #expect(scraped.body.contains("spool_workers{state=\"up\"} 2\n"))
        }
        // Prometheus' own linter accepts it.
        let dir = try TempDirectory()
        try Self.scrape(server).body.write(toFile: dir.path + "/metrics.txt", atomically: true, encoding: .utf8)
        let lint = try run("/bin/sh", ["-c", "promtool check metrics < \(dir.path)/metrics.txt"])
        #expect(lint.status == 0 && lint.stdout.isEmpty && lint.stderr.isEmpty, "\(lint.stdout)\(lint.stderr)")
        try server.stop()
    }

    @Test func onceTokensExistOnlyAnAdminTokenMayScrape() throws {
        let server = try Server(workers: 1)
        let user = try server.createToken(["--name", "alice"])
        let admin = try server.createToken(["--name", "ops", "--admin"])
        #expect(server.waitForAuthRequired())
        #expect(try Self.scrape(server).status == 401)
        #expect(try Self.scrape(server, ["-H", "Authorization: Bearer \(user)"]).status == 403)
        #expect(try Self.scrape(server, ["-H", "Authorization: Bearer \(admin)"]).status == 200)
        try server.stop()
    }

    /// `--metrics`: a loopback listener of its own, for a local Prometheus, answering
    /// without a token what operators' tools ask, and nothing else.
    @Test func aSeparateLoopbackListenerServesMetricsWithoutAToken() throws {
        let server = try Server(workers: 2, arguments: ["--metrics", "127.0.0.1:0"])
        let port = try #require(server.ports()["metrics"])
        _ = try server.createToken(["--name", "ops", "--admin"])
        #expect(server.waitForAuthRequired())
        #expect(try Self.scrape(server).status == 401, "the HTTP door still asks for a token")
        func get(_ path: String) throws -> (status: Int, body: String) {
            let dir = try TempDirectory()
            let result = try HTTPTests.curl(["-o", dir.path + "/body", "-w", "%{http_code}", "http://127.0.0.1:\(port)\(path)"])
            return (Int(result.stdout) ?? 0, (try? String(contentsOfFile: dir.path + "/body", encoding: .utf8)) ?? "")
        }
        for _ in 0..<4 {  // whichever worker accepts
            let scraped = try get("/metrics")
            #expect(scraped.status == 200 && scraped.body.contains("spool_workers{state=\"up\"} 2\n"), "\(scraped)")
        }
        #expect(try get("/readyz").status == 200)
        #expect(try get("/healthz").body == "ok\n")
        let other = try get("/uploads")
        #expect(other.status == 404 && other.body.contains("this listener serves /metrics, /healthz and /readyz only"), "\(other)")
        try server.stop()

        // Only loopback: it has no token check.
        let refused = try run(Binaries.spoold, ["serve", "--metrics", "0.0.0.0:9464"], timeout: 20)
        #expect(refused.status == 64 && refused.stderr.contains("--metrics: expected a loopback HOST:PORT"), "\(refused.stderr)")
    }

    @Test func aRealPrometheusScrapesTheBytesJustUploaded() throws {
        let server = try Server(workers: 2)
        let files = try TempDirectory()
        let file = writeFile(files.path + "/p.bin", pseudoRandomBytes(count: 1_234_567, seed: 9))
        #expect(try run(Binaries.spool, ["upload", "--quiet", "--server", server.address, file]).status == 0)

        let dir = try TempDirectory()
        try """
            global:
              scrape_interval: 1s
            scrape_configs:
              - job_name: spool
                static_configs:
                  - targets: ["127.0.0.1:\(server.httpPort)"]
            """.write(toFile: dir.path + "/prometheus.yml", atomically: true, encoding: .utf8)
        let port = try SystemdTests.freePort()
        let prometheus = Process()
        prometheus.executableURL = URL(fileURLWithPath: "/usr/bin/prometheus")
        prometheus.arguments = ["--config.file=\(dir.path)/prometheus.yml", "--storage.tsdb.path=\(dir.path)/data",
                                "--web.listen-address=127.0.0.1:\(port)"]
        prometheus.standardOutput = FileHandle.nullDevice
        prometheus.standardError = FileHandle(forWritingAtPath: "/dev/null")
        try prometheus.run()
        defer {
            prometheus.terminate()
            prometheus.waitUntilExit()
        }
        // PromQL through Prometheus' HTTP API, until a scrape has landed.
        var answer = ""
        let found = try eventually(timeout: 60) {
            let result = try run("/usr/bin/curl", ["-s", "-G", "http://127.0.0.1:\(port)/api/v1/query",
                                                   "--data-urlencode", "query=sum(spool_received_bytes_total)"])
            answer = result.stdout
            return answer.contains("\"1234567\"")
        }
        #expect(found, "\(answer)")
        try server.stop()
    }
}
