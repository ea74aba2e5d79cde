import Foundation
import SpoolStore
import SpoolTestSupport
import Testing

/// TLS on both doors (docs/TLS.md): real spoold, real spool, curl, tuspy and
/// openssl, with certificates made at test time.
@Suite struct TLSTests {
    static func tlsServer(_ certificates: TestCertificates, certificate: String? = nil, workers: Int = 2, _ extra: [String] = [])
        throws -> Server
    {
        try Server(workers: workers, arguments: [
            "--tls-cert", certificate ?? certificates.server, "--tls-key", certificates.serverKey,
        ] + extra)
    }

    /// `spool` against the server's line door by name, trusting the test CA.
    static func spool(_ command: String, _ server: Server, _ certificates: TestCertificates, _ arguments: [String]) throws -> Finished {
        try run(Binaries.spool, [command, "--server", "localhost:\(server.port)", "--cacert", certificates.ca] + arguments)
    }

    /// The serial of the certificate a new connection to `port` is shown.
    static func servedSerial(port: Int) throws -> String {
        let shown = try run("/bin/sh", ["-c",
            "openssl s_client -connect 127.0.0.1:\(port) -servername localhost </dev/null 2>/dev/null | openssl x509 -noout -serial"])
        return String(shown.stdout.trimmingCharacters(in: .whitespacesAndNewlines).dropFirst("serial=".count)).lowercased()
    }

    @Test func uploadStatusWatchChatAndDownloadOverTLS() throws {
        let certificates = try TestCertificates()
        let server = try Self.tlsServer(certificates)
        let files = try TempDirectory()
        let bytes = pseudoRandomBytes(count: 5 << 20 | 333, seed: 17)
        let file = writeFile(files.path + "/report.bin", bytes)
        let small = writeFile(files.path + "/note.txt", Array("over TLS\n".utf8))

        let uploaded = try Self.spool("upload", server, certificates, ["--quiet", file, small])
        #expect(uploaded.status == 0, "\(uploaded.stderr)")
        let lines = uploaded.stdout.split(separator: "\n")
        #expect(lines.count == 2 && lines[0].contains(sha256Hex(bytes)), "\(uploaded.stdout)")
        let id = String(lines.first?.split(separator: " ").first ?? "")

        let status = try Self.spool("status", server, certificates, [id])
        #expect(status.status == 0 && status.stdout.contains("complete"), "\(status.stdout) \(status.stderr)")
        let watched = try Self.spool("watch", server, certificates, [id])
        #expect(watched.status == 0, "\(watched.stderr)")
        let chat = try run(Binaries.spool, ["chat", "--server", "localhost:\(server.port)", "--cacert", certificates.ca],
                           stdin: "PING\nSTATUS \(id)\n")
        #expect(chat.stdout.contains("200 pong") && chat.stdout.contains("state=complete"), "\(chat.stdout) \(chat.stderr)")

        let out = files.path + "/back.bin"
        let downloaded = try run(Binaries.spool, [
            "download", "--http", "localhost:\(server.httpPort)", "--cacert", certificates.ca, "--quiet", "-o", out, id,
        ])
        #expect(downloaded.status == 0, "\(downloaded.stderr)")
        #expect(FileManager.default.contents(atPath: out) == Data(bytes))
        try server.stop()
    }

