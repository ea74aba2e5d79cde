import Foundation
import SpoolClient
import SpoolProtocol
import SpoolStore
import SpoolTestSupport
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// Protocol 2 through a real server: an UPLOAD's body follows its line at once,
/// as older clients still send it.
@Suite struct BodyAtOnceUploadTests {
    static func version2(_ server: Server) throws -> Connection {
        let connection = try Connection(server: server.address, maxVersion: 2)
        #expect(try connection.protocolVersion() == 2)
        return connection
    }

    /// Several uploads written back to back, before any reply is read: each is
    /// stored, in order, whether its body arrived whole with its line or not.
    @Test func uploadsSentWithoutWaitingAreStoredInOrder() throws {
        let server = try Server(workers: 1)
        let connection = try Self.version2(server)
        let bodies = [pseudoRandomBytes(count: 4096, seed: 41), pseudoRandomBytes(count: 0, seed: 42),
                      pseudoRandomBytes(count: 300_000, seed: 43)]
        var message: [UInt8] = []
        for (n, body) in bodies.enumerated() {
            message += Array(UploadRequest(name: "f\(n)", size: Int64(body.count), sha256: sha256Hex(body)).line.utf8) + body
        }
        try connection.send(bytes: message)
        for body in bodies {
            let ready = try connection.readReply()
            #expect(ready.code == .sendBody && ready.fields["offset"] == "0", "\(ready)")
            let verdict = try connection.readReply()
            #expect(verdict.code == .stored && verdict.fields["id"] == ready.fields["id"], "\(verdict)")
            let stored = try Data(contentsOf: URL(fileURLWithPath: server.directory.objectFile(sha256: sha256Hex(body))))
            #expect(stored == Data(body))
        }
        #expect(try server.uploads().map(\.state) == [.complete, .complete, .complete])
        try server.stop()
    }

    /// Small uploads back to back are stored together, and answered one by one in
    /// order: a wrong checksum fails only its own, and a command behind them is
    /// answered after them.
    @Test func smallUploadsBackToBackAreAnsweredInOrder() throws {
        let server = try Server(workers: 1)
        let connection = try Self.version2(server)
        let bodies = (0..<5).map { pseudoRandomBytes(count: 1000 + $0 * 700, seed: 60 + UInt64($0)) }
        var message: [UInt8] = []
        for (n, body) in bodies.enumerated() {
            let declared = n == 2 ? sha256Hex(Array("not this".utf8)) : sha256Hex(body)
            message += Array(UploadRequest(name: "f\(n)", size: Int64(body.count), sha256: declared).line.utf8) + body
        }
        try connection.send(bytes: message + Array("PING\n".utf8))
        var ids: [String] = []
        for n in bodies.indices {
            let ready = try connection.readReply()
            #expect(ready.code == .sendBody, "\(ready)")
            let verdict = try connection.readReply()
            #expect(verdict.code == (n == 2 ? .checksumMismatch : .stored), "\(verdict)")
            #expect(verdict.fields["id"] == ready.fields["id"])
            ids.append(ready.fields["id"] ?? "")
        }
        #expect(try connection.readReply().code == .ok)  // the PING, last
        let rows = Dictionary(uniqueKeysWithValues: try server.uploads().map { ($0.id, $0) })
        #expect(ids.map { rows[$0]?.name } == ["f0", "f1", "f2", "f3", "f4"])
        #expect(ids.map { rows[$0]?.state } == [.complete, .complete, .failed, .complete, .complete])
        for (n, body) in bodies.enumerated() where n != 2 {
            let stored = try Data(contentsOf: URL(fileURLWithPath: server.directory.objectFile(sha256: sha256Hex(body))))
            #expect(stored == Data(body))
        }
        try server.stop()
    }

