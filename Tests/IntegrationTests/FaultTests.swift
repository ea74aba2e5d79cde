import Foundation
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
        var description: String { "\(fault) (\(batch ? "batch" : "streamed"))" }
    }

    static let cases: [Case] = [
        Case(fault: "write@spool/tmp/:1:ENOSPC", batch: false, expected: .failed),
        Case(fault: "fsync@spool/tmp/:1", batch: false, expected: .failed),
        Case(fault: "link@spool/objects/:1", batch: false, expected: .failed),
        Case(fault: "fsync@spool/objects/:1", batch: false, expected: .failed),
        // The second directory sync: that of new content, named just before (the first is the prior content's).
        Case(fault: "fsync@spool/objects/:2", batch: false, expected: .failed),
        Case(fault: "syncfs:1", batch: true, expected: .failed),
        Case(fault: "link@spool/objects/:1", batch: true, expected: .failed),
        // Commits: the first records the upload `receiving`; a large file's checksum,
        // sent after its body, is recorded by the second; the third records it `complete`.
        Case(fault: "commit:2", batch: false, expected: .failed),
        Case(fault: "commit:3", batch: false, expected: .failed),
        Case(fault: "commit:2", batch: true, expected: .failed),
        // The commit's log sync: the row is committed but the client hears an error;
        // the bytes are durable, so `complete` is true, and a retry answers 250.
        Case(fault: "fdatasync@spool.db-wal:1", batch: false, expected: .complete),
    ]

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
}
