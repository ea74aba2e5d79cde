import Foundation
import SpoolTestSupport
import SpoolClient
import SpoolProtocol
import Testing

/// Limits: each answered with a clear code before any harm is done.
@Suite struct LimitsTests {
    let sha = String(repeating: "0", count: 64)

    @Test func tooLargeIsRefusedBeforeAByteIsWritten() throws {
        let server = try Server(workers: 1, arguments: ["--max-file-size", "1M"])
        let nc = try RawSession(port: server.port)
        let reply = try nc.ask("UPLOAD 1048577 \(sha) big.bin")
        #expect(reply == ["552 1048577 bytes is over this server's limit of 1048576 bytes per file"])
        #expect(try nc.ask("PING") == ["200 pong"], "no body was expected: the connection is in step")
        #expect(try server.uploads().isEmpty)
        #expect(code(try nc.ask("UPLOAD 1048576 \(sha) fits.bin").first) == 150)
        try server.stop()
    }

    @Test func freeSpaceReserveRefusesWithATransientCode() throws {
        let server = try Server(workers: 1, arguments: ["--min-free", "1000000T"])
        let nc = try RawSession(port: server.port)
        let reply = try #require(try nc.ask("UPLOAD 10 \(sha) x").first)
        #expect(reply.hasPrefix("452 not enough space:"), "\(reply)")
        #expect(try server.uploads().isEmpty)
        let dir = try TempDirectory()
        let client = try run(Binaries.spool, ["upload", "--retries", "1", "--server", server.address,
                                              writeFile(dir.path + "/f", [1, 2, 3])])
        #expect(client.status == 1 && client.stderr.contains("retrying in") && client.stderr.contains("452"), "\(client.stderr)")
        try server.stop()
    }

    @Test func idleConnectionsAreClosed() throws {
        let server = try Server(workers: 1, arguments: ["--idle-timeout", "1s"])
        let nc = try RawSession(port: server.port)
        #expect(try nc.readLine() == "421 closing: idle for 1 s")
        #expect(throws: HarnessError.self) { try nc.readLine() }
        try server.stop()
    }

    @Test func aLineSentOneByteAtATimeIsCutOff() throws {
        let server = try Server(workers: 1, arguments: ["--line-timeout", "1s"])
        let nc = try RawSession(port: server.port)
        var closed = ""
        for byte in "PPPPPPPPPPPPPPPPPPPPPPPPPPPPPPP" {
            try? nc.send(String(byte))  // slowloris: keeps the connection busy, never ends the line
            usleep(200_000)
            if let line = try? nc.readLineNow() {
                closed = line
                break
            }
        }
        #expect(closed == "421 closing: command line not finished within 1 s")
        try server.stop()
    }

    @Test func aStalledBodyIsClosedAndLeftResumable() throws {
        let server = try Server(workers: 1, arguments: ["--stall-timeout", "1s"])
        let upload = try PartialUpload(server: server, size: 100_000)
        try upload.send(30_000, directory: server.directory)
        let reply = try upload.connection.readReply()
        #expect(reply.code == .unavailable && reply.text.contains("stalled"))
        #expect(try eventually { try server.upload(id: upload.id)?.state == .interrupted })
        #expect(try server.upload(id: upload.id)?.received == 30_000)
        try server.stop()
    }

    @Test func connectionsFromOneAddressAreCappedAcrossWorkers() throws {
        let server = try Server(workers: 2, arguments: ["--max-client-connections", "3"])
        var open = try (0..<3).map { _ in try RawSession(port: server.port) }
        #expect(Set(open.map(\.worker)).count == 2, "spread over both workers")
        let fourth = try RawSession(port: server.port)
        #expect(fourth.greetingText == "421 too many connections from 127.0.0.1; try again later")
        // A flood is logged sparingly: each worker writes the 1st, 10th, 100th… refusal.
        for _ in 0..<40 { _ = try RawSession(port: server.port) }
        let warnings = server.log().split(separator: "\n").filter { $0.contains("too many connections from one address") }
        #expect((2...4).contains(warnings.count), "41 refusals over 2 workers: \(warnings.count) lines")
        #expect(warnings.contains { $0.contains("refused=10") })
        open.removeLast()
        #expect(eventually { (try? RawSession(port: server.port))?.greetingText.hasPrefix("220 ") == true })
        try server.stop()
    }

