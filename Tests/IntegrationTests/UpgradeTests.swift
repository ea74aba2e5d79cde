import Foundation
import SpoolStore
import SpoolTestSupport
import Testing

/// USR2: the binary replaced on disk, a new master started from it on the same
/// sockets, the old one drained (docs/SIGNALS.md), while clients keep uploading.
@Suite struct UpgradeTests {
    /// Clients that upload without pause until stopped, over the line protocol
    /// (`spool upload --retries 0`) and HTTP (`curl -T`): with no retry, any
    /// refused or cut connection is a failed run.
    final class Load: @unchecked Sendable {
        private let lock = NSLock()
        private var failures: [String] = []
        private var stored = 0
        private var stopping = false
        private var running = 0

        init(server: Server, files: TempDirectory, lineClients: Int, httpClients: Int) {
            for client in 0..<(lineClients + httpClients) {
                let path = writeFile(files.path + "/client-\(client).bin", pseudoRandomBytes(count: 3 << 20 | client, seed: UInt64(client)))
                let http = client >= lineClients
                running += 1
                Thread.detachNewThread { [self] in
                    var round = 0
                    while !lock.withLock({ stopping }) {
                        round += 1
                        let result = http
                            ? try? run("/usr/bin/curl", ["-fsS", "-o", "/dev/null", "-T", path,
                                                         "\(server.httpBase)/files/http-\(client)-\(round).bin"])
                            : try? run(Binaries.spool, ["upload", "--quiet", "--retries", "0", "--no-resume",
                                                        "--server", server.address, path])
                        lock.withLock {
                            if let result, result.status == 0 {
                                stored += 1
                            } else {
                                failures.append("client \(client) round \(round): \(result?.stderr ?? "did not finish")")
                            }
                        }
                    }
                    lock.withLock { running -= 1 }
                }
            }
        }

        var count: Int { lock.withLock { stored } }

        /// Stops the clients after their current upload; returns what failed.
        func stop() -> [String] {
            lock.withLock { stopping = true }
            _ = eventually(timeout: 60) { lock.withLock { running == 0 } }
            return lock.withLock { failures }
        }
    }

    /// A new file renamed over the old one, as a package manager installs a binary:
    /// the running master's file stays as it was, the path names the new one.
    static func install(_ source: String, at path: String) throws {
        let temporary = path + ".new"
        try? FileManager.default.removeItem(atPath: temporary)
        // Copied by another process: a copy written here would leave its descriptor, open
        // for writing, to every process the other tests spawn meanwhile, and exec of
        // the new binary would then fail with ETXTBSY (seen in CI).
        let copied = try run("/usr/bin/install", ["-m", "755", source, temporary])
        guard copied.status == 0 else { throw HarnessError("install \(source): \(copied.stderr)") }
        guard rename(temporary, path) == 0 else { throw HarnessError("rename \(temporary): errno \(errno)") }
    }

    static func pidFile(_ server: Server) -> Int32? {
        (try? String(contentsOfFile: server.directory.pidFilePath, encoding: .utf8))
            .flatMap { Int32($0.trimmingCharacters(in: .whitespacesAndNewlines)) }
    }

    /// Whichever master holds the pid file after an upgrade is not the harness's
    /// child, so its teardown cannot reach it: a test that fails midway stops it here.
    static func killMaster(_ server: Server) {
        guard let master = pidFile(server) else { return }
        for worker in Processes.children(of: master) { kill(worker, SIGKILL) }
        kill(master, SIGKILL)
    }

    /// Sends USR2 to `master` and waits until another master has the pid file and
    /// `master` and its workers are gone; returns the new master's pid.
    static func upgrade(_ master: Int32, _ server: Server) throws -> Int32 {
        let oldWorkers = Processes.children(of: master)
        kill(master, SIGUSR2)
        var new: Int32 = 0
        let replaced = eventually(timeout: 60) {
            guard let pid = pidFile(server), pid != master else { return false }
            new = pid
            return !Processes.isAlive(master) && oldWorkers.allSatisfy { !Processes.isAlive($0) }
        }
        guard replaced else { throw HarnessError("master \(master) was not replaced:\n\(server.log())") }
        #expect(!FileManager.default.fileExists(atPath: server.directory.pidFilePath + ".oldbin"))
        #expect(Processes.children(of: new).count == server.workers, "the new master's workers")
        return new
    }

