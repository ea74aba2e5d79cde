import Foundation
import SpoolProtocol
import SpoolTestSupport
import Testing

/// HTTP through curl (Debian's, installed by scripts/setup): the same uploads,
/// verified and durable, that the line protocol makes.
@Suite struct HTTPTests {
    /// curl's output and exit status; `-w` writes its figures after the body.
    static func curl(_ arguments: [String], in directory: String? = nil) throws -> Finished {
        try run("/usr/bin/curl", ["-sS", "--expect100-timeout", "30"] + arguments, workingDirectory: directory)
    }

    /// The JSON body of a 201, and the status.
    static func put(_ file: String, to url: String, _ extra: [String] = []) throws -> (status: Int, json: [String: Any], headers: String) {
        let dir = try TempDirectory()
        let result = try curl(["-D", dir.path + "/headers", "-o", dir.path + "/body", "-w", "%{http_code}", "-T", file, url] + extra)
        let body = (try? Data(contentsOf: URL(fileURLWithPath: dir.path + "/body"))) ?? Data()
        let json = (try? JSONSerialization.jsonObject(with: body)) as? [String: Any] ?? [:]
        let headers = (try? String(contentsOfFile: dir.path + "/headers", encoding: .utf8)) ?? ""
        return (Int(result.stdout) ?? 0, json, "\(headers)")
    }

    @Test func aLargePutIsStoredVerifiedWithoutWaitingForTheContinueTimeout() throws {
        let server = try Server(workers: 2)
        let files = try TempDirectory()
        let bytes = pseudoRandomBytes(count: 64 << 20, seed: 80)
        let file = writeFile(files.path + "/big photo.jpg", bytes)
        // curl sends Expect: 100-continue for a body this large; told to wait 30 s for
        // the 100, it would take that long if the server never sent it.
        let timed = try Self.curl(["-o", "/dev/null", "-w", "%{http_code} %{time_total}", "-T", file, server.httpBase + "/files/"])
        let figures = timed.stdout.split(separator: " ")
        #expect(figures.first == "201", "\(timed.stdout) \(timed.stderr)")
        #expect((Double(figures.last ?? "") ?? 99) < 10, "the 100 came at once: \(timed.stdout)")
        let row = try #require(try server.uploads().first)
        #expect(row.name == "big photo.jpg" && row.state == .complete && row.sha256 == sha256Hex(bytes))
        let stored = try Data(contentsOf: URL(fileURLWithPath: server.directory.objectFile(sha256: sha256Hex(bytes))))
        #expect(stored == Data(bytes))

        // What the 201 says.
        let small = writeFile(files.path + "/notes.txt", Array("notes\n".utf8))
        let (status, json, headers) = try Self.put(small, to: server.httpBase + "/files/")
        let sha = sha256Hex(Array("notes\n".utf8))
        #expect(status == 201 && json["sha256"] as? String == sha && json["size"] as? Int == 6)
        let id = try #require(json["id"] as? String)
        #expect(headers.contains("Location: /uploads/\(id)\r\n"), "\(headers)")
        #expect(headers.contains("Repr-Digest: \(DigestHeader.header(sha256: sha))\r\n"), "\(headers)")
        try server.stop()
    }

    @Test func aDeclaredDigestIsCheckedBeforeAnythingIsPublished() throws {
        let server = try Server(workers: 1)
        let files = try TempDirectory()
        let bytes = pseudoRandomBytes(count: 3 << 20, seed: 81)
        let file = writeFile(files.path + "/f.bin", bytes)
        let wrong = DigestHeader.header(sha256: sha256Hex([1, 2, 3]))
        let refused = try Self.put(file, to: server.httpBase + "/files/f.bin", ["-H", "Repr-Digest: \(wrong)"])
        #expect(refused.status == 400)
        #expect(!FileManager.default.fileExists(atPath: server.directory.objectFile(sha256: sha256Hex(bytes))))
        #expect(try server.uploads().first?.state == .failed)
        let right = DigestHeader.header(sha256: sha256Hex(bytes))
        #expect(try Self.put(file, to: server.httpBase + "/files/f.bin", ["-H", "Content-Digest: \(right)"]).status == 201)
        #expect(try Self.put(file, to: server.httpBase + "/files/f.bin", ["-H", "Repr-Digest: sha-256=:nope:"]).status == 400)
        try server.stop()
    }