    @Test func aWorkerAtItsCapStopsAccepting() throws {
        let server = try Server(workers: 1, arguments: ["--max-connections", "2"])
        var held = try (0..<2).map { _ in try RawSession(port: server.port) }
        // The third is queued by the kernel, not greeted, until a place frees up.
        let third = try RawSocket(port: server.port)
        #expect(third.readLine(timeout: 0.5) == nil)
        held.removeFirst()
        #expect(third.readLine(timeout: 5)?.hasPrefix("220 ") == true)
        _ = held
        try server.stop()
    }

    @Test func aFailingWriteFailsTheUploadCleanlyAndServiceGoesOn() throws {
        // Every process of this server may write at most 4 MiB to one file.
        let server = try Server(workers: 1, wrapper: ["/usr/bin/prlimit", "--fsize=4194304", "--"])
        let dir = try TempDirectory()
        let bigBytes = pseudoRandomBytes(count: 6 << 20, seed: 66)
        let big = writeFile(dir.path + "/big.bin", bigBytes)
        let failed = try run(Binaries.spool, ["upload", "--quiet", "--retries", "0", "--server", server.address, big])
        #expect(failed.status == 1 && failed.stderr.contains("451"), "\(failed.stderr)")
        let row = try #require(try server.uploads().first)
        #expect(row.state == .failed && row.error?.contains("write") == true, "\(row)")
        #expect(try FileManager.default.contentsOfDirectory(atPath: server.directory.tempPath).isEmpty)
        // Sent checksum-after-body, the failed upload never learnt its checksum: look for the file's own.
        #expect(!FileManager.default.fileExists(atPath: server.directory.objectFile(sha256: sha256Hex(bigBytes))))
        // The worker survived (SIGXFSZ is ignored) and serves the next upload.
        let small = writeFile(dir.path + "/small.bin", pseudoRandomBytes(count: 100_000, seed: 67))
        #expect(try run(Binaries.spool, ["upload", "--quiet", "--server", server.address, small]).status == 0)
        #expect(server.count("worker exited") == 0)
        try server.stop()
    }
}

/// A socket that may wait without a greeting (RawSession expects one at once).
final class RawSocket {
    private var fd: Int32
    private var buffer: [UInt8] = []

    init(port: Int) throws {
        fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let fd = self.fd
        let rc = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard rc == 0 else { throw HarnessError("connect failed") }
    }

    deinit { if fd >= 0 { close(fd) } }

    /// Closes the socket now (the peer sees the connection end).
    func closeNow() {
        if fd >= 0 { close(fd) }
        fd = -1
    }

    /// Whether the peer has closed the connection (a read finds the end of the stream).
    func isClosed() -> Bool {
        var byte: UInt8 = 0
        return recv(fd, &byte, 1, Int32(MSG_DONTWAIT | MSG_PEEK)) == 0
    }

    func readLine(timeout: Double) -> String? {
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            if let newline = buffer.firstIndex(of: 10) {
                defer { buffer.removeSubrange(...newline) }
                return String(decoding: buffer[..<newline], as: UTF8.self)
            }
            var pfd = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            guard poll(&pfd, 1, 50) > 0 else { continue }
            var chunk = [UInt8](repeating: 0, count: 4096)
            let n = recv(fd, &chunk, chunk.count, 0)
            if n <= 0 { return nil }
            buffer.append(contentsOf: chunk[0..<n])
        }
        return nil
    }

    func write(_ bytes: [UInt8]) throws {
        var offset = 0
        while offset < bytes.count {
            let n = bytes[offset...].withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            guard n > 0 else { throw HarnessError("send failed") }
            offset += n
        }
    }

    /// Sends `bytes` over and over for `seconds`, as fast as the socket takes them,
    /// reading nothing. Returns how many bytes it took.
    func flood(_ bytes: [UInt8], for seconds: Double) -> Int {
        let deadline = Date().addingTimeInterval(seconds)
        var sent = 0, offset = 0
        while Date() < deadline {
            var pfd = pollfd(fd: fd, events: Int16(POLLOUT), revents: 0)
            guard poll(&pfd, 1, 50) > 0 else { continue }
            let n = bytes[offset...].withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_DONTWAIT | MSG_NOSIGNAL)) }
            if n < 0 { if errno == EAGAIN || errno == EINTR { continue } else { break } }
            sent += n
            offset = (offset + n) % bytes.count
        }
        return sent
    }
}