    /// A line, then its body in two pieces a moment apart: the server opens the
    /// upload first and writes the body as it comes.
    @Test func aBodyArrivingLaterIsWrittenAsItComes() throws {
        let server = try Server(workers: 1)
        let connection = try Self.version2(server)
        let body = pseudoRandomBytes(count: 10_000, seed: 44)
        try connection.send(bytes: Array(UploadRequest(name: "late", size: 10_000, sha256: sha256Hex(body)).line.utf8) + body[0..<10])
        usleep(200_000)
        try connection.send(bytes: body[10...])
        #expect(try connection.readReply().code == .sendBody)
        #expect(try connection.readReply().code == .stored)
        try server.stop()
    }

    @Test func aWrongChecksumStoresNothingAndTheNextUploadGoesThrough() throws {
        let server = try Server(workers: 1)
        let connection = try Self.version2(server)
        let body = pseudoRandomBytes(count: 4096, seed: 45)
        try connection.send(bytes: Array(UploadRequest(name: "bad", size: 4096, sha256: sha256Hex([1])).line.utf8) + body
            + Array(UploadRequest(name: "good", size: 4096, sha256: sha256Hex(body)).line.utf8) + body)
        #expect(try connection.readReply().code == .sendBody)
        #expect(try connection.readReply().code == .checksumMismatch)
        #expect(try connection.readReply().code == .sendBody)
        #expect(try connection.readReply().code == .stored)
        #expect(try server.uploads().map(\.state) == [.complete, .failed])
        try server.stop()
    }

    /// Refused uploads: their bodies are read and dropped, and the connection stays in step.
    @Test func aRefusedUploadsBodyIsDroppedAndTheConnectionStaysInStep() throws {
        let server = try Server(workers: 1, arguments: ["--max-file-size", "1K"])
        let connection = try Self.version2(server)
        let body = pseudoRandomBytes(count: 5000, seed: 46)
        try connection.send(bytes: Array(UploadRequest(name: "big", size: 5000, sha256: sha256Hex(body)).line.utf8) + body)
        let refused = try connection.readReply()
        #expect(refused.code == .exceedsLimit, "\(refused)")
        // A malformed line that still says its size: its body is dropped too.
        try connection.send(bytes: Array("UPLOAD 5000 nothex big\n".utf8) + body)
        #expect(try connection.readReply().code == .badArguments)
        try connection.send(line: "PING")
        #expect(try connection.readReply().code == .ok)
        #expect(try server.uploads().isEmpty)
        try server.stop()
    }
}

/// The client's side: a small file goes with its line, before any go-ahead. The
/// peer here is a script, so that it can withhold the 150 and see what arrives.
@Suite struct SpoolSendsSmallBodiesAtOnceTests {
    /// `spool upload` of one 4 KiB file against a scripted peer that has greeted it
    /// and answered its HELLO with `proto=version`.
    static func uploadToPeer(version: Int, seed: UInt64) throws -> (spool: Process, peer: ScriptedPeer.Peer, body: [UInt8], dir: TempDirectory) {
        let listener = try ScriptedPeer()
        let dir = try TempDirectory()
        let body = pseudoRandomBytes(count: 4096, seed: seed)
        let file = writeFile(dir.path + "/small.bin", body)
        let spool = try startSpool(["upload", "--quiet", "--no-resume", "--retries", "0", "--server", "127.0.0.1:\(listener.port)", file],
                                   state: dir.path + "/state", output: dir.path)
        let peer = try listener.accept()
        try peer.send("220 spool/test ready proto=\(version) worker=1\n")
        #expect(try peer.readLine() == "HELLO \(ProtocolInfo.version)")
        try peer.send("200 proto=\(version) server=spool/test features=upload\(version >= 2 ? ",body-at-once" : "")\n")
        return (spool, peer, body, dir)
    }

