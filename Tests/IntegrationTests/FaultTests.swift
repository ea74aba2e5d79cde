import Foundation
import SpoolClient
import SpoolProtocol
import SpoolStore
import SpoolTestSupport
import Testing

/// Every call on the durability path fails once, in a running server
/// (`SPOOL_FAULT`, Sources/SpoolSystem/Fault.swift): the client is refused, the
/// upload is `failed` (never `complete` without its bytes), what was stored
/// before does not change, the worker goes on serving, and the audit is clean.
/// docs/DESIGN.md ("Failures") has the table these cases check.
@Suite struct FaultTests {
    struct Case: CustomStringConvertible, Sendable {
        let fault: String
        /// Small files sent at once (stored in a batch), or one large file, streamed.
        let batch: Bool
        /// The upload whose write failed is `failed`; a failure after the commit leaves it `complete`.
        let expected: UploadState
        /// docs/DESIGN.md's words for the call, the upload and the outcome (`tableRows`).
        let call: String
        let upload: String
        let outcome: String
        var description: String { "\(fault) (\(batch ? "batch" : "streamed"))" }
    }

    static let cases: [Case] = [
        Case(fault: "write@spool/tmp/:1:ENOSPC", batch: false, expected: .failed,
             call: "`write` of the body (`ENOSPC`)", upload: "streamed", outcome: "`451`; `failed`, its temporary file removed"),
        Case(fault: "fsync@spool/tmp/:1", batch: false, expected: .failed,
             call: "`fsync` of the temporary file", upload: "streamed", outcome: "`451`; `failed`, nothing named"),
        Case(fault: "link@spool/objects/:1", batch: false, expected: .failed,
             call: "`link` to the object's name", upload: "streamed", outcome: "`451`; `failed`"),
        Case(fault: "fsync@spool/objects/:1", batch: false, expected: .failed,
             call: "`fsync` of the object's directory", upload: "streamed, content stored before",
             outcome: "`451`; `failed`; the object stays (another upload names it)"),
        // The second directory sync: that of new content, named just before (the first is the prior content's).
        Case(fault: "fsync@spool/objects/:2", batch: false, expected: .failed,
             call: "`fsync` of the object's directory", upload: "streamed, new content",
             outcome: "`451`; `failed`; the object, named by nothing, is removed"),
        Case(fault: "syncfs:1", batch: true, expected: .failed,
             call: "`syncfs` of a batch", upload: "small uploads at once",
             outcome: "`451` for each; `failed`; objects named by nothing removed; `spool upload` sends them again at once"),
        Case(fault: "link@spool/objects/:1", batch: true, expected: .failed,
             call: "`link` to the object's name", upload: "small uploads at once",
             outcome: "`451` for that upload; `failed`; the batch's others are stored, or fail with it when they share its sync"),
        // Commits: the first records the upload `receiving`; a large file's checksum,
        // sent after its body, is recorded by the second; the third records it `complete`.
        Case(fault: "commit:2", batch: false, expected: .failed,
             call: "the commit that records the checksum sent after the body", upload: "streamed",
             outcome: "`451`; `failed`, its temporary file removed"),
        Case(fault: "commit:3", batch: false, expected: .failed,
             call: "the commit that records it `complete`", upload: "streamed",
             outcome: "`451`; `failed` by a second commit (if the database allows one) rather than left `receiving`; the object, named by nothing, is removed"),
        Case(fault: "commit:2", batch: true, expected: .failed,
             call: "the commit that records them `complete`", upload: "small uploads at once",
             outcome: "`451` for each; `failed` by a second commit rather than left `receiving`; objects named by nothing removed"),
        // The commit's log sync: the row is committed but the client hears an error;
        // the bytes are durable, so `complete` is true, and a retry answers 250.
        Case(fault: "fdatasync@spool.db-wal:1", batch: false, expected: .complete,
             call: "`fdatasync` of SQLite's log after the commit", upload: "streamed",
             outcome: "the client hears an error, but the row is committed and its bytes are durable: `complete`, and a retry answers `250`"),
    ]

