import Foundation
import SpoolTestSupport
import SpoolClient
import SpoolProtocol
import Testing

/// Each signal does what docs/SIGNALS.md says.
@Suite struct SignalTests {
    @Test func quitLetsAnUploadInFlightComplete() throws {
        let server = try Server(workers: 1)
        let upload = try PartialUpload(server: server, size: 2_000_000)
        try upload.send(700_000, directory: server.directory)
        server.signal(SIGQUIT)
        // New connections are refused once the workers closed the socket.
        #expect(eventually(timeout: 10) { (try? Connection(server: server.address)) == nil })
        #expect(server.process.isRunning, "the master waits for the upload")
        try upload.sendRest()
        let verdict = try upload.connection.readReply()
        #expect(verdict.code == .stored, "\(verdict)")
        #expect(try upload.connection.readReply().code == .unavailable)
        #expect(try server.waitForExit(timeout: 10) == 0)
        #expect(try server.upload(id: upload.id)?.state == .complete)
    }

    @Test func quitCutsUploadsStillRunningAtTheDeadlineAndLeavesThemResumable() throws {
        let server = try Server(workers: 1, arguments: ["--graceful-timeout", "1"])
        let upload = try PartialUpload(server: server, size: 1_000_000)
        try upload.send(250_000, directory: server.directory)
        server.signal(SIGQUIT)
        #expect(try server.waitForExit(timeout: 15) == 0)
        let row = try #require(try server.upload(id: upload.id))
        #expect(row.state == .interrupted && row.received == 250_000)
        #expect(FileManager.default.fileExists(atPath: server.directory.tempFile(id: upload.id)))
        #expect(server.log().contains("graceful stop timed out"))
    }

    @Test func termLeavesAnUploadInFlightInterrupted() throws {
        let server = try Server(workers: 2)
        let upload = try PartialUpload(server: server, size: 1_000_000)
        try upload.send(123_456, directory: server.directory)
        #expect(try server.stop() == 0)
        let row = try #require(try server.upload(id: upload.id))
        #expect(row.state == .interrupted && row.received == 123_456, "\(row)")
        #expect(row.error?.contains("killed by TERM") == true)
    }

    @Test func hupReplacesEveryWorkerWhileAClientKeepsUploading() throws {
        let server = try Server(workers: 2)
        let before = Set(server.workerPIDs())
        let dir = try TempDirectory()
        let file = writeFile(dir.path + "/steady.bin", pseudoRandomBytes(count: 64_000, seed: 9))
        let client = UploadLoop(server: server.address, file: file)
        client.start()
        #expect(eventually(timeout: 10) { client.counts.ok >= 5 })
        server.signal(SIGHUP)
        let replaced = eventually(timeout: 30) {
            let now = Set(server.workerPIDs())
            return now.count == 2 && now.isDisjoint(with: before)
        }
        let okAtReplacement = client.counts.ok
        #expect(eventually(timeout: 10) { client.counts.ok >= okAtReplacement + 5 })
        client.stop()
        #expect(replaced, "workers: \(before) -> \(server.workerPIDs())\n\(server.log())")
        #expect(client.counts.failed == 0, "\(client.counts.errors)")
        #expect(server.count("worker replaced") == 2)
        try server.stop()
        #expect(try server.uploads().allSatisfy { $0.state == .complete })
    }

    @Test func ttinAndTtouChangeTheWorkerCount() throws {
        let server = try Server(workers: 2)
        server.signal(SIGTTIN)
        #expect(eventually { server.workerPIDs().count == 3 })
        // One at a time: two signals of a kind sent back to back may arrive as one.
        server.signal(SIGTTOU)
        #expect(eventually { server.workerPIDs().count == 2 })
        server.signal(SIGTTOU)
        #expect(eventually { server.workerPIDs().count == 1 })
        server.signal(SIGTTOU)
        #expect(eventually { server.log().contains("already at one worker") })
        #expect(server.workerPIDs().count == 1)
        try server.stop()
    }

    @Test func winchStopsTheWorkersAndHupBringsThemBack() throws {
        let server = try Server(workers: 2)
        server.signal(SIGWINCH)
        #expect(eventually { server.workerPIDs().isEmpty })
        #expect(server.process.isRunning)
        server.signal(SIGHUP)
        #expect(eventually { server.workerPIDs().count == 2 && server.count("worker ready") >= 4 })
        try server.stop()
    }

    @Test func usr1ReopensTheLogFile() throws {
        let dir = try TempDirectory()
        let logFile = dir.path + "/spoold.log"
        let server = try Server(workers: 1, arguments: ["--log-file", logFile])
        let rotated = dir.path + "/spoold.log.1"
        #expect(eventually { (try? String(contentsOfFile: logFile, encoding: .utf8))?.contains("worker ready") == true })
        try FileManager.default.moveItem(atPath: logFile, toPath: rotated)
        server.signal(SIGUSR1)
        #expect(eventually { (try? String(contentsOfFile: logFile, encoding: .utf8))?.contains("log file reopened") == true })
        // The worker writes to the new file too.
        let file = writeFile(dir.path + "/x", [1, 2, 3])
        #expect(try run(Binaries.spool, ["upload", "--quiet", "--server", server.address, file]).status == 0)
        #expect(eventually { (try? String(contentsOfFile: logFile, encoding: .utf8))?.contains("upload stored") == true })
        try server.stop()
    }
}

/// A client uploading over fresh connections in a loop until stopped.
final class UploadLoop: @unchecked Sendable {
    struct Counts {
        var ok = 0
        var failed = 0
        var errors: [String] = []
    }

    private let server: String
    private let file: String
    private let lock = NSLock()
    private var state = Counts()
    private var stopping = false
    private let done = DispatchSemaphore(value: 0)

    init(server: String, file: String) {
        self.server = server
        self.file = file
    }

    var counts: Counts { lock.withLock { state } }

    func start() {
        Thread.detachNewThread { [self] in
            while !lock.withLock({ stopping }) {
                do {
                    let connection = try Connection(server: server)
                    _ = try Uploader(connection: connection).upload(path: file, name: "steady.bin")
                    try? connection.send(line: "QUIT")  // a draining worker may have closed already
                    lock.withLock { state.ok += 1 }
                } catch {
                    lock.withLock {
                        state.failed += 1
                        state.errors.append("\(error)")
                    }
                }
            }
            done.signal()
        }
    }

    func stop() {
        lock.withLock { stopping = true }
        done.wait()
    }
}
