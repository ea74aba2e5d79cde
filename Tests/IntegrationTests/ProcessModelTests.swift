import Foundation
import SpoolTestSupport
import Testing

/// The master and its workers as real processes.
@Suite struct ProcessModelTests {
    @Test func masterForksWorkersAsItsChildren() throws {
        let server = try Server(workers: 3)
        let workers = server.workerPIDs()
        #expect(workers.count == 3)
        for pid in workers {
            #expect(Processes.stat(pid)?.ppid == server.pid)
            #expect(Processes.commandLine(pid).first?.hasSuffix("spoold") == true)
        }
        // The pid file names the master, written after the socket was bound.
        let pidFile = try String(contentsOfFile: server.directory.pidFilePath, encoding: .utf8)
        #expect(pidFile == "\(server.pid)\n")
        #expect(try server.stop() == 0)
    }

    @Test func killedWorkerIsReplaced() throws {
        let server = try Server(workers: 2)
        let before = server.workerPIDs()
        let victim = try #require(before.first)
        kill(victim, SIGKILL)
        let replaced = eventually(timeout: 10) {
            let now = server.workerPIDs()
            return now.count == 2 && !now.contains(victim)
        }
        #expect(replaced, "workers now: \(server.workerPIDs()), log:\n\(server.log())")
        #expect(server.log().contains("pid=\(victim) slot=") && server.log().contains("killed by KILL"))
        // The replacement serves uploads.
        let dir = try TempDirectory()
        let file = writeFile(dir.path + "/after-kill.bin", pseudoRandomBytes(count: 10_000, seed: 5))
        let result = try run(Binaries.spool, ["upload", "--quiet", "--server", server.address, file])
        #expect(result.status == 0, "\(result.stderr)")
        try server.stop()
    }

    @Test func termStopsMasterAndWorkersWithNothingLeftBehind() throws {
        let server = try Server(workers: 3)
        let workers = server.workerPIDs()
        #expect(workers.count == 3)
        #expect(try server.stop() == 0)
        for pid in workers { #expect(!Processes.isAlive(pid), "worker \(pid) outlived the master") }
        #expect(!FileManager.default.fileExists(atPath: server.directory.pidFilePath))
    }

    @Test func secondMasterOnTheSameDataDirectoryIsRefused() throws {
        let server = try Server(workers: 1)
        let second = try run(Binaries.spoold, ["serve", "--listen", "127.0.0.1:0", "--workers", "1",
                                               "--data-dir", server.directory.root], timeout: 20)
        #expect(second.status != 0)
        #expect(second.stderr.contains("another spoold (pid \(server.pid)) is running"), "\(second.stderr)")
        #expect(server.workerPIDs().count == 1)
        try server.stop()
        // Once the first is gone, a new master starts over the same directory.
        let third = try Server(workers: 1, data: server.data)
        try third.stop()
    }

    @Test(arguments: [
        (["serve", "--workers", "0"], "--workers: expected a number from 1 to 512, got \"0\""),
        (["serve", "--listen", "localhost"], "--listen: expected HOST:PORT with a numeric host"),
        (["serve", "--listen", "127.0.0.1:70000"], "--listen: expected HOST:PORT"),
        (["serve", "--log-level", "loud"], "--log-level: expected trace, debug, info"),
        (["serve", "--min-free", "lots"], "--min-free: expected a size like 500M, 2G or 1T, got \"lots\""),
        (["serve", "--partial-ttl", "1y"], "--partial-ttl: expected a duration like 90s, 30m, 24h or 7d, got \"1y\""),
        (["serve", "--idle-timeout", "0s"], "--idle-timeout: expected a duration like 90s, 30m, 24h or 7d, at least 1s, got \"0s\""),
        (["admin", "token", "create", "--name", "x", "--quota-bytes", "10Q"], "The value '10Q' is invalid for '--quota-bytes <size>'"),
        (["admin", "list", "--limit", "0"], "--limit must be at least 1"),
    ])
    func badArgumentsGetAClearMessage(arguments: [String], message: String) throws {
        let result = try run(Binaries.spoold, arguments, timeout: 20)
        #expect(result.status == 64, "usage errors exit 64 (EX_USAGE)")
        #expect(result.stderr.contains(message), "\(result.stderr)")
    }

    @Test func adminListWithoutADatabaseSaysWhatToDo() throws {
        let dir = try TempDirectory()
        let result = try run(Binaries.spoold, ["admin", "list", "--data-dir", dir.path + "/nothing"], timeout: 20)
        #expect(result.status != 0)
        #expect(result.stderr.contains("no database at"), "\(result.stderr)")
    }
}