    @Test func usr2ReplacesTheBinaryWithoutLosingAnUploadOrRefusingAConnection() throws {
        let bin = try TempDirectory()
        let spoold = bin.path + "/spoold"
        try Self.install(Binaries.spoold, at: spoold)
        let server = try Server(workers: 2, executable: spoold)
        defer { Self.killMaster(server) }
        let files = try TempDirectory()
        let load = Load(server: server, files: files, lineClients: 8, httpClients: 8)
        #expect(eventually(timeout: 60) { load.count >= 16 })

        // Twice in a row, each time with the binary replaced on disk first.
        try Self.install(Binaries.spoold, at: spoold)
        let first = try Self.upgrade(server.pid, server)
        // The harness sees its child exit: the new master kept none of its descriptors.
        #expect(eventually { !server.process.isRunning }, "the first master exited")
        var before = load.count
        #expect(eventually(timeout: 60) { load.count >= before + 16 }, "the new master serves")
        try Self.install(Binaries.spoold, at: spoold)
        let second = try Self.upgrade(first, server)
        before = load.count
        #expect(eventually(timeout: 60) { load.count >= before + 16 })

        // A new binary that cannot start: the running master takes its pid file back and keeps serving.
        try "#!/bin/sh\necho 'this build is broken' >&2\nexit 1\n".write(toFile: bin.path + "/broken", atomically: true, encoding: .utf8)
        try Self.install(bin.path + "/broken", at: spoold)
        kill(second, SIGUSR2)
        #expect(eventually(timeout: 30) { server.count("upgrade failed") == 1 }, "\(server.log())")
        #expect(eventually { Self.pidFile(server) == second })
        #expect(!FileManager.default.fileExists(atPath: server.directory.pidFilePath + ".oldbin"))
        #expect(Processes.isAlive(second))
        before = load.count
        #expect(eventually(timeout: 60) { load.count >= before + 16 }, "still serving")

        let failures = load.stop()
        #expect(failures.isEmpty, "\(failures.prefix(5))\n\(server.log())")
        let uploads = try server.uploads()
        #expect(uploads.count == load.count)
        #expect(uploads.allSatisfy { $0.state == .complete }, "\(uploads.filter { $0.state != .complete })")
        #expect(server.count("upgrade: every worker accepts") == 2)

        kill(second, SIGTERM)
        let workers = Processes.children(of: second)
        #expect(eventually(timeout: 20) { !Processes.isAlive(second) && workers.allSatisfy { !Processes.isAlive($0) } })
    }

    /// Under systemd the new master says it is the main process now, with READY=1;
    /// the old one, handing over, never says STOPPING=1.
    @Test func underSystemdTheNewMasterBecomesTheMainProcess() throws {
        let directory = try TempDirectory()
        let notify = try SystemdTests.NotifySocket(directory: directory.path)
        let server = try Server(workers: 1, environment: ["NOTIFY_SOCKET": notify.name])
        defer { Self.killMaster(server) }
        #expect(notify.wait { SystemdTests.fields($0).contains("READY=1") } != nil)
        // An upload half sent keeps the old master's worker draining after the handover.
        let upload = try PartialUpload(server: server, size: 1 << 20)
        try upload.send(1 << 19, directory: server.directory)
        kill(server.pid, SIGUSR2)
        var new: Int32 = 0
        #expect(eventually(timeout: 30) {
            new = Self.pidFile(server) ?? 0
            return new != 0 && new != server.pid
        })
        let ready = notify.wait { SystemdTests.fields($0).contains("MAINPID=\(new)") }
        #expect(ready.map { SystemdTests.fields($0).contains("MAINPID=\(new)") } == true, "\(notify.messages)")
        #expect(!notify.messages.contains { SystemdTests.fields($0).contains("STOPPING=1") }, "\(notify.messages)")
        // Handed over, the old master says nothing more: its STATUS= while it drained
        // ("0 of 1 workers ready") replaced the new master's in systemctl status
        // (seen under a real systemd 252, which takes any process's word with NotifyAccess=all).
        Thread.sleep(forTimeInterval: 1)  // turns of the old master's loop while its worker drains
        try upload.sendRest()
        #expect(try upload.connection.readReply().code == .stored)
        #expect(eventually(timeout: 30) { !server.process.isRunning })
        _ = notify.wait(timeout: 1) { _ in false }  // read what is queued
        let sinceReady = notify.messages.drop { !SystemdTests.fields($0).contains("MAINPID=\(new)") }.dropFirst()
        #expect(!sinceReady.contains { message in SystemdTests.fields(message).contains { $0.hasPrefix("STATUS=0 of") } },
                "\(notify.messages)")
        kill(new, SIGQUIT)
        #expect(notify.wait { SystemdTests.fields($0).contains("STOPPING=1") } != nil)
    }
}
