import Foundation
import SpoolProtocol
import SpoolTestSupport
import Testing

/// Bodies of unknown length (`curl -T -` from a pipe sends them chunked): streamed
/// to disk like any other, their reservation grown as they arrive, refused the
/// moment they outgrow a limit.
@Suite struct HTTPChunkedTests {
    /// `curl -T -` with the file on a pipe; its status and total time.
    static func pipe(_ file: String, to url: String, _ extra: [String] = []) throws -> (status: Int, seconds: Double, stderr: String) {
        let script = "cat \"$0\" | curl -sS --expect100-timeout 30 -o /dev/null -w '%{http_code} %{time_total}' -T - \"$@\""
        let result = try run("/bin/sh", ["-c", script, file, url] + extra)
        let figures = result.stdout.split(separator: " ")
        return (Int(figures.first ?? "") ?? 0, Double(figures.last ?? "") ?? 99, result.stderr)
    }

    static func audit(_ server: Server) throws -> Finished {
        try run(Binaries.spoold, ["admin", "audit", "--data-dir", server.directory.root])
    }

    @Test func aBodyOfUnknownLengthStreamsToDiskAndIsSettledAtTheEnd() throws {
        let server = try Server(workers: 1)
        let files = try TempDirectory()
        // Past the first reservation step (16 MiB) and the size hashed inline (1 MiB).
        let bytes = pseudoRandomBytes(count: 40 << 20, seed: 87)
        let piped = try Self.pipe(writeFile(files.path + "/piped.bin", bytes), to: server.httpBase + "/files/piped.bin")
        #expect(piped.status == 201, "\(piped.stderr)")
        let row = try #require(try server.uploads().first)
        let size = Int64(bytes.count)
        #expect(row.state == .complete && row.size == size && row.received == size, "\(row)")
        #expect(row.sha256 == sha256Hex(bytes))
        let object = server.directory.objectFile(sha256: sha256Hex(bytes))
        #expect(try Data(contentsOf: URL(fileURLWithPath: object)) == Data(bytes))
        // What it reserved while growing is given back: the audit checks the running totals.
        let audit = try Self.audit(server)
        #expect(audit.status == 0, "\(audit.stdout) \(audit.stderr)")

        #expect(try Self.pipe(writeFile(files.path + "/empty", []), to: server.httpBase + "/files/empty").status == 201)
        let wrong = DigestHeader.header(sha256: sha256Hex([1]))
        let small = writeFile(files.path + "/small", Array("small\n".utf8))
        #expect(try Self.pipe(small, to: server.httpBase + "/files/small", ["-H", "Repr-Digest: \(wrong)"]).status == 400)
        #expect(try server.uploads().first { $0.name == "small" }?.state == .failed)
        try server.stop()
    }

    @Test func aBodyOfUnknownLengthIsRefusedOnceItOutgrowsALimit() throws {
        let files = try TempDirectory()
        let file = writeFile(files.path + "/grows.bin", pseudoRandomBytes(count: 48 << 20, seed: 88))
        let server = try Server(workers: 1, arguments: ["--max-file-size", "20M"])
        let tooLarge = try Self.pipe(file, to: server.httpBase + "/files/grows.bin")
        // The refusal reaches curl mid-body (the connection drains before it closes), at once.
        #expect(tooLarge.status == 413 && tooLarge.seconds < 10, "\(tooLarge)")
        let row = try #require(try server.uploads().first)
        let limit: Int64 = 20 << 20
        #expect(row.state == .failed && row.size == row.received && row.received <= limit, "\(row)")

        let secret = try server.createToken(["--name", "small", "--quota-bytes", "24M"])
        #expect(server.waitForAuthRequired())
        let overQuota = try Self.pipe(file, to: server.httpBase + "/files/grows.bin", ["-H", "Authorization: Bearer \(secret)"])
        #expect(overQuota.status == 413, "\(overQuota)")
        #expect(try server.uploads().filter { $0.state == .failed }.count == 2)
        #expect(try Self.audit(server).status == 0)
        try server.stop()
    }

    /// The disk filling up while a body grows. A file system of its own: the free
    /// space of the shared disk moves with every test running beside this one.
    @Test func aBodyOfUnknownLengthIsRefusedWhenTheDiskFillsUp() throws {
        let files = try TempDirectory()
        let file = writeFile(files.path + "/grows.bin", pseudoRandomBytes(count: 48 << 20, seed: 89))
        let disk = try SmallDisk(megabytes: 64)
        let server = try Server(workers: 1, data: disk.directory, arguments: ["--min-free", "24M"])
        let noSpace = try Self.pipe(file, to: server.httpBase + "/files/grows.bin")
        #expect(noSpace.status == 507, "\(noSpace)")
        // Refused by a reservation step (507), not by the disk running out (a failed
        // write, 503): the bytes in flight while the step is decided (up to 4 reads
        // of 1 MiB) may go a little past what the minimum leaves, never to the end.
        let row = try #require(try server.uploads().first)
        let whole: Int64 = 48 << 20
        #expect(row.state == .failed && row.received < whole, "\(row)")
        #expect(try Self.audit(server).status == 0)
        try server.stop()
    }
}

/// Small bodies (up to 64 KiB) are stored in batches, as the line protocol's `--at-once` ones.
@Suite struct HTTPSmallBodyTests {
    @Test func smallBodiesAreStoredInBatchesWithEveryCheck() throws {
        let server = try Server(workers: 1)
        let files = try TempDirectory()
        var expected: [String: String] = [:]
        for n in 0..<40 {
            let bytes = pseudoRandomBytes(count: 100 + n * 1000, seed: 100 + UInt64(n))
            writeFile(files.path + "/s\(n).bin", bytes)
            expected["s\(n).bin"] = sha256Hex(bytes)
        }
        // 8 curls at once, 5 files each on a kept-alive connection, so completions arrive
        // together. xargs waits for them itself: a shell's `wait` under the test runner did not.
        let groups = (0..<8).map { g in "{" + (0..<5).map { "s\(g * 5 + $0).bin" }.joined(separator: ",") + "}" }
        let script = "xargs -P 8 -I G curl -sS -o /dev/null -w '%{http_code}\\n' -T G \(server.httpBase)/files/"
        let result = try run("/bin/sh", ["-c", script], stdin: groups.joined(separator: "\n") + "\n", workingDirectory: files.path)
        let codes = result.stdout.split(separator: "\n")
        #expect(codes.count == 40 && codes.allSatisfy { $0 == "201" }, "\(result.stdout) \(result.stderr)")
        let rows = try server.uploads()
        #expect(rows.count == 40)
        #expect(rows.allSatisfy { $0.state == .complete && $0.sha256 == expected[$0.name] })

        let wrong = DigestHeader.header(sha256: sha256Hex([1]))
        #expect(try HTTPTests.put(files.path + "/s0.bin", to: server.httpBase + "/files/bad.bin", ["-H", "Repr-Digest: \(wrong)"]).status == 400)
        #expect(try server.uploads().first { $0.name == "bad.bin" }?.state == .failed)

        let secret = try server.createToken(["--name", "tiny", "--quota-bytes", "1K"])
        #expect(server.waitForAuthRequired())
        let over = try HTTPTests.put(files.path + "/s3.bin", to: server.httpBase + "/files/", ["-H", "Authorization: Bearer \(secret)"])
        #expect(over.status == 413, "\(over.headers)")
        #expect(try server.uploads().count == 41, "a refused upload keeps no row")
        #expect(try run(Binaries.spoold, ["admin", "audit", "--data-dir", server.directory.root]).status == 0)
        try server.stop()
    }
}
