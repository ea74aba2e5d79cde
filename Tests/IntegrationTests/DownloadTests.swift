import Foundation
import SpoolProtocol
import SpoolTestSupport
import Testing

/// `spool download`: through the HTTP door, verified, resumable.
@Suite struct DownloadTests {
    static func download(_ server: Server, _ arguments: [String], in directory: String, token: String? = nil) throws -> Finished {
        try run(Binaries.spool, ["download", "--quiet", "--http", "127.0.0.1:\(server.httpPort)"] + arguments,
                environment: token.map { ["SPOOL_TOKEN": $0] } ?? [:], workingDirectory: directory)
    }

    @Test func anUploadComesBackByIdOrByNameVerified() throws {
        let server = try Server(workers: 1)
        let files = try TempDirectory()
        let bytes = pseudoRandomBytes(count: 5 << 20, seed: 90)
        let source = writeFile(files.path + "/r é.bin", bytes)
        let upload = try run(Binaries.spool, ["upload", "--quiet", "--server", server.address, source])
        let id = String(upload.stdout.prefix(26))
        let sha = sha256Hex(bytes)

        let out = try TempDirectory()
        let byId = try Self.download(server, [id.lowercased()], in: out.path)
        // Named as the server names it, and printed as sha256sum -c reads it.
        #expect(byId.status == 0 && byId.stdout == "\(sha)  r é.bin\n", "\(byId.stdout) \(byId.stderr)")
        #expect(try Data(contentsOf: URL(fileURLWithPath: out.path + "/r é.bin")) == Data(bytes))
        #expect(!FileManager.default.fileExists(atPath: out.path + "/r é.bin.part"))

        let byName = try Self.download(server, ["-o", "copy.bin", "r é.bin"], in: out.path)
        #expect(byName.status == 0 && byName.stdout == "\(sha)  copy.bin\n", "\(byName.stderr)")
        #expect(try run("/usr/bin/sha256sum", ["-c", "-"], stdin: byName.stdout, workingDirectory: out.path).status == 0)

        let missing = try Self.download(server, ["01ZZZZZZZZZZZZZZZZZZZZZZZZ"], in: out.path)
        #expect(missing.status == 1 && missing.stderr.contains("404"), "\(missing.stderr)")
        try server.stop()
    }

    @Test func aCutDownloadResumesAndAWrongPartIsFetchedAgain() throws {
        let server = try Server(workers: 1)
        let files = try TempDirectory()
        let bytes = pseudoRandomBytes(count: 6 << 20, seed: 91)
        let upload = try run(Binaries.spool, ["upload", "--quiet", "--server", server.address, writeFile(files.path + "/big.bin", bytes)])
        let id = String(upload.stdout.prefix(26))
        let out = try TempDirectory()

        // What a cut run left: the first 2 MiB. Only the rest is fetched (a Range request).
        writeFile(out.path + "/big.bin.part", Array(bytes[0..<(2 << 20)]))
        let resumed = try Self.download(server, ["-o", "big.bin", id], in: out.path)
        #expect(resumed.status == 0 && resumed.stderr.isEmpty, "\(resumed.stderr)")
        #expect(try Data(contentsOf: URL(fileURLWithPath: out.path + "/big.bin")) == Data(bytes))

        // A part file that holds other bytes fails the check; it is dropped and fetched whole.
        writeFile(out.path + "/other.bin.part", pseudoRandomBytes(count: 1 << 20, seed: 92))
        let again = try Self.download(server, ["-o", "other.bin", id], in: out.path)
        #expect(again.status == 0 && again.stderr.contains("downloading it again from the start"), "\(again.stderr)")
        #expect(try Data(contentsOf: URL(fileURLWithPath: out.path + "/other.bin")) == Data(bytes))
        try server.stop()
    }

    /// Damage found after a power cut on a disk that lied about syncs
    /// (Tests/PowerLoss): an object shorter than its record. The download is
    /// refused with `500` before the head; a `FileRegion` past the end of the file
    /// used to leave the client waiting forever.
    @Test func anObjectShorterThanItsRecordGets500NotAHang() throws {
        let server = try Server(workers: 1)
        let files = try TempDirectory()
        let bytes = pseudoRandomBytes(count: 300_000, seed: 93)
        let upload = try run(Binaries.spool, ["upload", "--quiet", "--server", server.address, writeFile(files.path + "/cut.bin", bytes)])
        let id = String(upload.stdout.prefix(26))
        #expect(truncate(server.directory.objectFile(sha256: sha256Hex(bytes)), 1000) == 0)
        let fetched = try run("/usr/bin/curl", ["-s", "-o", "/dev/null", "-w", "%{http_code}", "--max-time", "20",
                                                "\(server.httpBase)/uploads/\(id)/content"])
        #expect(fetched.stdout == "500", "curl exit \(fetched.status), \(fetched.stdout)")
        #expect(server.count("bytes, its record says 300000") == 1, "\(server.log())")
        try server.stop()
    }

    @Test func aTokenSeesOnlyItsOwnDownloads() throws {
        let server = try Server(workers: 1)
        let alice = try server.createToken(["--name", "alice"])
        let bob = try server.createToken(["--name", "bob"])
        #expect(server.waitForAuthRequired())
        let files = try TempDirectory()
        let upload = try run(Binaries.spool, ["upload", "--quiet", "--server", server.address, "--token", alice,
                                              writeFile(files.path + "/mine.txt", Array("mine\n".utf8))])
        let id = String(upload.stdout.prefix(26))
        let out = try TempDirectory()
        let anonymous = try Self.download(server, [id], in: out.path)
        #expect(anonymous.status == 1 && anonymous.stderr.contains("401"), "\(anonymous.stderr)")
        #expect(try Self.download(server, [id], in: out.path, token: bob).stderr.contains("404"))
        #expect(try Self.download(server, [id], in: out.path, token: alice).status == 0)
        #expect(try String(contentsOfFile: out.path + "/mine.txt", encoding: .utf8) == "mine\n")
        try server.stop()
    }
}