    @Test func severalFilesGoOverOneConnection() throws {
        let server = try Server(workers: 1)
        let files = try TempDirectory()
        for n in 0..<3 { writeFile(files.path + "/f\(n).txt", pseudoRandomBytes(count: 1000 * (n + 1), seed: 82 + UInt64(n))) }
        let result = try Self.curl(["-o", "/dev/null", "-w", "%{http_code} %{num_connects}\n", "-T", "{f0.txt,f1.txt,f2.txt}",
                                    server.httpBase + "/files/"], in: files.path)
        #expect(result.stdout == "201 1\n201 0\n201 0\n", "one connection, kept alive: \(result.stdout) \(result.stderr)")
        #expect(Set(try server.uploads().map(\.name)) == ["f0.txt", "f1.txt", "f2.txt"])
        try server.stop()
    }

    @Test func downloadsAreWholeRangedResumedAndConditional() throws {
        let server = try Server(workers: 1)
        let files = try TempDirectory()
        let bytes = pseudoRandomBytes(count: 5 << 20, seed: 83)
        // Uploaded with the line protocol, downloaded over HTTP: one store, two doors.
        let upload = try run(Binaries.spool, ["upload", "--quiet", "--server", server.address, writeFile(files.path + "/r é.bin", bytes)])
        let id = String(upload.stdout.prefix(26))
        let url = server.httpBase + "/uploads/\(id)/content"
        let got = try Self.curl(["-D", files.path + "/h", "-o", files.path + "/whole", url])
        #expect(got.status == 0)
        #expect(try Data(contentsOf: URL(fileURLWithPath: files.path + "/whole")) == Data(bytes))
        let headers = try String(contentsOfFile: files.path + "/h", encoding: .utf8)
        #expect(headers.contains("ETag: \"\(sha256Hex(bytes))\"") && headers.contains("filename*=UTF-8''r%20%C3%A9.bin"), "\(headers)")

        let part = try Self.curl(["-r", "1000-1999", "-o", files.path + "/part", "-w", "%{http_code}", url])
        #expect(part.stdout == "206")
        #expect(try Data(contentsOf: URL(fileURLWithPath: files.path + "/part")) == Data(bytes[1000..<2000]))
        // A cut download, resumed with -C -.
        writeFile(files.path + "/resumed", Array(bytes[0..<1_234_567]))
        #expect(try Self.curl(["-C", "-", "-o", files.path + "/resumed", url]).status == 0)
        #expect(try Data(contentsOf: URL(fileURLWithPath: files.path + "/resumed")) == Data(bytes))

        let same = try Self.curl(["-o", "/dev/null", "-w", "%{http_code}", "-H", "If-None-Match: \"\(sha256Hex(bytes))\"", url])
        #expect(same.stdout == "304")
        let head = try Self.curl(["-I", url])
        #expect(head.stdout.contains("Content-Length: \(bytes.count)"), "\(head.stdout)")
        let record = try Self.curl([server.httpBase + "/uploads/\(id)"])
        #expect(record.stdout.contains("\"state\":\"complete\""), "\(record.stdout)")
        #expect(try Self.curl(["-o", "/dev/null", "-w", "%{http_code}", server.httpBase + "/uploads/01ZZZZZZZZZZZZZZZZZZZZZZZZ/content"]).stdout == "404")
        try server.stop()
    }

