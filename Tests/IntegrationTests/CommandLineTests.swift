import Foundation
import SpoolTestSupport
import Testing

/// The command lines as a user meets them.
@Suite struct CommandLineTests {
    @Test func uploadExitsNonZeroWhenAnyFileFailsButStoresTheRest() throws {
        let server = try Server(workers: 1)
        let dir = try TempDirectory()
        let good = writeFile(dir.path + "/good.txt", Array("fine\n".utf8))
        let result = try run(Binaries.spool, ["upload", "--server", server.address, dir.path + "/missing.txt", good])
        #expect(result.status == 1)
        #expect(result.stderr.contains("missing.txt"), "\(result.stderr)")
        #expect(result.stdout.hasSuffix(" \(sha256Hex(Array("fine\n".utf8))) \(good)\n"), "\(result.stdout)")
        #expect(try server.uploads().map(\.name) == ["good.txt"])
        try server.stop()
    }

    @Test func uploadToNoServerSaysSo() throws {
        let dir = try TempDirectory()
        let file = writeFile(dir.path + "/a.txt", [1, 2, 3])
        // Port 1 on loopback: nothing listens there.
        let result = try run(Binaries.spool, ["upload", "--retries", "0", "--server", "127.0.0.1:1", file])
        #expect(result.status == 1)
        #expect(result.stderr.contains("cannot connect to 127.0.0.1:1"), "\(result.stderr)")
    }

    @Test func adminListPrintsATable() throws {
        let server = try Server(workers: 1)
        let dir = try TempDirectory()
        let file = writeFile(dir.path + "/table me.txt", Array(repeating: 65, count: 2048))
        let upload = try run(Binaries.spool, ["upload", "--quiet", "--server", server.address, file])
        let id = String(upload.stdout.prefix(26))
        let list = try run(Binaries.spoold, ["admin", "list", "--data-dir", server.directory.root])
        #expect(list.status == 0)
        let lines = list.stdout.split(separator: "\n")
        #expect(lines.count == 3)
        #expect(lines[0].hasPrefix("ID "))
        #expect(lines[1].hasPrefix(id) && lines[1].contains(" complete ") && lines[1].contains("2.0 KiB"))
        #expect(lines[1].hasSuffix("table me.txt"))
        #expect(lines[2] == "1 upload")
        try server.stop()
    }
}
