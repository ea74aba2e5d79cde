import CSQLite
import Foundation
import SpoolTestSupport
import SpoolClient
import SpoolProtocol
import Testing

/// Crashes, hangs and dead masters: what the master does about them.
@Suite struct SupervisionTests {
    @Test func workersThatCannotBootMakeTheMasterBackOffThenGiveUp() throws {
        let server = try Server(workers: 2)
        // Another spoold, newer than this one, migrated the database: workers must refuse it.
        var db: OpaquePointer?
        #expect(sqlite3_open(server.directory.databasePath, &db) == SQLITE_OK)
        #expect(sqlite3_exec(db, "INSERT INTO spool_migrations VALUES (99, 'future', 'x', 'now')", nil, nil, nil) == SQLITE_OK)
        sqlite3_close(db)
        for pid in server.workerPIDs() { kill(pid, SIGKILL) }

        let status = try server.waitForExit(timeout: 60)
        #expect(status == 3, "\(server.log())")
        #expect(server.count("backing off") >= 2)
        #expect(server.log().contains("workers keep dying at start; giving up"))
        #expect(server.log().contains("schema version 99"))
    }

    @Test func hungWorkerIsAbortedAndReplaced() throws {
        let server = try Server(workers: 1, arguments: ["--timeout", "2"])
        let victim = try #require(server.workerPIDs().first)
        kill(victim, SIGSTOP)  // it can no longer beat
        let replaced = eventually(timeout: 20) {
            let now = server.workerPIDs()
            return now.count == 1 && !now.contains(victim)
        }
        #expect(replaced, "\(server.log())")
        #expect(server.log().contains("worker timed out; aborting it"))
        #expect(!Processes.isAlive(victim))
        try server.stop()
    }

    @Test func slowUploadLongerThanTheTimeoutIsNotKilled() throws {
        let server = try Server(workers: 1, arguments: ["--timeout", "2"])
        let upload = try PartialUpload(server: server, size: 100_000)
        for _ in 0..<9 {
            try upload.send(10_000, directory: server.directory)
            usleep(500_000)
        }
        try upload.sendRest()  // about 4.5 s after the start: longer than the timeout
        #expect(try upload.connection.readReply().code == .stored)
        #expect(server.workerPIDs() == [upload.worker])
        #expect(!server.log().contains("timed out"))
        try server.stop()
    }

    @Test func killedWorkerMidUploadLeavesItInterruptedWithItsBytes() throws {
        let server = try Server(workers: 2)
        let upload = try PartialUpload(server: server, size: 1_000_000)
        try upload.send(333_333, directory: server.directory)
        kill(upload.worker, SIGKILL)
        let settled = try eventually(timeout: 10) { try server.upload(id: upload.id)?.state == .interrupted }
        #expect(settled, "\(server.log())")
        let row = try #require(try server.upload(id: upload.id))
        #expect(row.received == 333_333)
        #expect(row.error?.contains("killed by KILL") == true)
        #expect(FileManager.default.fileExists(atPath: server.directory.tempFile(id: upload.id)))
        try server.stop()
    }

    /// The master hands its database work to a child: with the database locked by
    /// another process, a dead worker's uploads wait, but the master still respawns,
    /// answers TTIN, and records them once the lock is gone.
    @Test func theMasterAnswersWhileTheDatabaseIsLocked() throws {
        let server = try Server(workers: 1)
        let upload = try PartialUpload(server: server, size: 1_000_000)
        try upload.send(250_000, directory: server.directory)

        var db: OpaquePointer?
        #expect(sqlite3_open(server.directory.databasePath, &db) == SQLITE_OK)
        #expect(sqlite3_exec(db, "BEGIN IMMEDIATE", nil, nil, nil) == SQLITE_OK)  // the write lock, held
        let asked = Date()
        kill(upload.worker, SIGKILL)
        usleep(100_000)  // two signals sent back to back may arrive as one
        server.signal(SIGTTIN)
        // The dead worker replaced, and one more: two workers, neither the dead one.
        #expect(eventually { let pids = server.workerPIDs(); return pids.count == 2 && !pids.contains(upload.worker) })
        let answered = Date().timeIntervalSince(asked)
        // Doing the recovery itself, the master waited out SQLite's 5 s busy timeout first.
        #expect(answered < 3, "replaced and TTIN answered after \(answered) s, with the database locked")
        #expect(try server.upload(id: upload.id)?.state == .receiving, "not recorded while the lock is held")

        #expect(sqlite3_exec(db, "ROLLBACK", nil, nil, nil) == SQLITE_OK)
        sqlite3_close(db)
        #expect(eventually(timeout: 15) { (try? server.upload(id: upload.id))?.state == .interrupted }, "\(server.log())")
        #expect(try server.upload(id: upload.id)?.received == 250_000)
        try server.stop()
    }

    @Test func workersLeaveWithinTwoSecondsWhenTheMasterIsKilled() throws {
        let server = try Server(workers: 3)
        let workers = server.workerPIDs()
        server.signal(SIGKILL)
        _ = try server.waitForExit(timeout: 5)
        let gone = eventually(timeout: 2) { workers.allSatisfy { !Processes.isAlive($0) } }
        #expect(gone, "still alive: \(workers.filter(Processes.isAlive))")
    }

    @Test func restartAfterAMasterCrashRecoversPartialUploads() throws {
        let server = try Server(workers: 2)
        let first = try PartialUpload(server: server, size: 500_000, seed: 1)
        let second = try PartialUpload(server: server, size: 500_000, seed: 2)
        let workers = server.workerPIDs()
        try first.send(100_000, directory: server.directory)
        try second.send(200_000, directory: server.directory)
        server.signal(SIGKILL)
        _ = try server.waitForExit(timeout: 5)
        #expect(eventually(timeout: 3) { workers.allSatisfy { !Processes.isAlive($0) } })
        #expect(try server.upload(id: first.id)?.state == .receiving)

        let restarted = try Server(workers: 1, data: server.data)
        #expect(try restarted.upload(id: first.id)?.state == .interrupted)
        #expect(try restarted.upload(id: first.id)?.received == 100_000)
        #expect(try restarted.upload(id: second.id)?.received == 200_000)
        #expect(restarted.log().contains("marked interrupted"))
        try restarted.stop()
    }

    @Test func staleTempFilesAreRemovedAtStart() throws {
        let first = try Server(workers: 1)
        try first.stop()
        let stray = first.directory.tempPath + "/01ZZZZZZZZZZZZZZZZZZZZZZZZ.part"
        writeFile(stray, [1, 2, 3])
        let second = try Server(workers: 1, data: first.data)
        #expect(!FileManager.default.fileExists(atPath: stray))
        #expect(second.log().contains("removed a temporary file no upload owns"))
        try second.stop()
    }

    @Test func stalePidFileIsTakenOver() throws {
        let dir = try TempDirectory()
        let run = dir.path + "/data/run"
        try FileManager.default.createDirectory(atPath: run, withIntermediateDirectories: true)
        writeFile(run + "/spoold.pid", Array("999999\n".utf8))  // a master that died without cleaning up
        let server = try Server(workers: 1, data: dir)
        #expect(try String(contentsOfFile: run + "/spoold.pid", encoding: .utf8) == "\(server.pid)\n")
        try server.stop()
    }
}
