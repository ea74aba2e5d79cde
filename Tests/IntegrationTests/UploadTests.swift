import Foundation
import SpoolTestSupport
import SpoolClient
import SpoolProtocol
import SpoolStore
import Testing

/// Uploads end to end: the real client, the real server, the real files.
@Suite struct UploadTests {
    @Test func uploadedFileIsByteIdenticalAndItsRowIsRight() throws {
        let server = try Server(workers: 2)
        let dir = try TempDirectory()
        let bytes = pseudoRandomBytes(count: 3 * 1024 * 1024 + 17, seed: 1)
        let path = writeFile(dir.path + "/holiday photos été.bin", bytes)
        let result = try run(Binaries.spool, ["upload", "--server", server.address, path])
        #expect(result.status == 0, "\(result.stderr)")
        let printed = result.stdout.split(separator: " ", maxSplits: 2)
        #expect(printed.count == 3)
        let id = String(printed[0])
        #expect(String(printed[1]) == sha256Hex(bytes))

        let row = try #require(try server.uploads().first { $0.id == id })
        #expect(row.name == "holiday photos été.bin")
        #expect(row.state == .complete)
        #expect(row.size == Int64(bytes.count) && row.received == Int64(bytes.count))
        #expect(row.sha256 == sha256Hex(bytes))
        #expect(row.clientIP == "127.0.0.1" && row.clientPort > 0)
        #expect(server.workerPIDs().contains(Int32(row.workerPID)))
        #expect(row.finishedAt != nil && row.finishedAt! >= row.createdAt)

        let stored = try #require(FileManager.default.contents(atPath: server.directory.objectFile(sha256: row.sha256)))
        #expect(stored == Data(bytes))
        try server.stop()
    }

    /// Names from a list (a file, or standard input with -), besides those on the command line.
    @Test func filesNamedInAListAreUploadedToo() throws {
        let server = try Server(workers: 1)
        let dir = try TempDirectory()
        let files = (0..<3).map { n in writeFile(dir.path + "/l\(n).bin", pseudoRandomBytes(count: 500 + n, seed: UInt64(60 + n))) }
        _ = FileManager.default.createFile(atPath: dir.path + "/list", contents: Data("\(files[0])\r\n\n\(files[1])\n".utf8))
        let fromFile = try run(Binaries.spool, ["upload", "--quiet", "--no-resume", "--server", server.address,
                                                 "--files-from", dir.path + "/list", files[2]])
        #expect(fromFile.status == 0, "\(fromFile.stderr)")
        #expect(fromFile.stdout.split(separator: "\n").map { String($0.split(separator: " ")[2]) } == [files[2], files[0], files[1]])
        let fromStdin = try run(Binaries.spool, ["upload", "--quiet", "--no-resume", "--server", server.address, "--files-from", "-"],
                                stdin: files[1] + "\n")
        #expect(fromStdin.status == 0 && fromStdin.stdout.hasSuffix(" \(files[1])\n"), "\(fromStdin.stderr)")
        #expect(try server.uploads().count == 4)
        let missing = try run(Binaries.spool, ["upload", "--server", server.address, "--files-from", dir.path + "/nothing"])
        #expect(missing.status == 1 && missing.stderr.contains("nothing"), "\(missing.stderr)")
        try server.stop()
    }

    @Test func eightClientsTimesTwentyFiveFilesOverFourWorkers() throws {
        let server = try Server(workers: 4)
        let dir = try TempDirectory()
        var expected: [String: String] = [:]  // name -> sha256
        var batches: [[String]] = []
        for client in 0..<8 {
            var files: [String] = []
            for n in 0..<25 {
                let name = "c\(client)-f\(n).bin"
                let bytes = pseudoRandomBytes(count: 1000 + (client * 25 + n) * 997, seed: UInt64(client * 100 + n + 1))
                files.append(writeFile(dir.path + "/" + name, bytes))
                expected[name] = sha256Hex(bytes)
            }
            batches.append(files)
        }
        let processes = try batches.map { files -> Process in
            let process = Process()
            process.executableURL = URL(fileURLWithPath: Binaries.spool)
            process.arguments = ["upload", "--quiet", "--server", server.address] + files
            process.environment = ["SPOOL_STATE_DIR": dir.path + "/state"]
            process.standardOutput = FileHandle.nullDevice
            process.standardError = FileHandle.nullDevice
            try process.run()
            return process
        }
        for process in processes { process.waitUntilExit() }
        #expect(processes.allSatisfy { $0.terminationStatus == 0 })

        let rows = try server.uploads()
        #expect(rows.count == 200)
        #expect(rows.allSatisfy { $0.state == .complete })
        for row in rows {
            #expect(expected[row.name] == row.sha256, "row \(row.name)")
            let object = try #require(FileManager.default.contents(atPath: server.directory.objectFile(sha256: row.sha256)))
            #expect(sha256Hex(object) == row.sha256)
        }
        #expect(Set(rows.map(\.workerPID)).count > 1, "every upload went to one worker")
        // Every file was under 1 MiB and went with its UPLOAD line: nothing to resume
        // from on the server, so the client wrote no journal (not even its directory).
        #expect(!FileManager.default.fileExists(atPath: dir.path + "/state"))
        try server.stop()
    }