    @Test func aCertificateThatCannotBeTrustedIsRefusedWithTheReason() throws {
        let certificates = try TestCertificates()
        let server = try Self.tlsServer(certificates)
        let files = try TempDirectory()
        let file = writeFile(files.path + "/a.txt", Array("a".utf8))

        // Another CA than the one that signed the server's certificate.
        let stranger = try run(Binaries.spool, [
            "upload", "--quiet", "--server", "localhost:\(server.port)", "--cacert", certificates.strangerCA, file,
        ])
        #expect(stranger.status == 1)
        #expect(stranger.stderr.contains("not signed by a certificate authority this client trusts"), "\(stranger.stderr)")
        // The system's store (no --cacert) does not know the test CA either.
        let system = try run(Binaries.spool, ["status", "--server", "localhost:\(server.port)", "--tls", "01ABC"])
        #expect(system.stderr.contains("not signed by a certificate authority"), "\(system.stderr)")
        // --insecure connects anyway, and says what it gave up.
        let insecure = try run(Binaries.spool, ["upload", "--quiet", "--server", "localhost:\(server.port)", "--insecure", file])
        #expect(insecure.status == 0, "\(insecure.stderr)")
        #expect(insecure.stderr.contains("warning: --insecure"), "\(insecure.stderr)")
        // A TLS client at the plain door: told so, not left waiting.
        let plainDoor = try Server(workers: 1)
        let wrongDoor = try run(Binaries.spool, [
            "status", "--server", "localhost:\(plainDoor.port)", "--cacert", certificates.ca, "01ABC",
        ], timeout: 30)
        #expect(wrongDoor.stderr.contains("does not speak TLS on this port"), "\(wrongDoor.stderr)")
        // And the other way round: a plain client at the TLS door, closed at the handshake deadline, is given the hint.
        let hinted = try Self.tlsServer(certificates, workers: 1, ["--line-timeout", "2s"])
        let plainClient = try run(Binaries.spool, ["status", "--server", "localhost:\(hinted.port)", "01ABC"], timeout: 30)
        #expect(plainClient.status != 0)
        #expect(plainClient.stderr.contains("add --tls"), "\(plainClient.stderr)")
        try hinted.stop()
        try plainDoor.stop()
        try server.stop()
    }

    @Test func theHostNameMustBeOneOfTheCertificates() throws {
        let certificates = try TestCertificates()
        // A certificate for elsewhere.test, served at localhost.
        let server = try Self.tlsServer(certificates, certificate: certificates.elsewhere, workers: 1)
        let refused = try Self.spool("status", server, certificates, ["01ABC"])
        #expect(refused.status != 0)
        #expect(refused.stderr.contains("not valid for localhost"), "\(refused.stderr)")
        let curl = try HTTPTests.curl(["--cacert", certificates.ca, "https://localhost:\(server.httpPort)/uploads"])
        #expect(curl.status != 0, "curl agrees: \(curl.stderr)")
        try server.stop()
    }

    @Test func curlPutsAndGetsRangesOverHTTPS() throws {
        let certificates = try TestCertificates()
        let server = try Self.tlsServer(certificates)
        let files = try TempDirectory()
        let bytes = pseudoRandomBytes(count: 3 << 20 | 77, seed: 5)
        let file = writeFile(files.path + "/data.bin", bytes)
        let base = "https://localhost:\(server.httpPort)"

        let put = try HTTPTests.put(file, to: base + "/files/data.bin", ["--cacert", certificates.ca])
        #expect(put.status == 201, "\(put.headers)")
        #expect(put.json["sha256"] as? String == sha256Hex(bytes))
        let id = put.json["id"] as? String ?? ""

        let whole = files.path + "/whole"
        let get = try HTTPTests.curl(["--cacert", certificates.ca, "-o", whole, "-w", "%{http_code} %{http_version}", base + "/uploads/\(id)/content"])
        #expect(get.stdout == "200 1.1", "\(get.stdout) \(get.stderr)")
        #expect(FileManager.default.contents(atPath: whole) == Data(bytes))
        let part = files.path + "/part"
        let range = try HTTPTests.curl(["--cacert", certificates.ca, "-r", "1000000-1999999", "-o", part, "-w", "%{http_code}", base + "/uploads/\(id)/content"])
        #expect(range.stdout == "206")
        #expect(FileManager.default.contents(atPath: part) == Data(bytes[1_000_000..<2_000_000]))
        // Plain HTTP at the TLS door: closed, nothing served.
        let plain = try HTTPTests.curl(["-m", "10", "http://127.0.0.1:\(server.httpPort)/uploads"])
        #expect(plain.status != 0)
        try server.stop()
    }

    @Test func tuspyUploadsOverHTTPS() throws {
        let certificates = try TestCertificates()
        let server = try Self.tlsServer(certificates)
        let files = try TempDirectory()
        let bytes = pseudoRandomBytes(count: 2 << 20 | 5, seed: 8)
        let file = writeFile(files.path + "/t.bin", bytes)
        var arguments = try TusClientTests.arguments(server, file, ["--chunk", "\(1 << 20)", "--sha256", sha256Hex(bytes)])
        arguments[1] = "https://localhost:\(server.httpPort)/files/"
        // requests, tuspy's HTTP library, trusts the CA bundle this names.
        let done = try run(TusClientTests.python, arguments, environment: ["REQUESTS_CA_BUNDLE": certificates.ca])
        #expect(done.status == 0, "\(done.stdout) \(done.stderr)")
        #expect(done.stdout.contains(" \(bytes.count)"), "\(done.stdout)")
        #expect(try server.uploads().contains { $0.sha256 == sha256Hex(bytes) && $0.state == .complete })
        try server.stop()
    }