    @Test(arguments: [2, 3]) func spoolSendsASmallFileWithoutWaitingForTheGoAhead(version: Int) throws {
        let (spool, peer, body, files) = try Self.uploadToPeer(version: version, seed: 47)
        let line = try peer.readLine()
        // Marked as such where the server needs to be told (protocol 3).
        let request = UploadRequest(name: "small.bin", size: 4096, sha256: sha256Hex(body), bodyAtOnce: version >= 3)
        #expect(line == request.line.dropLast())
        // No 150 has been sent: the body must be on its way regardless.
        #expect(try peer.read(count: 4096) == body)
        let id = "01M88Z99K7WC0KHZJ57X11XW77"
        try peer.send("150 id=\(id) offset=0 size=4096 send 4096 bytes\n250 id=\(id) size=4096 sha256=\(sha256Hex(body)) stored\n")
        spool.waitUntilExit()
        #expect(spool.terminationStatus == 0)
        withExtendedLifetime(files) {}  // the file stays until the client is done with it
    }

    /// An older server (protocol 1) gets the classic exchange: nothing before the 150.
    @Test func spoolWaitsForTheGoAheadFromAVersionOneServer() throws {
        let (spool, peer, body, files) = try Self.uploadToPeer(version: 1, seed: 48)
        #expect(try peer.readLine().hasPrefix("UPLOAD 4096 "))
        #expect(try peer.read(count: 1, timeout: 0.5) == nil, "nothing may come before the 150")
        let id = "01M88Z99K7WC0KHZJ57X11XW77"
        try peer.send("150 id=\(id) offset=0 size=4096 send 4096 bytes\n")
        #expect(try peer.read(count: 4096) == body)
        try peer.send("250 id=\(id) size=4096 sha256=\(sha256Hex(body)) stored\n")
        spool.waitUntilExit()
        #expect(spool.terminationStatus == 0)
        withExtendedLifetime(files) {}  // the file stays until the client is done with it
    }

    /// Several small files: all go out, lines and bodies, before any reply; the
    /// verdicts come back in order, and one refused for now (452) is sent again,
    /// alone, after the others.
    @Test func spoolSendsSmallFilesBackToBackAndRetriesARefusalAlone() throws {
        let listener = try ScriptedPeer()
        let dir = try TempDirectory()
        let bodies = (0..<3).map { pseudoRandomBytes(count: 2000 + $0, seed: 70 + UInt64($0)) }
        let files = bodies.enumerated().map { writeFile(dir.path + "/s\($0.offset).bin", $0.element) }
        let spool = try startSpool(["upload", "--quiet", "--no-resume", "--retries", "1", "--server", "127.0.0.1:\(listener.port)"] + files,
                                   state: dir.path + "/state", output: dir.path)
        let peer = try listener.accept()
        try peer.send("220 spool/test ready proto=2 worker=1\n")
        #expect(try peer.readLine() == "HELLO \(ProtocolInfo.version)")
        try peer.send("200 proto=2 server=spool/test features=upload,body-at-once\n")
        for (n, body) in bodies.enumerated() {
            #expect(try peer.readLine() == UploadRequest(name: "s\(n).bin", size: Int64(body.count), sha256: sha256Hex(body)).line.dropLast())
            #expect(try peer.read(count: body.count) == body, "file \(n) before any reply")
        }
        func stored(_ n: Int) -> String {
            let id = "01M88Z99K7WC0KHZJ57X11XW7\(n)"
            return "150 id=\(id) offset=0 size=\(bodies[n].count) send \(bodies[n].count) bytes\n"
                + "250 id=\(id) size=\(bodies[n].count) sha256=\(sha256Hex(bodies[n])) stored\n"
        }
        try peer.send(stored(0) + "452 not enough space; try again later\n" + stored(2))
        // The refused one again, alone (after the client's backoff).
        #expect(try peer.readLine() == UploadRequest(name: "s1.bin", size: Int64(bodies[1].count), sha256: sha256Hex(bodies[1])).line.dropLast())
        #expect(try peer.read(count: bodies[1].count) == bodies[1])
        try peer.send(stored(1))
        spool.waitUntilExit()
        #expect(spool.terminationStatus == 0)
        let printed = try String(contentsOfFile: dir.path + "/stdout", encoding: .utf8).split(separator: "\n").map { $0.split(separator: " ").last ?? "" }
        #expect(printed == [files[0], files[2], files[1]].map { Substring($0) })
    }
}