    /// The rows of docs/DESIGN.md's table: the cases above, then the paths tested one by one below.
    static var tableRows: [(fault: String, call: String, upload: String, outcome: String)] {
        cases.map { ($0.fault, $0.call, $0.upload, $0.outcome) } + [
            (resumeFault, "`fsync` of the bytes kept, at `RESUME`", "resume",
             "`451`; still `interrupted`, its bytes kept; the next `RESUME` finishes it"),
            (deleteFault, "`unlink` of the object, after the row's removal is committed", "tus `DELETE` (`admin delete`, `purge` alike)",
             "`204`: the upload is deleted; its object, named by nothing, stays until `admin audit --repair` moves it to quarantine"),
            (expiryFault, "`unlink` of an expired upload's file, in the master's chore child", "expiry",
             "the row is `expired` (recorded first); the file stays, reported by `admin audit` as a stale temporary file, and is removed at the next start"),
            (recoveryFault, "`fsync` of a dead worker's upload file, in the master's chore child", "recovery",
             "the row stays `receiving` (no count is recorded that the disk may not hold), the chore is tried again each second, and the client's `RESUME` finishes the upload meanwhile"),
        ]
    }

    static let resumeFault = "fsync@spool/tmp/:1"
    static let deleteFault = "unlink@spool/objects/:1"
    static let recoveryFault = "fsync@spool/tmp/:1"
    static let expiryFault = "unlink@spool/tmp/:1"

    @Test(arguments: cases)
    func oneFailure(_ fault: Case) throws {
        let data = try TempDirectory()
        let files = try TempDirectory()
        let size = fault.batch ? 3000 : 3 << 20
        // Stored before the fault, and sent again among the files that meet it.
        let prior = pseudoRandomBytes(count: size, seed: 199)
        let priorFile = writeFile(files.path + "/prior.bin", prior)
        let clean = try Server(workers: 1, data: data)
        #expect(try run(Binaries.spool, ["upload", "--quiet", "--server", clean.address, priorFile]).status == 0)
        try clean.stop()

        let server = try Server(workers: 1, data: data, environment: ["SPOOL_FAULT": fault.fault])
        var names = [writeFile(files.path + "/again.bin", prior)]
        names += (0..<(fault.batch ? 3 : 1)).map { writeFile(files.path + "/new\($0).bin", pseudoRandomBytes(count: size, seed: UInt64(200 + $0))) }
        let sent = try run(Binaries.spool, ["upload", "--quiet", "--retries", "0", "--no-resume", "--server", server.address] + names)
        let rows = try server.uploads()
        #expect(server.log().contains("(injected)"), "\(fault): the failure happened and was logged")
        if fault.expected == .failed && !fault.batch {
            // Told 451 (try again), `spool upload` sends small files again at once (so a
            // batch's outcome depends on how its files were grouped); a large one it leaves to the user.
            #expect(sent.status != 0, "\(fault): the client was told: \(sent.stdout) \(sent.stderr)")
            #expect(rows.contains { $0.state == .failed }, "\(fault): \(rows.map(\.state))")
        }
        for row in rows where row.state == .complete {
            let object = server.directory.objectFile(sha256: row.sha256)
            #expect(FileManager.default.fileExists(atPath: object), "\(fault): \(row.id) is complete, so its object exists")
        }
        #expect(!rows.contains { $0.state == .receiving || $0.state == .interrupted }, "\(fault): \(rows.map(\.state))")
        // No object that nothing names (an upload that failed after naming its object takes it away).
        let first = try run(Binaries.spoold, ["admin", "audit", "--data-dir", server.directory.root])
        #expect(first.status == 0, "\(fault): \(first.stdout)")

        // The worker goes on serving, and the same files go through now.
        let again = try run(Binaries.spool, ["upload", "--quiet", "--retries", "0", "--no-resume", "--server", server.address] + names)
        #expect(again.status == 0, "\(fault): \(again.stderr)")
        #expect(server.count("worker exited") == 0, "\(fault): no worker died")
        let audit = try run(Binaries.spoold, ["admin", "audit", "--data-dir", server.directory.root])
        #expect(audit.status == 0, "\(fault): \(audit.stdout)")
        let object = server.directory.objectFile(sha256: sha256Hex(prior))
        #expect(try Data(contentsOf: URL(fileURLWithPath: object)) == Data(prior), "\(fault): what was stored before is intact")
        #expect(try server.uploads().last?.state == .complete)
        try server.stop()
    }