    @Test func startUpIsRefusedBeforeBindingWhenTheCertificateCannotServe() throws {
        let certificates = try TestCertificates()
        let cases: [(arguments: [String], says: String)] = [
            (["--tls-cert", certificates.server, "--tls-key", certificates.otherKey], "does not belong to the certificate"),
            (["--tls-cert", certificates.path + "/missing.pem", "--tls-key", certificates.serverKey], "No such file"),
            (["--tls-cert", certificates.expired, "--tls-key", certificates.serverKey], "expired on"),
            (["--tls-cert", certificates.serverKey, "--tls-key", certificates.serverKey], "holds no PEM certificate"),
            (["--listen", "0.0.0.0:0"], "in plain text"),
        ]
        for (arguments, says) in cases {
            let data = try TempDirectory()
            let result = try run(Binaries.spoold, ["serve", "--listen", "127.0.0.1:0", "--http", "none", "--data-dir", data.path + "/d"] + arguments, timeout: 20)
            #expect(result.status == 1, "\(arguments)")
            #expect(result.stderr.contains(says), "\(arguments): \(result.stderr)")
            // Refused before anything was made or bound.
            #expect(!FileManager.default.fileExists(atPath: data.path + "/d/run/spoold.ports"), "\(arguments)")
        }
        let half = try run(Binaries.spoold, ["serve", "--tls-cert", certificates.server])
        #expect(half.status == 64 && half.stderr.contains("go together"), "\(half.stderr)")
    }

