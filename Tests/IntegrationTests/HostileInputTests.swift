import Foundation
import SpoolTestSupport
import SpoolClient
import SpoolProtocol
import SpoolStore
import Testing

/// Garbage, lies and rudeness: each gets its reply, the server keeps serving an
/// honest client meanwhile, and nothing already stored changes.
@Suite struct HostileInputTests {
    enum Step {
        case send(String)
        case bytes([UInt8])
        /// The next reply line's code.
        case expect(Int)
        case close
    }

    struct Case: CustomStringConvertible {
        let description: String
        let steps: [Step]
    }

    static let sha = String(repeating: "ab", count: 32)
    static let helloSHA = sha256Hex(Array("hello".utf8))

    static func line(_ name: String, _ text: String, _ code: Int) -> Case {
        Case(description: name, steps: [.send(text + "\n"), .expect(code)])
    }

    static let corpus: [Case] = [
        line("over-long line", String(repeating: "x", count: 9000), 500),
        line("line one byte over the limit", String(repeating: "y", count: 8193), 500),
        Case(description: "binary junk", steps: [.bytes([0, 1, 2, 3, 0xFF, 10]), .expect(500)]),
        Case(description: "invalid UTF-8", steps: [.bytes([0xC3, 0x28, 10]), .expect(500)]),
        Case(description: "lone continuation byte", steps: [.bytes([0x80, 10]), .expect(500)]),
        Case(description: "NUL in a line", steps: [.bytes(Array("PING\u{0}".utf8) + [10]), .expect(500)]),
        line("DEL character", "\u{7F}", 500),
        line("escape sequence", "\u{1B}[2J", 500),
        line("unknown command", "FLY", 500),
        line("very long verb", String(repeating: "Z", count: 8000), 500),
        line("NUL in name", "UPLOAD 1 \(sha) a%00b", 501),
        line("bell in name", "UPLOAD 1 \(sha) a%07b", 501),
        line("newline in name", "UPLOAD 1 \(sha) a%0Ab", 501),
        line("path traversal", "UPLOAD 1 \(sha) ../../etc/passwd", 501),
        line("hidden traversal", "UPLOAD 1 \(sha) a/../../b", 501),
        line("absolute path", "UPLOAD 1 \(sha) /abs/path", 501),
        line("dot", "UPLOAD 1 \(sha) .", 501),
        line("dot dot", "UPLOAD 1 \(sha) ..", 501),
        line("empty component", "UPLOAD 1 \(sha) a//b", 501),
        line("trailing slash", "UPLOAD 1 \(sha) a/", 501),
        line("missing name", "UPLOAD 1 \(sha)", 501),
        line("empty encoded name", "UPLOAD 1 \(sha) %", 501),
        line("name of 1,025 bytes", "UPLOAD 1 \(sha) \(String(repeating: "n", count: 1025))", 501),
        line("encoded invalid UTF-8 name", "UPLOAD 1 \(sha) %C3%28", 501),
        line("extra argument", "UPLOAD 1 \(sha) a b", 501),
        line("negative size", "UPLOAD -1 \(sha) a", 501),
        line("non-numeric size", "UPLOAD ten \(sha) a", 501),
        line("overflowing size", "UPLOAD 99999999999999999999 \(sha) a", 501),
        line("size one past Int64", "UPLOAD 9223372036854775808 \(sha) a", 501),
        line("size with a plus", "UPLOAD +5 \(sha) a", 501),
        line("hexadecimal size", "UPLOAD 0x10 \(sha) a", 501),
        line("fractional size", "UPLOAD 1.5 \(sha) a", 501),
        line("size over the limit", "UPLOAD 2147483648 \(sha) huge", 552),
        line("short checksum", "UPLOAD 1 abc a", 501),
        line("checksum not hex", "UPLOAD 1 \(String(repeating: "g", count: 64)) a", 501),
        line("checksum too long", "UPLOAD 1 \(sha)0 a", 501),
        Case(description: "wrong checksum", steps: [
            .send("UPLOAD 5 \(sha) liar.txt\n"), .expect(150), .send("hello"), .expect(554), .send("PING\n"), .expect(200),
        ]),
        Case(description: "more bytes than declared", steps: [
            .send("UPLOAD 5 \(helloSHA) more.txt\n"), .expect(150), .send("helloEXTRA\n"), .expect(250), .expect(500),
        ]),
        Case(description: "commands in the middle of a body", steps: [
            .send("UPLOAD 10 \(sha) mid.txt\n"), .expect(150), .send("QUIT\nPING\n"), .expect(554), .send("PING\n"), .expect(200),
        ]),
        Case(description: "fewer bytes than declared, then gone", steps: [
            .send("UPLOAD 100 \(sha) short.txt\n"), .expect(150), .send("only a few"), .close,
        ]),
        Case(description: "gone before the 150 is read", steps: [.send("UPLOAD 100 \(sha) early.txt\n"), .close]),
        Case(description: "gone right after the 150", steps: [.send("UPLOAD 100 \(sha) after.txt\n"), .expect(150), .close]),
        Case(description: "gone in the middle of a line", steps: [.send("UPLO"), .close]),
        Case(description: "gone right after the greeting", steps: [.close]),
        line("resume of an unknown upload", "RESUME 01ZZZZZZZZZZZZZZZZZZZZZZZZ \(sha)", 550),
        line("resume with a malformed id", "RESUME ../etc \(sha)", 501),
        line("status with a malformed id", "STATUS '; DROP TABLE uploads; --", 501),
        line("watch of an unknown upload", "WATCH 01ZZZZZZZZZZZZZZZZZZZZZZZZ", 550),
        line("list of a negative count", "LIST -1", 501),
        line("list of too many", "LIST 1001", 501),
        line("find of nothing", "FIND", 501),
        line("find with SQL", "FIND %' OR 1=1 --", 212),
        line("hello version 0", "HELLO 0", 501),
        line("hello with words", "HELLO there", 501),
        line("help for nonsense", "HELP ME", 501),
        line("auth without a token", "AUTH", 501),
        line("auth with a made-up token", "AUTH spool_0000", 535),
        Case(description: "blank lines and a bare CR", steps: [.send("\n\n\r\n   \nPING\n"), .expect(200)]),
        Case(description: "a thousand pipelined PINGs", steps:
            [.send(String(repeating: "PING\n", count: 1000))] + Array(repeating: .expect(200), count: 1000)),
    ]