    @Test func anHTTPUploadIsAnOrdinaryUpload() throws {
        let server = try Server(workers: 2)
        let files = try TempDirectory()
        let (_, json, _) = try Self.put(writeFile(files.path + "/seen.txt", Array("seen\n".utf8)), to: server.httpBase + "/files/")
        let id = try #require(json["id"] as? String)
        #expect(try run(Binaries.spool, ["status", "--server", server.address, id]).status == 0)
        #expect(try RawSession(port: server.port).ask("LIST").first?.hasPrefix("212-\(id) complete") == true)
        #expect(try run(Binaries.spoold, ["admin", "audit", "--data-dir", server.directory.root]).status == 0)
        try server.stop()
    }

    @Test func refusalsComeBeforeTheBodyWithTheirStatus() throws {
        let server = try Server(workers: 1, arguments: ["--max-file-size", "1M"])
        let files = try TempDirectory()
        let file = writeFile(files.path + "/big.bin", pseudoRandomBytes(count: 3 << 20, seed: 84))
        let started = Date()
        let refused = try Self.put(file, to: server.httpBase + "/files/")
        #expect(refused.status == 413 && Date().timeIntervalSince(started) < 10)
        #expect(try Self.put(file, to: server.httpBase + "/files/bad%0Aname").status == 400)
        #expect(try server.uploads().isEmpty)
        try server.stop()

        let full = try Server(workers: 1, arguments: ["--min-free", "1000000T"])
        #expect(try Self.put(file, to: full.httpBase + "/files/").status == 507)
        try full.stop()
    }

    @Test func tokensAreBearerTokensAndSeeOnlyTheirOwn() throws {
        let server = try Server(workers: 1)
        let alice = try server.createToken(["--name", "alice"])
        let bob = try server.createToken(["--name", "bob"])
        #expect(server.waitForAuthRequired())
        let files = try TempDirectory()
        let file = writeFile(files.path + "/mine.txt", Array("mine\n".utf8))
        let anonymous = try Self.put(file, to: server.httpBase + "/files/")
        #expect(anonymous.status == 401 && anonymous.headers.contains("WWW-Authenticate: Bearer"), "\(anonymous.headers)")
        #expect(try Self.put(file, to: server.httpBase + "/files/", ["-H", "Authorization: Bearer wrong"]).status == 401)
        let (status, json, _) = try Self.put(file, to: server.httpBase + "/files/", ["-H", "Authorization: Bearer \(alice)"])
        let id = try #require(json["id"] as? String)
        #expect(status == 201)
        #expect(try server.uploads().first?.token == "alice")
        let url = server.httpBase + "/uploads/\(id)/content"
        #expect(try Self.curl(["-w", "%{http_code}", "-o", "/dev/null", "-H", "Authorization: Bearer \(bob)", url]).stdout == "404")
        #expect(try Self.curl(["-H", "Authorization: Bearer \(alice)", url]).stdout == "mine\n")
        try server.stop()
    }

    /// Two framings, or two lengths, could be read two ways by two parsers: refused and closed.
    @Test func ambiguousFramingIsRefused() throws {
        let server = try Server(workers: 1)
        for request in [
            "PUT /files/a HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
            "PUT /files/a HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!",
        ] {
            let socket = try RawSocket(port: server.httpPort)
            try socket.write(Array(request.utf8))
            let status = socket.readLine(timeout: 5) ?? ""
            #expect(status.hasPrefix("HTTP/1.1 400"), "\(status)")
        }
        #expect(try server.uploads().isEmpty)
        try server.stop()
    }
}

