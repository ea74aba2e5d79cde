import Foundation
import SpoolClient
import SpoolProtocol
import SpoolStore
import SpoolTestSupport
import Testing

/// Uploads whose checksum follows the body (`UPLOAD <size> - <name>`, then `DIGEST`),
/// through a real server. Both sizes: inline and pipelined hashing on the server.
@Suite struct DigestAfterUploadTests {
    @Test(arguments: [50_000, 3 << 20])
    func theChecksumAfterTheBodyIsVerifiedAndRecorded(size: Int) throws {
        let server = try Server(workers: 1)
        let bytes = pseudoRandomBytes(count: size, seed: 21)
        let connection = try Connection(server: server.address)
        try connection.send(line: UploadRequest(name: "later.bin", size: Int64(size), sha256: nil).line)
        let ready = try connection.readReply()
        #expect(ready.code == .sendBody)
        try connection.send(bytes: bytes)
        try connection.send(line: "DIGEST \(sha256Hex(bytes))")
        let verdict = try connection.readReply()
        #expect(verdict.code == .stored, "\(verdict)")
        #expect(verdict.fields["sha256"] == sha256Hex(bytes))
        let row = try #require(try server.uploads().first)
        #expect(row.state == .complete && row.sha256 == sha256Hex(bytes))
        #expect(try Data(contentsOf: URL(fileURLWithPath: server.directory.objectFile(sha256: row.sha256))) == Data(bytes))
        try server.stop()
    }

    @Test func aWrongOrMissingDigestStoresNothingAndKeepsTheConnectionInStep() throws {
        let server = try Server(workers: 1)
        let bytes = pseudoRandomBytes(count: 10_000, seed: 22)
        let connection = try Connection(server: server.address)
        try connection.send(line: UploadRequest(name: "wrong.bin", size: Int64(bytes.count), sha256: nil).line)
        #expect(try connection.readReply().code == .sendBody)
        try connection.send(bytes: bytes)
        try connection.send(line: "DIGEST \(sha256Hex(Array("other".utf8)))")
        let wrong = try connection.readReply()
        #expect(wrong.code == .checksumMismatch && wrong.text.contains("received \(sha256Hex(bytes))"))

        try connection.send(line: UploadRequest(name: "missing.bin", size: Int64(bytes.count), sha256: nil).line)
        #expect(try connection.readReply().code == .sendBody)
        try connection.send(bytes: bytes)
        try connection.send(line: "PING")
        let missing = try connection.readReply()
        #expect(missing.code == .checksumMismatch && missing.text.contains("expected DIGEST <sha256> after the body"))
        try connection.send(line: "PING")
        #expect(try connection.readReply().code == .ok)

        #expect(try server.uploads().map(\.state) == [.failed, .failed])
        #expect(try FileManager.default.contentsOfDirectory(atPath: server.directory.tempPath).isEmpty)
        #expect(!FileManager.default.fileExists(atPath: server.directory.objectFile(sha256: sha256Hex(bytes))))
        try server.stop()
    }

    @Test func aCutUploadIsResumedByNamingItsChecksumThen() throws {
        let server = try Server(workers: 1)
        let bytes = pseudoRandomBytes(count: 2_000_000, seed: 23)
        let id: String
        do {
            let connection = try Connection(server: server.address)
            try connection.send(line: UploadRequest(name: "cut.bin", size: Int64(bytes.count), sha256: nil).line)
            id = try #require(try connection.readReply().fields["id"])
            try connection.send(bytes: bytes.prefix(700_000))
            connection.close()
        }
        #expect(try eventually(timeout: 10) { try server.uploads().first?.state == .interrupted })
        let status = try Connection(server: server.address)
        try status.send(line: "STATUS \(id)")
        #expect(try status.readReply().text.contains(" sha256=- "))
        let table = try run(Binaries.spoold, ["admin", "list", "--data-dir", server.directory.root]).stdout
        let lines = table.split(separator: "\n").map(String.init)
        let column = try #require(lines.first?.range(of: "SHA256")).lowerBound.utf16Offset(in: lines[0])
        let row = try #require(lines.first { $0.hasPrefix(id) })
        #expect(Array(row)[column...].prefix(2) == ["-", " "], "the SHA256 cell of an unknown checksum: \(table)")
        let shown = try run(Binaries.spoold, ["admin", "show", id, "--data-dir", server.directory.root]).stdout
        #expect(shown.contains("sha256") && shown.split(separator: "\n").contains { $0.contains("sha256") && $0.hasSuffix("-") }, "\(shown)")

        let connection = try Connection(server: server.address)
        try connection.send(line: "RESUME \(id) \(sha256Hex(bytes))")
        let ready = try connection.readReply()
        #expect(ready.code == .sendBody && ready.fields["offset"] == "700000", "\(ready)")
        try connection.send(bytes: bytes.dropFirst(700_000))
        let verdict = try connection.readReply()
        #expect(verdict.code == .stored, "\(verdict)")
        #expect(try server.uploads().first?.sha256 == sha256Hex(bytes))
        try server.stop()
    }
}

@Suite struct SpoolDigestAfterTests {
    /// A large file goes out while it is hashed: the server does not know its
    /// checksum while the body arrives, and records it once DIGEST comes.
    @Test func spoolSendsALargeFilesChecksumAfterItsBody() throws {
        let server = try Server(workers: 1)
        let dir = try TempDirectory()
        let bytes = pseudoRandomBytes(count: 3 << 20, seed: 24)
        let file = writeFile(dir.path + "/large.bin", bytes)
        let spool = try startSpool(["upload", "--quiet", "--limit-rate", "2M", "--server", server.address, file],
                                   state: dir.path + "/state", output: dir.path)
        var seenWhileReceiving: UploadRecord?
        #expect(try eventually {
            seenWhileReceiving = try server.newestUpload(pastBytes: 1 << 20)
            return seenWhileReceiving != nil
        })
        spool.waitUntilExit()
        #expect(spool.terminationStatus == 0)
        #expect(seenWhileReceiving?.sha256 == "", "announced with its checksum: \(String(describing: seenWhileReceiving))")
        let row = try #require(try server.uploads().first)
        #expect(row.state == .complete && row.sha256 == sha256Hex(bytes))
        try server.stop()
    }
}
