import Foundation
import SpoolProtocol
import SpoolTestSupport
import Testing

/// tuspy 1.1.0, tus's Python client, as a real client of the tus door
/// (Tests/Clients/tuspy_upload.py; scripts/setup installs it in .build/tus-venv).
@Suite struct TusClientTests {
    static var root: String { Binaries.repository }

    static var python: String { root + "/.build/tus-venv/bin/python" }
    static var script: String { root + "/Tests/Clients/tuspy_upload.py" }

    static func arguments(_ server: Server, _ file: String, _ extra: [String]) throws -> [String] {
        guard FileManager.default.isExecutableFile(atPath: python) else {
            throw HarnessError("tuspy is not installed at \(python): run scripts/setup")
        }
        return [script, server.httpBase + "/files/", file] + extra
    }

    static func tuspy(_ server: Server, _ file: String, _ extra: [String] = []) throws -> Finished {
        try run(python, try arguments(server, file, extra))
    }

    @Test func uploadsWithItsNameAndChecksumsThenTerminates() throws {
        let server = try Server(workers: 2)
        let files = try TempDirectory()
        let bytes = pseudoRandomBytes(count: 3 << 20 | 12_345, seed: 93)
        let file = writeFile(files.path + "/report.pdf", bytes)
        let sha = sha256Hex(bytes)
        // Three PATCHes of 1 MiB and a short one, each with its SHA-1; the whole file's SHA-256 as metadata.
        let done = try Self.tuspy(server, file, ["--chunk", "\(1 << 20)", "--checksum", "--sha256", sha])
        #expect(done.status == 0, "\(done.stdout) \(done.stderr)")
        let parts = done.stdout.split(separator: " ")
        #expect(parts.count == 2 && parts[1].hasPrefix("\(bytes.count)"), "\(done.stdout)")
        let id = String(parts.first?.split(separator: "/").last ?? "")
        let row = try #require(try server.upload(id: id))
        #expect(row.state == .complete && row.name == "report.pdf" && row.sha256 == sha && row.size == Int64(bytes.count))
        #expect(server.count("upload resumed") == 4, "each PATCH reopens the upload")

        // Termination (DELETE): the upload is gone.
        let other = writeFile(files.path + "/draft.txt", Array("a draft\n".utf8))
        let terminated = try Self.tuspy(server, other, ["--terminate"])
        #expect(terminated.stdout.contains("terminated 204"), "\(terminated.stdout) \(terminated.stderr)")
        #expect(try server.uploads().allSatisfy { $0.name != "draft.txt" })
        try server.stop()
    }

    /// The worker writing the upload is killed mid-PATCH; the same client, run
    /// again with the URL it stored, asks the server for the offset and finishes.
    @Test func resumesAfterItsWorkerIsKilled() throws {
        let server = try Server(workers: 1)
        let files = try TempDirectory()
        let bytes = pseudoRandomBytes(count: 256 << 20, seed: 94)
        let file = writeFile(files.path + "/video.mp4", bytes)
        let sha = sha256Hex(bytes)
        let store = files.path + "/urls.json"
        // tuspy's default: the whole file in one PATCH, so the kill lands inside it
        // (with several, it could land between two, and the next would simply go on).
        let extra = ["--chunk", "\(1 << 30)", "--store", store, "--sha256", sha]

        let first = Process()
        first.executableURL = URL(fileURLWithPath: Self.python)
        first.arguments = try Self.arguments(server, file, extra)
        first.standardOutput = FileHandle.nullDevice
        first.standardError = FileHandle.nullDevice
        try first.run()
        var id = ""
        #expect(eventually(timeout: 30) {
            guard let row = try? server.uploads().first else { return false }
            id = row.id
            return server.directory.tempBytes(id: id) > 20 << 20
        })
        let worker = try #require(server.workerPIDs().first)
        kill(worker, SIGKILL)
        first.waitUntilExit()
        #expect(first.terminationStatus != 0, "the upload should have been cut, not finished")
        #expect(eventually { server.count("worker ready") >= 2 })
        #expect(eventually { (try? server.upload(id: id))?.state == .interrupted })

        let again = try Self.tuspy(server, file, extra)
        #expect(again.status == 0, "\(again.stdout) \(again.stderr)")
        #expect(again.stdout.contains(id), "the same upload, resumed: \(again.stdout)")
        let row = try #require(try server.upload(id: id))
        #expect(row.state == .complete && row.sha256 == sha && row.size == Int64(bytes.count))
        try server.stop()
    }
}