/// Listing and downloads by name.
@Suite struct HTTPListingTests {
    @Test func uploadsAreListedNewestFirstAndPaged() throws {
        let server = try Server(workers: 1)
        let files = try TempDirectory()
        for n in 0..<3 {
            let file = writeFile(files.path + "/n\(n).txt", Array("version \(n)\n".utf8))
            #expect(try HTTPTests.put(file, to: server.httpBase + "/files/same.txt").status == 201)
            usleep(5_000)  // distinct creation times, so the pages split cleanly
        }
        let all = try HTTPTests.curl([server.httpBase + "/uploads"])
        let rows = try #require(try JSONSerialization.jsonObject(with: Data(all.stdout.utf8)) as? [[String: Any]])
        #expect(rows.count == 3 && rows.allSatisfy { $0["name"] as? String == "same.txt" && $0["state"] as? String == "complete" })
        let firstPage = try HTTPTests.curl(["-D", files.path + "/h", server.httpBase + "/uploads?limit=2"])
        let headers = try String(contentsOfFile: files.path + "/h", encoding: .utf8)
        let link = try #require(headers.split(separator: "\r\n").first { $0.hasPrefix("Link: <") })
        let next = String(link.dropFirst("Link: <".count).prefix { $0 != ">" })
        let page = try #require(try JSONSerialization.jsonObject(with: Data(firstPage.stdout.utf8)) as? [[String: Any]])
        let rest = try #require(try JSONSerialization.jsonObject(with: Data(try HTTPTests.curl([server.httpBase + next]).stdout.utf8)) as? [[String: Any]])
        #expect(page.count == 2 && rest.count == 1)
        #expect(Set((page + rest).compactMap { $0["id"] as? String }) == Set(rows.compactMap { $0["id"] as? String }))
        #expect(try HTTPTests.curl([server.httpBase + "/uploads?state=failed"]).stdout == "[\n]\n")
        #expect(try HTTPTests.curl(["-o", "/dev/null", "-w", "%{http_code}", server.httpBase + "/uploads?limit=0"]).stdout == "400")

        // By name: the newest complete one. A name that looks like an id, or holds glob characters, is only a name.
        #expect(try HTTPTests.curl([server.httpBase + "/names/same.txt"]).stdout == "version 2\n")
        let starry = writeFile(files.path + "/s.txt", Array("star\n".utf8))
        #expect(try HTTPTests.put(starry, to: server.httpBase + "/files/s%2A.txt").status == 201)
        #expect(try HTTPTests.curl([server.httpBase + "/names/s%2A.txt"]).stdout == "star\n")
        #expect(try HTTPTests.curl(["-o", "/dev/null", "-w", "%{http_code}", server.httpBase + "/names/s%3F.txt"]).stdout == "404")
        try server.stop()
    }
}

/// What a hostile or broken HTTP client gets: a clear status or a closed connection, never a stuck worker.
@Suite struct HTTPHostileTests {
    /// Sends `text` on a fresh connection and returns the first line of the answer.
    static func exchange(_ server: Server, _ text: String, timeout: Double = 5) throws -> String? {
        let socket = try RawSocket(port: server.httpPort)
        try socket.write(Array(text.utf8))
        return socket.readLine(timeout: timeout)
    }

    @Test func malformedRequestsGet400() throws {
        let server = try Server(workers: 1)
        for request in ["GARBAGE\r\n\r\n", "PUT /files/a HTTP/9.9\r\n\r\n", "PUT /files/a HTTP/1.1\r\nContent-Length: -5\r\n\r\n",
                        "PUT /files/a HTTP/1.1\r\nNo colon here\r\n\r\n"] {
            let status = try Self.exchange(server, request)
            #expect(status?.hasPrefix("HTTP/1.1 400") == true, "\(request.debugDescription): \(status ?? "nothing")")
        }
        #expect(try Self.exchange(server, "GET /uploads HTTP/1.1\r\nHost: x\r\n\r\n")?.hasPrefix("HTTP/1.1 200") == true, "the worker goes on")
        try server.stop()
    }