    /// The first RESUME meets the injected fsync failure (`451`); the upload keeps
    /// its state and its first MiB, and the next RESUME finishes it, stored.
    static func resumeRefusedOnceThenFinished(_ server: Server, _ partial: PartialUpload, before state: UploadState) throws {
        let sha = sha256Hex(partial.bytes)
        let first = try Connection(server: server.address)
        try first.send(line: "RESUME \(partial.id) \(sha)")
        let refused = try first.readReply()
        #expect(refused.code == .storageError, "\(refused)")
        #expect(server.log().contains("(injected)"))
        #expect(try server.upload(id: partial.id)?.state == state)
        #expect(server.directory.tempBytes(id: partial.id) == 1 << 20)
        let (connection, offset) = try ResumeTests.resume(server, id: partial.id, sha256: sha)
        #expect(offset == 1 << 20)
        try connection.send(bytes: partial.bytes[offset...])
        #expect(try connection.readReply().code == .stored)
    }

    /// RESUME fsyncs the bytes kept before it offers their count: when that fails,
    /// the client is told, and the upload stays resumable with its bytes.
    @Test func aResumeWhoseFsyncFails() throws {
        let data = try TempDirectory()
        let clean = try Server(workers: 1, data: data)
        let partial = try PartialUpload(server: clean, size: 3 << 20)
        try partial.send(1 << 20, directory: clean.directory)
        partial.connection.close()
        #expect(eventually { (try? clean.upload(id: partial.id))??.state == .interrupted })
        try clean.stop()

        let server = try Server(workers: 1, data: data, environment: ["SPOOL_FAULT": Self.resumeFault])
        try Self.resumeRefusedOnceThenFinished(server, partial, before: .interrupted)
        let sha = sha256Hex(partial.bytes)
        let object = server.directory.objectFile(sha256: sha)
        #expect(try Data(contentsOf: URL(fileURLWithPath: object)) == Data(partial.bytes))
        #expect(try run(Binaries.spoold, ["admin", "audit", "--data-dir", server.directory.root]).status == 0)
        try server.stop()
    }

    /// A delete commits the row's removal first: an object that cannot be removed
    /// after that does not make the delete "fail"; it is left to the audit.
    @Test func aDeleteWhoseObjectUnlinkFails() throws {
        let server = try Server(workers: 1, environment: ["SPOOL_FAULT": Self.deleteFault])
        let files = try TempDirectory()
        let file = writeFile(files.path + "/gone.bin", pseudoRandomBytes(count: 200_000, seed: 210))
        let put = try run("/usr/bin/curl", ["-s", "-T", file, server.httpBase + "/files/gone.bin"])
        let id = try #require(put.stdout.split(separator: "\"").dropFirst(3).first.map(String.init), "\(put.stdout)")
        let deleted = try run("/usr/bin/curl", ["-s", "-o", "/dev/null", "-w", "%{http_code}", "-X", "DELETE",
                                                "-H", "Tus-Resumable: 1.0.0", server.httpBase + "/files/\(id)"])
        #expect(deleted.stdout == "204")
        #expect(server.log().contains("(injected)"))
        #expect(try server.upload(id: id) == nil)
        let audit = try run(Binaries.spoold, ["admin", "audit", "--data-dir", server.directory.root])
        #expect(audit.status == 1 && audit.stdout.contains("orphan"), "\(audit.stdout)")
        _ = try run(Binaries.spoold, ["admin", "audit", "--repair", "--data-dir", server.directory.root])
        #expect(try run(Binaries.spoold, ["admin", "audit", "--data-dir", server.directory.root]).status == 0)
        try server.stop()
    }