    @Test func hupServesARenewedCertificateWithoutCuttingAnUploadInProgress() throws {
        let certificates = try TestCertificates()
        let live = try TempDirectory()
        let certificate = live.path + "/cert.pem"
        try FileManager.default.copyItem(atPath: certificates.server, toPath: certificate)
        let server = try Self.tlsServer(certificates, certificate: certificate, workers: 1)
        let before = try Self.servedSerial(port: server.port)
        #expect(before == (try certificates.serial(certificates.server)))

        // An upload that takes a few seconds, started before the reload.
        let files = try TempDirectory()
        let bytes = pseudoRandomBytes(count: 3 << 20, seed: 61)
        let file = writeFile(files.path + "/slow.bin", bytes)
        let upload = Process()
        upload.executableURL = URL(fileURLWithPath: Binaries.spool)
        upload.arguments = ["upload", "--quiet", "--server", "localhost:\(server.port)", "--cacert", certificates.ca,
                            "--limit-rate", "1M", "--retries", "0", "--no-resume", file]
        upload.standardOutput = FileHandle.nullDevice
        upload.standardError = FileHandle.nullDevice
        try upload.run()
        #expect(eventually(timeout: 10) { (try? server.uploads().contains { $0.state == .receiving }) == true })

        try Data(contentsOf: URL(fileURLWithPath: certificates.renewed)).write(to: URL(fileURLWithPath: certificate), options: .atomic)
        server.signal(SIGHUP)
        // The new worker is up and the old one no longer accepts (it only finishes its upload).
        #expect(eventually(timeout: 20) {
            server.count("TLS certificate reloaded") == 1 && server.count("worker ready") >= 2 && server.count("draining: no new connections") >= 1
        })
        let after = try Self.servedSerial(port: server.port)
        #expect(after == (try certificates.serial(certificates.renewed)))
        #expect(after != before)

        upload.waitUntilExit()
        #expect(upload.terminationStatus == 0, "the upload begun before the reload was cut")
        #expect(try server.uploads().contains { $0.sha256 == sha256Hex(bytes) && $0.state == .complete })

        // A bad certificate at the next HUP: logged, and the renewed one keeps serving.
        try "not a certificate\n".write(toFile: certificate, atomically: true, encoding: .utf8)
        server.signal(SIGHUP)
        #expect(eventually(timeout: 20) {
            server.count("TLS certificate not reloaded") == 1 && server.count("worker ready") >= 3 && server.count("draining: no new connections") >= 2
        })
        #expect(server.log().contains("holds no PEM certificate"))
        #expect(try Self.servedSerial(port: server.port) == after)
        try server.stop()
    }

    /// A TCP connection from `source` (any 127.* address) to the server, with `bytes` sent.
    static func rawConnection(port: Int, from source: String = "127.0.0.1", sending bytes: [UInt8]) throws -> Int32 {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        func address(_ host: String, _ port: Int) -> sockaddr_in {
            var address = sockaddr_in()
            address.sin_family = sa_family_t(AF_INET)
            address.sin_port = in_port_t(UInt16(port).bigEndian)
            address.sin_addr.s_addr = inet_addr(host)
            return address
        }
        var local = address(source, 0)
        var remote = address("127.0.0.1", port)
        let bound = withUnsafePointer(to: &local) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        let connected = withUnsafePointer(to: &remote) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard bound == 0, connected == 0 else {
            close(fd)
            throw HarnessError("cannot connect from \(source): \(String(cString: strerror(errno)))")
        }
        _ = bytes.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
        var timeout = timeval(tv_sec: 20, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        return fd
    }

    /// Whether the server closed the connection (rather than the read timing out).
    static func closedByServer(_ fd: Int32) -> Bool {
        var chunk = [UInt8](repeating: 0, count: 4096)
        while true {
            let n = recv(fd, &chunk, chunk.count, 0)
            if n == 0 { return true }
            if n < 0 { return errno == ECONNRESET }
        }
    }

    static func rssKiB(_ pid: Int32) -> Int {
        let status = (try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8)) ?? ""
        let line = status.split(separator: "\n").first { $0.hasPrefix("VmRSS:") } ?? ""
        return Int(line.split(separator: " ").dropFirst().first ?? "") ?? 0
    }

    @Test func garbageStalledAndThousandsOfHalfOpenHandshakesDoNotStopAnHonestUpload() throws {
        let certificates = try TestCertificates()
        let server = try Self.tlsServer(certificates, workers: 1, ["--line-timeout", "2s"])
        let worker = try #require(server.workerPIDs().first)
        var limit = rlimit()
        getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit)
        if limit.rlim_cur < 4096 {
            limit.rlim_cur = min(limit.rlim_max, 4096)
            setrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit)
        }

        // Not TLS at all: closed as soon as it is read.
        let garbage = try Self.rawConnection(port: server.port, sending: Array("GET / HTTP/1.1\r\n\r\n".utf8))
        #expect(Self.closedByServer(garbage))
        close(garbage)
        // Half a record header, then nothing: closed at the handshake deadline.
        let stalled = try Self.rawConnection(port: server.port, sending: [0x16, 0x03, 0x01])
        #expect(Self.closedByServer(stalled))
        close(stalled)

        // A thousand handshakes begun and never finished, from another address.
        let before = Self.rssKiB(worker)
        var halfOpen: [Int32] = []
        defer { for fd in halfOpen { close(fd) } }
        for _ in 0..<1000 {
            halfOpen.append(try Self.rawConnection(port: server.port, from: "127.0.0.2", sending: [0x16, 0x03, 0x01, 0x00, 0xC8, 0x01]))
        }
        let files = try TempDirectory()
        let bytes = pseudoRandomBytes(count: 4 << 20, seed: 99)
        let file = writeFile(files.path + "/honest.bin", bytes)
        let honest = try Self.spool("upload", server, certificates, ["--quiet", file])
        #expect(honest.status == 0, "\(honest.stderr)")
        #expect(honest.stdout.contains(sha256Hex(bytes)))
        let during = Self.rssKiB(worker)
        // Measured here: about 90 KiB per connection at most; the bound leaves room, not a target.
        #expect(during - before < 300 * 1024, "worker RSS \(before) -> \(during) KiB")
        #expect(server.workerPIDs() == [worker], "the worker survived")
        // Every one of them is closed by the deadline.
        #expect(halfOpen.allSatisfy { Self.closedByServer($0) })
        try server.stop()
    }
}