    @Test func slowHeadsAndIdleConnectionsAreClosed() throws {
        let server = try Server(workers: 1, arguments: ["--line-timeout", "1s", "--idle-timeout", "2s"])
        let slow = try RawSocket(port: server.httpPort)
        var answer: String?
        for byte in "GET /uploads HTTP/1.1\r\nX-Slow: " {
            try? slow.write(Array(String(byte).utf8))  // the server may have answered and closed already
            if let line = slow.readLine(timeout: 0.2) { answer = line; break }
        }
        // Bytes sent after the 408 are drained before the close (a lingering close), so
        // the close is no reset that could discard the 408 before the client reads it.
        answer = answer ?? slow.readLine(timeout: 3)
        #expect(answer?.hasPrefix("HTTP/1.1 408") == true, "\(answer ?? "nothing")")
        let idle = try RawSocket(port: server.httpPort)
        #expect(idle.readLine(timeout: 6) == nil)  // closed: readLine returns nil at once on EOF, or after 6 s if never
        #expect(idle.isClosed())
        try server.stop()
    }

    @Test func aBodyCutShortLeavesTheUploadInterrupted() throws {
        let server = try Server(workers: 1)
        let socket = try RawSocket(port: server.httpPort)
        try socket.write(Array("PUT /files/cut.bin HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n".utf8) + pseudoRandomBytes(count: 30_000, seed: 85))
        #expect(eventually { (try? server.uploads().first?.state) == .receiving })
        socket.closeNow()
        #expect(try eventually { try server.uploads().first?.state == .interrupted })
        #expect(try server.uploads().first?.received == 30_000)
        try server.stop()
    }

    @Test func aThousandIdleConnectionsDoNotStopAnHonestUpload() throws {
        let server = try Server(workers: 2, arguments: ["--max-client-connections", "2000", "--max-connections", "2000"])
        var idle: [RawSocket] = []
        for _ in 0..<1000 { idle.append(try RawSocket(port: server.httpPort)) }
        let files = try TempDirectory()
        let file = writeFile(files.path + "/honest.bin", pseudoRandomBytes(count: 1 << 20, seed: 86))
        #expect(try HTTPTests.put(file, to: server.httpBase + "/files/").status == 201)
        idle.removeAll()
        try server.stop()
    }

    @Test func oneAddressIsCappedAcrossWorkers() throws {
        let server = try Server(workers: 1, arguments: ["--max-client-connections", "2"])
        let held = try (0..<2).map { _ in try RawSocket(port: server.httpPort) }
        #expect(eventually { (try? Self.exchange(server, "GET /uploads HTTP/1.1\r\nHost: x\r\n\r\n"))??.hasPrefix("HTTP/1.1 503") == true })
        withExtendedLifetime(held) {}
        try server.stop()
    }
}

extension HTTPHostileTests {
    @Test func anEndlessHeadIsCutOffWith431() throws {
        let server = try Server(workers: 1)
        let socket = try RawSocket(port: server.httpPort)
        try socket.write(Array("GET /uploads HTTP/1.1\r\nHost: x\r\n".utf8))
        var answer: String?
        for n in 0..<200 where answer == nil {
            try? socket.write(Array("X-Filler-\(n): \(String(repeating: "a", count: 1000))\r\n".utf8))
            answer = socket.readLine(timeout: 0.01)
        }
        #expect(answer?.hasPrefix("HTTP/1.1 431") == true, "\(answer ?? "nothing")")
        try server.stop()
    }
}

extension HTTPTests {
    /// The body streams to disk: a worker's memory does not depend on the size of the file.
    @Test func aWorkerReceivingFourGiBStaysSmall() throws {
        let server = try Server(workers: 1, arguments: ["--min-free", "1M"])
        let worker = try #require(server.workerPIDs().first)
        let dir = try TempDirectory()
        let path = try sparseFile(dir.path + "/sparse-4GiB", size: 4 << 30)  // zeros, made at once
        let result = try Self.curl(["-o", "/dev/null", "-w", "%{http_code}", "-T", path, server.httpBase + "/files/"])
        #expect(result.stdout == "201", "\(result.stderr)\n\(server.log())")
        let peak = try #require(MemoryTests.peakRSSKiB(worker), "worker \(worker) gone:\n\(server.log())")
        #expect(peak < 64 * 1024, "worker peak RSS \(peak) KiB for a 4 GiB HTTP PUT")
        try server.stop()
    }
}