    @Test func everyBadInputGetsItsReplyAndHarmsNothing() throws {
        #expect(Self.corpus.count >= 50)
        let server = try Server(workers: 2, arguments: ["--max-file-size", "1G", "--partial-ttl", "1s"])
        let dir = try TempDirectory()
        let keepBytes = pseudoRandomBytes(count: 200_000, seed: 99)
        let keep = writeFile(dir.path + "/keep.bin", keepBytes)
        #expect(try run(Binaries.spool, ["upload", "--quiet", "--server", server.address, keep]).status == 0)
        let before = try #require(try server.uploads().first)

        let honest = UploadLoop(server: server.address, file: writeFile(dir.path + "/honest.bin", pseudoRandomBytes(count: 50_000, seed: 98)))
        honest.start()
        for item in Self.corpus {
            let nc = try RawSession(port: server.port)
            var session: RawSession? = nc
            for step in item.steps {
                switch step {
                case .send(let text): try nc.send(text)
                case .bytes(let bytes): try nc.send(bytes: bytes)
                case .expect(let expected):
                    let got = try nc.readLine()
                    #expect(code(got) == expected, "\(item): got \"\(got.prefix(100))\"")
                case .close: session = nil
                }
            }
            _ = session
        }
        #expect(eventually { honest.counts.ok >= 3 })
        honest.stop()
        #expect(honest.counts.failed == 0, "\(honest.counts.errors)")

        // What was stored before is untouched.
        let after = try #require(try server.upload(id: before.id))
        #expect(after == before)
        #expect(FileManager.default.contents(atPath: server.directory.objectFile(sha256: before.sha256)) == Data(keepBytes))
        // No upload from the corpus completed but the honest one, and no temporary file outlives expiry.
        let rows = try server.uploads()
        #expect(rows.filter { $0.state == .complete }.allSatisfy { ["keep.bin", "steady.bin", "more.txt"].contains($0.name) })
        #expect(eventually(timeout: 15) {
            (try? FileManager.default.contentsOfDirectory(atPath: server.directory.tempPath).isEmpty) == true
        })
        #expect(try server.uploads().allSatisfy { $0.state != .receiving && $0.state != .interrupted })
        #expect(try run(Binaries.spoold, ["admin", "audit", "--data-dir", server.directory.root]).status == 0)
        try server.stop()
    }

    @Test func aThousandSilentConnectionsDoNotStopAnHonestUpload() throws {
        let server = try Server(workers: 2, arguments: ["--max-client-connections", "2000", "--max-connections", "2000"])
        var silent: [RawSocket] = []
        for _ in 0..<1000 { silent.append(try RawSocket(port: server.port)) }
        let dir = try TempDirectory()
        let bytes = pseudoRandomBytes(count: 1 << 20, seed: 1000)
        let result = try run(Binaries.spool, ["upload", "--quiet", "--server", server.address, writeFile(dir.path + "/f", bytes)])
        #expect(result.status == 0, "\(result.stderr)")
        #expect(try server.uploads().first?.state == .complete)
        let stats = try RawSession(port: server.port).ask("STATS").first ?? ""
        let connections = stats.components(separatedBy: "connections=").last?.split(separator: " ").first.flatMap { Int($0) } ?? 0
        #expect(connections > 1000, "the silent ones stay open, and this one is served too: \(stats)")
        silent.removeAll()
        try server.stop()
    }

    /// A client that sends commands and never reads the replies (each line here
    /// gets a reply some 25 times its size): once the replies back up, the worker
    /// reads no more from it instead of holding them all, and serves others meanwhile.
    @Test func aClientThatNeverReadsItsRepliesIsNotBufferedWithoutBound() throws {
        let server = try Server(workers: 1)
        let worker = try #require(server.workerPIDs().first)
        let rude = try RawSocket(port: server.port)
        let sent = rude.flood(Array(String(repeating: "X\n", count: 50_000).utf8), for: 4)
        let peak = try #require(MemoryTests.peakRSSKiB(worker))
        #expect(peak < 100 * 1024, "worker peak RSS \(peak) KiB after \(sent) bytes of lines whose replies were never read")
        #expect(try RawSession(port: server.port).ask("PING").first?.hasPrefix("200") == true)
        try server.stop()
    }
}