    /// docs/DESIGN.md's table of failures is these tests' cases, rendered: a case
    /// changed here and not there fails this test, which prints the table to paste
    /// (or, with SPOOL_WRITE_DOCS=1, writes it).
    @Test func theDesignTableIsTheseCases() throws {
        let path = Binaries.repository + "/docs/DESIGN.md"
        let text = try String(contentsOfFile: path, encoding: .utf8)
        let begin = "<!-- failures table: generated from Tests/IntegrationTests/FaultTests.swift -->\n"
        let end = "<!-- end of failures table -->"
        var table = "| `SPOOL_FAULT` | call that fails | upload | outcome |\n|---|---|---|---|\n"
        for row in Self.tableRows {
            table += "| `\(row.fault)` | \(row.call) | \(row.upload) | \(row.outcome) |\n"
        }
        let start = try #require(text.range(of: begin), "the markers are in docs/DESIGN.md")
        let stop = try #require(text.range(of: end, range: start.upperBound..<text.endIndex))
        let current = String(text[start.upperBound..<stop.lowerBound])
        if current != table, ProcessInfo.processInfo.environment["SPOOL_WRITE_DOCS"] == "1" {
            try (String(text[..<start.upperBound]) + table + String(text[stop.lowerBound...])).write(toFile: path, atomically: true, encoding: .utf8)
            return
        }
        #expect(current == table, "docs/DESIGN.md's table should read:\n\(table)")
    }

    /// A worker dies mid-upload and the chore child that records its uploads
    /// cannot fsync the file (each chore child fails its first fsync there, so
    /// every try fails): the row is not given a count the disk may not hold, the
    /// master keeps trying, and the client resumes and finishes meanwhile.
    @Test func aRecoveryWhoseFsyncFailsIsTriedAgain() throws {
        let server = try Server(workers: 1, environment: ["SPOOL_FAULT": Self.recoveryFault])
        let partial = try PartialUpload(server: server, size: 3 << 20)
        try partial.send(1 << 20, directory: server.directory)
        kill(partial.worker, SIGKILL)
        #expect(eventually(timeout: 20) { server.count("the master's database work failed; trying again") >= 2 }, "\(server.log())")
        #expect(server.log().contains("(injected)"))
        #expect(try server.upload(id: partial.id)?.state == .receiving)
        #expect(eventually { server.count("worker ready") >= 2 })

        // The new worker's first fsync there is this RESUME's: refused once, then served.
        try Self.resumeRefusedOnceThenFinished(server, partial, before: .receiving)
        // Nothing left for the chore: it succeeds, and stops being retried.
        let failures = server.count("trying again")
        usleep(2_500_000)
        #expect(server.count("trying again") <= failures + 1)
        #expect(try run(Binaries.spoold, ["admin", "audit", "--data-dir", server.directory.root]).status == 0)
        try server.stop()
    }

    /// Expiry records the row first; a file it then cannot remove is left for the
    /// next start, and never makes the upload look resumable.
    @Test func anExpiryWhoseUnlinkFails() throws {
        let data = try TempDirectory()
        let server = try Server(workers: 1, data: data, arguments: ["--partial-ttl", "1s"],
                                environment: ["SPOOL_FAULT": Self.expiryFault])
        let upload = try PartialUpload(server: server, size: 100_000)
        try upload.send(40_000, directory: server.directory)
        upload.connection.close()
        #expect(eventually(timeout: 20) { (try? server.upload(id: upload.id))?.state == .expired }, "\(server.log())")
        let path = server.directory.tempFile(id: upload.id)
        #expect(FileManager.default.fileExists(atPath: path), "the unlink failed, so the file is still there")
        let audit = try run(Binaries.spoold, ["admin", "audit", "--data-dir", server.directory.root])
        #expect(audit.status == 1 && audit.stdout.contains("stale"), "\(audit.stdout)")
        try server.stop()

        let again = try Server(workers: 1, data: data)
        #expect(!FileManager.default.fileExists(atPath: path), "removed at the start: no upload owns it")
        #expect(try again.upload(id: upload.id)?.state == .expired)
        #expect(try run(Binaries.spoold, ["admin", "audit", "--data-dir", again.directory.root]).status == 0)
        try again.stop()
    }
}
