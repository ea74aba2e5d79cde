import CSQLite
import Foundation
import SpoolTestSupport
import SpoolProtocol
import SpoolStore
import SpoolSystem
import Testing

/// `spoold admin`, run as the real binary against data made by real uploads.
@Suite struct AdminTests {
    func admin(_ server: Server, _ arguments: [String]) throws -> Finished {
        try run(Binaries.spoold, ["admin"] + arguments + ["--data-dir", server.directory.root])
    }

    /// Uploads files (name -> bytes) one by one, in order; returns their ids.
    func upload(_ server: Server, _ files: [(String, [UInt8])]) throws -> [String] {
        let dir = try TempDirectory()
        return try files.map { name, bytes in
            let path = writeFile(dir.path + "/" + name, bytes)
            let result = try run(Binaries.spool, ["upload", "--quiet", "--server", server.address, path])
            guard result.status == 0 else { throw HarnessError("upload failed: \(result.stderr)") }
            return String(result.stdout.prefix(26))
        }
    }

    @Test func listPrintsTableJSONAndCSVAndFilters() throws {
        let server = try Server(workers: 1)
        let ids = try upload(server, [
            ("alpha.txt", Array(repeating: 1, count: 100)),
            ("beta, \"the second\".txt", Array(repeating: 2, count: 3000)),
            ("alpha-2.log", Array(repeating: 3, count: 2_000_000)),
        ])
        let json = try admin(server, ["list", "--json"])
        #expect(json.status == 0)
        let rows = try JSONDecoder().decode([UploadRecord].self, from: Data(json.stdout.utf8))
        #expect(rows.map(\.id) == ids.reversed())

        // JSON Lines: the same rows, one per line.
        let jsonl = try admin(server, ["list", "--jsonl"]).stdout.split(separator: "\n")
        #expect(try jsonl.map { try JSONDecoder().decode(UploadRecord.self, from: Data($0.utf8)) } == rows)

        // CSV: a header, then each row; the name with a comma and quotes survives.
        let csv = parseCSV(try admin(server, ["list", "--csv"]).stdout)
        #expect(csv.first == ["id", "name", "state", "size", "received", "sha256", "client_ip", "client_port", "worker_pid",
                              "created_at", "updated_at", "finished_at", "error", "token"])
        #expect(csv.dropFirst().map { $0[0] } == rows.map(\.id))
        #expect(csv[2][1] == "beta, \"the second\".txt" && csv[2][3] == "3000" && csv[2][2] == "complete")

        // The table, exactly.
        let table = try admin(server, ["list"]).stdout
        let header = ["ID", "STATE", "SIZE", "RECEIVED", "SHA256", "CLIENT", "WORKER", "CREATED", "NAME"]
        let cells = [header] + rows.map { r in
            [r.id, "complete", humanSize(r.size), humanSize(r.received), String(r.sha256.prefix(12)),
             "127.0.0.1:\(r.clientPort)", String(r.workerPID), r.createdAt, r.name]
        }
        let widths = (0..<header.count).map { i in cells.map { $0[i].count }.max() ?? 0 }
        let expected = cells.map { line in
            line.enumerated().map { i, cell in i == line.count - 1 ? cell : cell.padding(toLength: widths[i] + 2, withPad: " ", startingAt: 0) }.joined()
        }.joined(separator: "\n") + "\n3 uploads\n"
        #expect(table == expected)

        // Filters.
        func listed(_ arguments: [String]) throws -> [String] {
            let result = try admin(server, ["list", "--jsonl"] + arguments)
            #expect(result.status == 0, "\(arguments): \(result.stderr)")
            return try result.stdout.split(separator: "\n").map { try JSONDecoder().decode(UploadRecord.self, from: Data($0.utf8)).name }
        }
        #expect(try listed(["--name", "alpha*"]) == ["alpha-2.log", "alpha.txt"])
        #expect(try listed(["--name", "*.txt", "--sort", "name"]) == ["alpha.txt", "beta, \"the second\".txt"])
        #expect(try listed(["--sort", "largest", "--limit", "1"]) == ["alpha-2.log"])
        #expect(try listed(["--sort", "oldest", "--limit", "1"]) == ["alpha.txt"])
        #expect(try listed(["--checksum", String(rows[1].sha256.prefix(6))]) == [rows[1].name])
        #expect(try listed(["--client", "127.0.0.1"]).count == 3)
        #expect(try listed(["--client", "192.0.2.1"]).isEmpty)
        #expect(try listed(["--state", "complete", "--since", "1h"]).count == 3)
        #expect(try listed(["--state", "failed"]).isEmpty)
        #expect(try listed(["--until", "2000-01-01"]).isEmpty)
        #expect(try listed(["--since", "2000-01-01T00:00:00Z", "--until", "2999-12-31"]).count == 3)

        let bad = try admin(server, ["list", "--since", "yesterday"])
        #expect(bad.status == 64 && bad.stderr.contains("--since takes a duration"))
        try server.stop()
    }

    @Test func showGivesEveryFieldAndTheObject() throws {
        let server = try Server(workers: 1)
        let bytes = pseudoRandomBytes(count: 4096, seed: 61)
        let ids = try upload(server, [("one.bin", bytes), ("same.bin", bytes)])
        let show = try admin(server, ["show", ids[0]])
        #expect(show.status == 0)
        let fields = Dictionary(uniqueKeysWithValues: show.stdout.split(separator: "\n").map { line in
            (String(line.prefix(10)).trimmingCharacters(in: .whitespaces), String(line.dropFirst(10)))
        })
        #expect(fields["id"] == ids[0] && fields["name"] == "one.bin" && fields["state"] == "complete")
        #expect(fields["size"] == "4096 (4.0 KiB)" && fields["sha256"] == sha256Hex(bytes))
        #expect(fields["path"] == server.directory.objectFile(sha256: sha256Hex(bytes)))
        #expect(fields["shared by"] == "2 complete uploads with this content")
        #expect(try admin(server, ["show", "01ZZZZZZZZZZZZZZZZZZZZZZZZ"]).status == 2)
        try server.stop()
    }

    @Test func auditFindsEachPlantedFaultAndRepairWithoutLosingAnything() throws {
        let server = try Server(workers: 1)
        let files = (0..<6).map { ("f\($0).bin", pseudoRandomBytes(count: 10_000 + $0, seed: UInt64(600 + $0))) }
        let ids = try upload(server, files)
        #expect(try admin(server, ["audit"]).status == 0)
        let objects = files.map { server.directory.objectFile(sha256: sha256Hex($0.1)) }

        // Plant one fault of each kind.
        try FileManager.default.removeItem(atPath: objects[0])                                   // deleted object
        try FileHandle(forWritingAtPath: objects[1]).map { try $0.truncate(atOffset: 5000); try $0.close() }  // truncated
        var flipped = try Data(contentsOf: URL(fileURLWithPath: objects[2]))                     // flipped byte
        flipped[1234] ^= 0x01
        try flipped.write(to: URL(fileURLWithPath: objects[2]))
        let orphanSHA = String(repeating: "ab", count: 32)                                         // orphan object
        let orphanDir = server.directory.objectDirectory(sha256: orphanSHA)
        try FileManager.default.createDirectory(atPath: orphanDir, withIntermediateDirectories: true)
        writeFile(server.directory.objectFile(sha256: orphanSHA), [1, 2, 3])
        let staleTemp = server.directory.tempFile(id: "01ZZZZZZZZZZZZZZZZZZZZZZZZ")              // stale temp file
        writeFile(staleTemp, [9])
        let stuck = "01STUCKSTUCKSTUCKSTUCKSTUC"                                                   // stuck receiving row
        try sql(server, """
            INSERT INTO uploads (id, name, size, received, sha256, client_ip, client_port, state, worker_pid, created_at, updated_at)
            VALUES ('\(stuck)', 'stuck.bin', 10, 0, '\(String(repeating: "cd", count: 32))', '127.0.0.1', 1, 'receiving', 999999,
                    '2020-01-01T00:00:00.000Z', '2020-01-01T00:00:00.000Z')
            """)
        writeFile(server.directory.tempFile(id: stuck), [1, 2, 3, 4])

        let audit = try admin(server, ["audit", "--json"])
        #expect(audit.status == 1)
        let report = try JSONDecoder().decode(AuditReport.self, from: Data(audit.stdout.utf8))
        #expect(Set(report.findings.map(\.kind)) == Set(AuditFinding.Kind.allCases))
        #expect(report.findings.first { $0.kind == .missingObject }?.uploads == [ids[0]])
        #expect(report.findings.first { $0.kind == .sizeMismatch }?.uploads == [ids[1]])
        #expect(report.findings.first { $0.kind == .checksumMismatch }?.uploads == [ids[2]])
        #expect(report.findings.first { $0.kind == .stuckReceiving }?.uploads == [stuck])

        // --quick checks sizes only: the flipped byte goes unseen.
        let quick = try JSONDecoder().decode(AuditReport.self, from: Data(try admin(server, ["audit", "--quick", "--json"]).stdout.utf8))
        #expect(!quick.findings.contains { $0.kind == .checksumMismatch })

        let text = try admin(server, ["audit"])
        #expect(text.status == 1 && text.stdout.contains("6 problems:"), "\(text.stdout)")

        let repair = try admin(server, ["audit", "--repair"])
        #expect(repair.status == 1 && repair.stdout.contains("repaired:"), "\(repair.stdout)")
        let again = try admin(server, ["audit"])
        #expect(again.status == 0, "\(again.stdout)")
        #expect(again.stdout.contains("clean"))

        // Nothing referenced was removed; the damaged uploads are marked lost; the stuck one is resumable.
        for n in 3..<6 { #expect(FileManager.default.fileExists(atPath: objects[n])) }
        let rows = try server.uploads()
        for n in 0..<3 { #expect(rows.first { $0.id == ids[n] }?.state == .lost) }
        #expect(rows.first { $0.id == stuck }?.state == .interrupted)
        #expect(rows.first { $0.id == stuck }?.received == 4)
        let quarantined = try allFiles(server.directory.spoolPath + "/quarantine")
        #expect(quarantined.contains(orphanSHA) && quarantined.contains("01ZZZZZZZZZZZZZZZZZZZZZZZZ.part"))
        #expect(quarantined.contains(sha256Hex(files[1].1)) && quarantined.contains(sha256Hex(files[2].1)))
        try server.stop()
    }

    @Test func auditWhileEightClientsKeepUploading() throws {
        let server = try Server(workers: 2)
        let dir = try TempDirectory()
        let clients = try (0..<8).map { c -> Process in
            let files = (0..<15).map { n in
                writeFile(dir.path + "/c\(c)-\(n).bin", pseudoRandomBytes(count: 20_000 + n * 5000, seed: UInt64(c * 100 + n + 7000)))
            }
            return try startSpool(["upload", "--quiet", "--server", server.address] + files, state: dir.path + "/state-\(c)", output: nil)
        }
        var audits = 0
        var dirty: [String] = []
        while clients.contains(where: \.isRunning) || audits < 3 {
            let audit = try admin(server, ["audit"])
            audits += 1
            if audit.status != 0 { dirty.append(audit.stdout + audit.stderr) }
        }
        for client in clients { client.waitUntilExit() }
        #expect(clients.allSatisfy { $0.terminationStatus == 0 }, "an upload failed during the audits")
        #expect(dirty.isEmpty, "\(dirty)")
        #expect(try server.uploads().filter { $0.state == .complete }.count == 120)
        print("\(audits) audits ran while 8 clients uploaded 120 files")
        try server.stop()
    }

    @Test func statsCountStatesBytesAndDays() throws {
        let server = try Server(workers: 1)
        let shared = Array(repeating: UInt8(5), count: 1000)
        _ = try upload(server, [("a", shared), ("b", shared), ("c", Array(repeating: 6, count: 500))])
        let stats = try JSONDecoder().decode(AdminStats.self, from: Data(try admin(server, ["stats", "--json"]).stdout.utf8))
        #expect(stats.uploads == 3 && stats.perState["complete"] == 3)
        #expect(stats.bytesStored == 1500 && stats.bytesSaved == 1000)
        #expect(stats.perDay.count == 14)
        #expect(stats.perDay.last?.uploads == 3 && stats.perDay.last?.day == String(UTCTime.now().prefix(10)))
        let text = try admin(server, ["stats"]).stdout
        #expect(text.contains("bytes saved    1000 (1000 B, by deduplication)"))
        try server.stop()
    }

    @Test func deleteKeepsSharedObjectsAndPurgeRemovesByState() throws {
        let server = try Server(workers: 1)
        let shared = pseudoRandomBytes(count: 7000, seed: 71)
        let ids = try upload(server, [("x", shared), ("y", shared)])
        let object = server.directory.objectFile(sha256: sha256Hex(shared))

        let dry = try admin(server, ["delete", "--dry-run", ids[0]])
        #expect(dry.status == 0 && dry.stdout.contains("would delete \(ids[0])") && dry.stdout.contains("shared"))
        #expect(try server.uploads().count == 2)

        #expect(try admin(server, ["delete", ids[0]]).stdout.contains("object kept"))
        #expect(FileManager.default.fileExists(atPath: object))
        #expect(try admin(server, ["delete", ids[1]]).stdout.contains("and its object"))
        #expect(!FileManager.default.fileExists(atPath: object))
        #expect(try admin(server, ["delete", ids[1]]).status == 2)

        // A failed upload, then purge by state.
        let liar = try PartialUpload(server: server, size: 10, name: "liar", seed: 3)
        try liar.connection.send(bytes: [UInt8](repeating: 0, count: 10))
        #expect(try liar.connection.readReply().code == .checksumMismatch)
        #expect(try admin(server, ["purge", "--state", "failed", "--older-than", "1h"]).stdout.contains("deleted 0 uploads"))
        #expect(try admin(server, ["purge", "--state", "failed", "--older-than", "0s", "--dry-run"]).stdout.contains("would delete 1 upload"))
        #expect(try admin(server, ["purge", "--state", "failed", "--older-than", "0s"]).stdout.contains("deleted 1 upload"))
        #expect(try server.uploads().isEmpty)
        #expect(try admin(server, ["purge", "--state", "receiving", "--older-than", "0s"]).status == 64)

        // The events outlive the rows, and cannot be rewritten.
        let events = try admin(server, ["events", "--id", ids[1], "--jsonl"]).stdout.split(separator: "\n")
        #expect(events.map { (try? JSONDecoder().decode(UploadEvent.self, from: Data($0.utf8)))?.kind } == ["created", "completed", "deleted", "object-removed"])
        #expect(throws: HarnessError.self) { try sql(server, "DELETE FROM events") }
        #expect(throws: HarnessError.self) { try sql(server, "UPDATE events SET kind = 'x'") }
        try server.stop()
    }

    @Test func eventsTellAnUploadsStory() throws {
        let server = try Server(workers: 1)
        let upload = try PartialUpload(server: server, size: 50_000)
        try upload.send(20_000, directory: server.directory)
        upload.connection.close()
        #expect(try eventually { try server.upload(id: upload.id)?.state == .interrupted })
        let (connection, offset) = try ResumeTests.resume(server, id: upload.id, sha256: sha256Hex(upload.bytes))
        try connection.send(bytes: upload.bytes[offset...])
        #expect(try connection.readReply().code == .stored)

        let events = try JSONDecoder().decode([UploadEvent].self, from: Data(try admin(server, ["events", "--id", upload.id, "--json"]).stdout.utf8))
        #expect(events.map(\.kind) == ["created", "interrupted", "resumed", "completed"])
        #expect(events.allSatisfy { $0.actor == "worker:\(upload.worker)" })
        #expect(events[0].client?.hasPrefix("127.0.0.1:") == true && events[2].detail == "at byte 20000")
        #expect(try admin(server, ["events", "--since", "1h"]).stdout.split(separator: "\n").count == 4)
        #expect(try admin(server, ["events", "--since", "2999-01-01"]).stdout.isEmpty)
        let csv = parseCSV(try admin(server, ["events", "--id", upload.id, "--csv"]).stdout)
        #expect(csv.first == ["seq", "at", "upload_id", "kind", "actor", "client", "detail"])
        #expect(csv.dropFirst().map { $0[3] } == ["created", "interrupted", "resumed", "completed"])
        try server.stop()
    }

    @Test func migrateAppliesAndChecks() throws {
        let dir = try TempDirectory()
        let data = ["--data-dir", dir.path + "/data"]
        let missing = try run(Binaries.spoold, ["admin", "migrate", "--check"] + data)
        #expect(missing.status == 2 && missing.stderr.contains("no database at"))
        let applied = try run(Binaries.spoold, ["admin", "migrate"] + data)
        #expect(applied.stdout == "applied 1 create_uploads\napplied 2 create_events\napplied 3 create_tokens\napplied 4 reserved_bytes\napplied 5 token_usage\napplied 6 tus\napplied 7 hooks\ncurrent\n")
        #expect(try run(Binaries.spoold, ["admin", "migrate"] + data).stdout == "already current\n")
        let check = try run(Binaries.spoold, ["admin", "migrate", "--check"] + data)
        #expect(check.status == 0 && check.stdout == "schema version 7 of 7: current\n")
        try sqlite(dir.path + "/data/spool.db", "INSERT INTO spool_migrations VALUES (99, 'future', 'x', 'now')")
        let tooNew = try run(Binaries.spoold, ["admin", "migrate", "--check"] + data)
        #expect(tooNew.status == 2 && tooNew.stderr.contains("schema version 99, newer than this spoold knows (7)"))
    }
}

func sql(_ server: Server, _ statement: String) throws {
    try sqlite(server.directory.databasePath, statement)
}

func sqlite(_ path: String, _ statement: String) throws {
    var db: OpaquePointer?
    guard sqlite3_open(path, &db) == SQLITE_OK else { throw HarnessError("open \(path)") }
    defer { sqlite3_close(db) }
    sqlite3_busy_timeout(db, 5000)
    var message: UnsafeMutablePointer<CChar>?
    if sqlite3_exec(db, statement, nil, nil, &message) != SQLITE_OK {
        let text = message.map { String(cString: $0) } ?? "?"
        sqlite3_free(message)
        throw HarnessError(text)
    }
}

func allFiles(_ root: String) throws -> Set<String> {
    var names = Set<String>()
    let enumerator = FileManager.default.enumerator(atPath: root)
    while let path = enumerator?.nextObject() as? String { names.insert(URL(fileURLWithPath: path).lastPathComponent) }
    return names
}

func humanSize(_ bytes: Int64) -> String {
    if bytes < 1024 { return "\(bytes) B" }
    let units = ["KiB", "MiB", "GiB", "TiB"]
    var value = Double(bytes) / 1024
    var unit = 0
    while value >= 1024 && unit < units.count - 1 {
        value /= 1024
        unit += 1
    }
    let tenths = Int((value * 10).rounded())
    return "\(tenths / 10).\(tenths % 10) \(units[unit])"
}

/// RFC 4180: quoted fields, doubled quotes, CRLF rows.
func parseCSV(_ text: String) -> [[String]] {
    var rows: [[String]] = []
    var row: [String] = []
    var field = ""
    var quoted = false
    var chars = Array(text)[...]
    while let c = chars.popFirst() {
        if quoted {
            if c == "\"" {
                if chars.first == "\"" { field.append("\""); chars.removeFirst() } else { quoted = false }
            } else {
                field.append(c)
            }
        } else if c == "\"" {
            quoted = true
        } else if c == "," {
            row.append(field)
            field = ""
        } else if c == "\r\n" || c == "\n" {
            row.append(field)
            rows.append(row)
            row = []
            field = ""
        } else if c != "\r" {
            field.append(c)
        }
    }
    return rows
}