    /// Both sizes: a body under 1 MiB is hashed inline, a larger one on the thread pool.
    @Test(arguments: [100_000, 3 << 20])
    func wrongDeclaredChecksumIsRejectedAndNothingIsPublished(size: Int) throws {
        let server = try Server(workers: 1)
        let bytes = pseudoRandomBytes(count: size, seed: 2)
        let lie = sha256Hex(Array("something else".utf8))
        let connection = try Connection(server: server.address)
        try connection.send(line: UploadRequest(name: "liar.bin", size: Int64(bytes.count), sha256: lie).line)
        let ready = try connection.readReply()
        #expect(ready.code == .sendBody)
        try connection.send(bytes: bytes)
        let verdict = try connection.readReply()
        #expect(verdict.code == .checksumMismatch)
        #expect(verdict.text.contains("checksum mismatch"))
        #expect(verdict.text.contains("received \(sha256Hex(bytes))"))
        // The connection stays usable after a rejected upload.
        try connection.send(line: "PING")
        #expect(try connection.readReply().code == .ok)

        let rows = try server.uploads()
        #expect(rows.count == 1)
        #expect(rows.first?.state == .failed)
        #expect(!FileManager.default.fileExists(atPath: server.directory.objectFile(sha256: lie)))
        #expect(!FileManager.default.fileExists(atPath: server.directory.objectFile(sha256: sha256Hex(bytes))))
        #expect(try FileManager.default.contentsOfDirectory(atPath: server.directory.tempPath).isEmpty)
        try server.stop()
    }

    @Test func clientThatDisconnectsMidBodyLeavesNothingComplete() throws {
        let server = try Server(workers: 1)
        let bytes = pseudoRandomBytes(count: 1_000_000, seed: 3)
        do {
            let connection = try Connection(server: server.address)
            try connection.send(line: UploadRequest(name: "cut.bin", size: Int64(bytes.count), sha256: sha256Hex(bytes)).line)
            #expect(try connection.readReply().code == .sendBody)
            try connection.send(bytes: bytes.prefix(300_000))
            connection.close()
        }
        let settled = try eventually(timeout: 10) { try server.uploads().first?.state == .interrupted }
        #expect(settled, "log:\n\(server.log())")
        let row = try #require(try server.uploads().first)
        #expect(row.received == 300_000)
        #expect(!FileManager.default.fileExists(atPath: server.directory.objectFile(sha256: row.sha256)))
        try server.stop()
    }

    @Test func severalUploadsFollowOneAnotherOnOneConnection() throws {
        let server = try Server(workers: 1)
        let connection = try Connection(server: server.address)
        let dir = try TempDirectory()
        var ids: [String] = []
        for n in 0..<5 {
            let path = writeFile(dir.path + "/f\(n)", pseudoRandomBytes(count: n * 50_000, seed: UInt64(n + 10)))
            ids.append(try Uploader(connection: connection).upload(path: path, name: "f\(n)").id)
        }
        #expect(Set(ids).count == 5)
        #expect(try server.uploads().filter { $0.state == .complete }.count == 5)
        try server.stop()
    }
}

@Suite struct MemoryTests {
    /// A worker streams: receiving 256 MiB does not grow it anywhere near that.
    @Test func workerMemoryDoesNotGrowWithTheFile() throws {
        let server = try Server(workers: 1)
        let worker = try #require(server.workerPIDs().first)
        let dir = try TempDirectory()
        let path = try sparseFile(dir.path + "/sparse-256MiB", size: 256 << 20)  // zeros, made at once
        let result = try run(Binaries.spool, ["upload", "--quiet", "--server", server.address, path])
        #expect(result.status == 0, "\(result.stderr)")
        let peak = try #require(Self.peakRSSKiB(worker), "the worker is gone:\n\(server.log())")
        #expect(peak < 64 * 1024, "worker peak RSS \(peak) KiB for a 256 MiB upload")
        try server.stop()
    }

    static func peakRSSKiB(_ pid: Int32) -> Int? {
        guard let status = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8) else { return nil }
        let line = status.split(separator: "\n").first { $0.hasPrefix("VmHWM:") }
        return line.flatMap { Int($0.split(separator: " ").dropFirst().first ?? "") }
    }
}