/// Browsers on other origins (CORS) and the request target's cap.
@Suite struct HTTPBrowserTests {
    static func headers(_ arguments: [String]) throws -> String {
        try HTTPTests.curl(["-o", "/dev/null", "-D", "-"] + arguments).stdout
    }

    @Test func crossOriginCallsAreOffByDefaultAndAllowedPerOrigin() throws {
        let closed = try Server(workers: 1)
        let plain = try Self.headers(["-X", "OPTIONS", closed.httpBase + "/files/"])
        #expect(plain.hasPrefix("HTTP/1.1 204") && plain.contains("Allow: POST, OPTIONS") && plain.contains("Tus-Version: 1.0.0"), "\(plain)")
        let preflight = ["-X", "OPTIONS", "-H", "Origin: https://app.example", "-H", "Access-Control-Request-Method: PUT"]
        let refused = try Self.headers(preflight + [closed.httpBase + "/files/a.txt"])
        #expect(refused.hasPrefix("HTTP/1.1 403") && !refused.contains("Access-Control-Allow-Origin"), "\(refused)")
        let answer = try Self.headers(["-H", "Origin: https://app.example", closed.httpBase + "/uploads"])
        #expect(answer.hasPrefix("HTTP/1.1 200") && !answer.contains("Access-Control"), "\(answer)")
        try closed.stop()

        let open = try Server(workers: 1, arguments: ["--cors-origin", "https://app.example"])
        let allowed = try Self.headers(preflight + ["-H", "Access-Control-Request-Headers: authorization, repr-digest", open.httpBase + "/files/a.txt"])
        #expect(allowed.hasPrefix("HTTP/1.1 204"), "\(allowed)")
        #expect(allowed.contains("Access-Control-Allow-Origin: https://app.example\r\n"), "\(allowed)")
        #expect(allowed.contains("Access-Control-Allow-Methods: GET, HEAD, PUT, POST, PATCH, DELETE, OPTIONS") && allowed.contains("Authorization, Content-Type, Repr-Digest"))
        #expect(!allowed.contains("Content-Length"), "a 204 has no length: \(allowed)")
        // The actual request: its answer names the origin, and lets the page read Location and Repr-Digest.
        let files = try TempDirectory()
        let file = writeFile(files.path + "/page.txt", Array("from a page\n".utf8))
        let put = try Self.headers(["-H", "Origin: https://app.example", "-T", file, open.httpBase + "/files/"])
        #expect(put.contains("HTTP/1.1 201 Created") && put.contains("Access-Control-Allow-Origin: https://app.example"), "\(put)")
        #expect(put.contains("Access-Control-Expose-Headers: Location, Repr-Digest") && put.contains("Vary: Origin"), "\(put)")
        let other = try Self.headers(["-H", "Origin: https://evil.example", open.httpBase + "/uploads"])
        #expect(!other.contains("Access-Control-Allow-Origin") && other.contains("Vary: Origin"), "\(other)")
        #expect(try Self.headers(["-X", "OPTIONS", "-H", "Origin: https://evil.example", "-H", "Access-Control-Request-Method: GET",
                                  open.httpBase + "/uploads"]).hasPrefix("HTTP/1.1 403"))
        try open.stop()
        #expect(try run(Binaries.spoold, ["serve", "--cors-origin", "app.example/", "--data-dir", files.path + "/d"]).status != 0)
    }

    @Test func aTargetOverEightKiBGets414() throws {
        let server = try Server(workers: 1)
        let long = server.httpBase + "/names/" + String(repeating: "a", count: 9000)
        #expect(try HTTPTests.curl(["-o", "/dev/null", "-w", "%{http_code}", long]).stdout == "414")
        #expect(try HTTPTests.curl(["-o", "/dev/null", "-w", "%{http_code}", server.httpBase + "/uploads"]).stdout == "200")
        try server.stop()
    }
}
