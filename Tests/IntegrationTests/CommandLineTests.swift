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

    @Test func aDirectoryIsRefusedUpFrontWithoutRecursive() throws {
        let dir = try TempDirectory()
        try FileManager.default.createDirectory(atPath: dir.path + "/photos", withIntermediateDirectories: true)
        // No server at all: the refusal comes before any connection is tried.
        let result = try run(Binaries.spool, ["upload", "--server", "127.0.0.1:1", dir.path + "/photos"])
        #expect(result.status != 0 && result.status != 1, "a usage error")
        #expect(result.stderr.contains("photos is a directory; use --recursive"), "\(result.stderr)")
        #expect(!result.stderr.contains("cannot connect"))
        let listed = try run(Binaries.spool, ["upload", "--server", "127.0.0.1:1", "--files-from", "-"], stdin: dir.path + "/photos\n")
        #expect(listed.status == 1 && listed.stderr.contains("is a directory") && !listed.stderr.contains("cannot connect"), "\(listed.stderr)")
    }

    @Test func aTreeIsUploadedUnderItsRelativePaths() throws {
        let server = try Server(workers: 1)
        let dir = try TempDirectory()
        let root = dir.path + "/photos"
        try FileManager.default.createDirectory(atPath: root + "/2026/may", withIntermediateDirectories: true)
        try FileManager.default.createDirectory(atPath: root + "/empty", withIntermediateDirectories: true)
        let contents: [String: [UInt8]] = [
            "a.jpg": pseudoRandomBytes(count: 3000, seed: 1),
            "2026/b.jpg": pseudoRandomBytes(count: 2 << 20, seed: 2),  // large: sent alone, checksum after
            "2026/may/c d.jpg": pseudoRandomBytes(count: 10, seed: 3),
            ".hidden": pseudoRandomBytes(count: 5, seed: 4),
        ]
        for (name, bytes) in contents { writeFile(root + "/" + name, bytes) }
        try FileManager.default.createSymbolicLink(atPath: root + "/2026/loop", withDestinationPath: root)
        try FileManager.default.createSymbolicLink(atPath: root + "/linked.jpg", withDestinationPath: root + "/a.jpg")

        let result = try run(Binaries.spool, ["upload", "--recursive", "--server", server.address, root])
        #expect(result.status == 0, "\(result.stderr)")
        let expected = contents.merging(["linked.jpg": contents["a.jpg"] ?? []]) { $1 }
        let rows = try server.uploads()
        #expect(Set(rows.map(\.name)) == Set(expected.keys.map { "photos/" + $0 }))
        for row in rows {
            #expect(row.state == .complete && row.sha256 == sha256Hex(expected[String(row.name.dropFirst(7))] ?? []), "\(row.name)")
        }
        // stdout: one line per file, in the walk's order; stderr: the skipped link and the summary.
        #expect(result.stdout.split(separator: "\n").map { $0.split(separator: " ", maxSplits: 2).last ?? "" } == [
            ".hidden", "2026/b.jpg", "2026/may/c d.jpg", "a.jpg", "linked.jpg",
        ].map { Substring(root + "/" + $0) })
        #expect(result.stderr.contains("skipped \(root)/2026/loop: a symbolic link to a directory, not followed"), "\(result.stderr)")
        #expect(result.stderr.contains("spool: 5 of 5 files stored,"), "\(result.stderr)")

        // `.` is named by the directory it stands for.
        let again = try run(Binaries.spool, ["upload", "-r", "--quiet", "--server", server.address, "."],
                            environment: [:], stdin: nil, workingDirectory: root + "/2026/may")
        #expect(again.status == 0, "\(again.stderr)")
        #expect(try server.uploads().first?.name == "may/c d.jpg")
        try server.stop()
    }

    @Test func theServerCanBeNamedInTheEnvironment() throws {
        let server = try Server(workers: 1)
        let dir = try TempDirectory()
        let file = writeFile(dir.path + "/env.txt", Array("from the environment\n".utf8))
        let upload = try run(Binaries.spool, ["upload", "--quiet", file], environment: ["SPOOL_SERVER": server.address])
        #expect(upload.status == 0, "\(upload.stderr)")
        let id = String(upload.stdout.prefix(26))
        #expect(try run(Binaries.spool, ["status", id], environment: ["SPOOL_SERVER": server.address]).status == 0)
        // --server wins over the environment.
        let wrong = try run(Binaries.spool, ["status", "--server", server.address, id], environment: ["SPOOL_SERVER": "127.0.0.1:1"])
        #expect(wrong.status == 0, "\(wrong.stderr)")
        let nowhere = try run(Binaries.spool, ["status", id], environment: ["SPOOL_SERVER": "127.0.0.1:1"])
        #expect(nowhere.status == 1 && nowhere.stderr.contains("cannot connect to 127.0.0.1:1"), "\(nowhere.stderr)")
        try server.stop()
    }
}
