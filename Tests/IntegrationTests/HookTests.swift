import Foundation
import SpoolStore
import SpoolTestSupport
import Testing

/// Hooks (docs/HOOKS.md) with real commands: a pre-create hook that refuses on
/// every front end, and notification hooks delivered at least once, in order,
/// across failures and a SIGKILL.
@Suite struct HookTests {
    /// An executable file written by a child process: the test process must not
    /// hold open for writing a file that a server it spawned will exec (ETXTBSY).
    static func installExecutable(_ text: String, at path: String) throws {
        let source = writeFile(path + ".src", Array(text.utf8))
        let installed = try run("/usr/bin/install", ["-m", "755", source, path])
        guard installed.status == 0 else { throw HarnessError("install \(path): \(installed.stderr)") }
    }

    /// One JSON object per line, as the recording hook appends them.
    static func records(_ path: String) -> [[String: Any]] {
        let text = (try? String(contentsOfFile: path, encoding: .utf8)) ?? ""
        return text.split(separator: "\n").compactMap { line in
            (try? JSONSerialization.jsonObject(with: Data(line.utf8))) as? [String: Any]
        }
    }

    static let sha = String(repeating: "0", count: 64)

    @Test func aPreCreateHookRefusesByNameSizeAndTimeOnEveryDoor() throws {
        let dir = try TempDirectory()
        try FileManager.default.createDirectory(atPath: dir.path + "/hooks", withIntermediateDirectories: true)
        let seen = dir.path + "/seen.jsonl"
        try Self.installExecutable("""
            #!/bin/sh
            input=$(cat)
            case "$SPOOL_UPLOAD_NAME" in
                *.exe) echo "no .exe files here"; exit 1 ;;
                slow*) sleep 30 ;;
            esac
            if [ -n "$SPOOL_UPLOAD_SIZE" ] && [ "$SPOOL_UPLOAD_SIZE" -gt 1000000 ]; then
                echo "files over 1 MB go to the other server"
                exit 2
            fi
            printf '%s\\n' "$input" >> \(seen)
            """, at: dir.path + "/hooks/pre-create")
        let server = try Server(workers: 2, arguments: ["--hook-dir", dir.path + "/hooks", "--pre-create-timeout", "1s"])
        let small = writeFile(dir.path + "/small.bin", pseudoRandomBytes(count: 1000, seed: 1))
        let large = writeFile(dir.path + "/large.bin", pseudoRandomBytes(count: 2_000_000, seed: 2))

        // The line protocol: 553 and the hook's words, whether the body was to follow or came at once.
        let nc = try RawSession(port: server.port)
        #expect(try nc.ask("UPLOAD 10 \(Self.sha) setup.exe") == ["553 no .exe files here"])
        #expect(try nc.ask("UPLOAD 2000000 \(Self.sha) large.bin") == ["553 files over 1 MB go to the other server"])
        #expect(try nc.ask("UPLOAD 10 \(Self.sha) slow.bin") == ["553 refused: this server's pre-create hook did not decide within 1s"])
        try nc.send("UPLOAD 3 \(sha256Hex(Array("abc".utf8))) tool.exe --at-once\r\nabc")
        #expect(try nc.readReply() == ["553 no .exe files here"])
        #expect(try nc.ask("PING") == ["200 pong"], "the refused body was read and dropped: the connection is in step")
        let client = try run(Binaries.spool, ["upload", "--quiet", "--server", server.address, large])
        #expect(client.status != 0 && client.stderr.contains("553 files over 1 MB go to the other server"), "\(client.stderr)")

        // HTTP: 403 with the words, for a body sent whole and one sent chunked (its size unknown: name rule only).
        let put = try HTTPTests.curl(["-w", " %{http_code}", "-T", small, server.httpBase + "/files/setup.exe"])
        #expect(put.stdout.hasSuffix(" 403") && put.stdout.contains("no .exe files here"), "\(put.stdout)")
        let bigPut = try HTTPTests.curl(["-w", " %{http_code}", "-T", large, server.httpBase + "/files/large.bin"])
        #expect(bigPut.stdout.hasSuffix(" 403") && bigPut.stdout.contains("files over 1 MB"), "\(bigPut.stdout)")
        let chunked = try HTTPTests.curl(
            ["-w", " %{http_code}", "-H", "Transfer-Encoding: chunked", "-T", small, server.httpBase + "/files/slow.txt"])
        #expect(chunked.stdout.hasSuffix(" 403") && chunked.stdout.contains("did not decide within 1s"), "\(chunked.stdout)")

        // tus: the creation is refused with 403.
        let named = TusTests.metadata([("filename", "setup.exe")])
        let tusName = try TusTests.request("POST", server.httpBase + "/files/", TusTests.tus.merging(["Upload-Length": "10", "Upload-Metadata": named]) { $1 })
        #expect(tusName.status == 403 && tusName.body.contains("no .exe files here"), "\(tusName)")
        let tusSize = try TusTests.request("POST", server.httpBase + "/files/", TusTests.tus.merging(["Upload-Length": "2000000"]) { $1 })
        #expect(tusSize.status == 403 && tusSize.body.contains("files over 1 MB"), "\(tusSize)")
        let tusSlow = try TusTests.request(
            "POST", server.httpBase + "/files/",
            TusTests.tus.merging(["Upload-Length": "10", "Upload-Metadata": TusTests.metadata([("filename", "slow.iso")])]) { $1 })
        #expect(tusSlow.status == 403 && tusSlow.body.contains("did not decide within 1s"), "\(tusSlow)")

        // Nothing refused was stored; what the hook admitted was, and it saw every field.
        #expect(try server.uploads().isEmpty)
        #expect(try run(Binaries.spool, ["upload", "--quiet", "--server", server.address, small]).status == 0)
        let created = try TusTests.request(
            "POST", server.httpBase + "/files/", TusTests.tus.merging(["Upload-Defer-Length": "1", "Upload-Metadata": TusTests.metadata([("filename", "later.bin")])]) { $1 })
        #expect(created.status == 201, "\(created)")
        let rows = try server.uploads()
        #expect(Set(rows.map(\.name)) == ["small.bin", "later.bin"])
        let admitted = Self.records(seen)
        #expect(admitted.count == 2, "\(admitted)")
        let line = try #require(admitted.first { $0["name"] as? String == "small.bin" })
        #expect(line["hook"] as? String == "pre-create" && line["size"] as? Int == 1000 && line["protocol"] as? String == "line")
        #expect((line["sha256"] as? String) == sha256Hex(pseudoRandomBytes(count: 1000, seed: 1)))
        #expect((line["client"] as? String)?.hasPrefix("127.0.0.1:") == true && line["token"] is NSNull)
        let deferred = try #require(admitted.first { $0["name"] as? String == "later.bin" })
        #expect(deferred["size"] is NSNull && deferred["sha256"] is NSNull && deferred["protocol"] as? String == "tus")
        #expect(server.count("upload refused by the pre-create hook") >= 10, "\(server.log())")
        try server.stop()
    }

    @Test func aPreCreateHookThatCannotRunRefuses() throws {
        let server = try Server(workers: 1, arguments: ["--hook", "pre-create=/nonexistent/check-upload"])
        let nc = try RawSession(port: server.port)
        // /bin/sh runs it and exits 127: a refusal, never an upload let in unchecked.
        let reply = try nc.ask("UPLOAD 10 \(Self.sha) a.txt")
        #expect(reply == ["553 refused by this server's pre-create hook (exit 127)"], "\(reply)")
        #expect(try server.uploads().isEmpty)
        try server.stop()
    }

    // MARK: - Notifications

    /// A post-finish (and post-delete) hook run by /bin/sh that counts its runs
    /// per event, fails the first `failing` of them, hangs while `<state>/hang`
    /// exists, and appends what it read to `<state>/delivered.jsonl`.
    struct Recorder {
        let state: TempDirectory
        var log: String { state.path + "/delivered.jsonl" }

        init(failing: Int = 0) throws {
            state = try TempDirectory()
            _ = writeFile(state.path + "/record.sh", Array("""
                runs=$(cat "\(state.path)/runs-$SPOOL_EVENT_SEQ" 2>/dev/null || echo 0)
                runs=$((runs + 1))
                echo "$runs" > "\(state.path)/runs-$SPOOL_EVENT_SEQ"
                if [ "$runs" -le \(failing) ]; then echo "not yet (run $runs)" >&2; exit 1; fi
                if [ -e "\(state.path)/hang" ]; then
                    echo "$SPOOL_EVENT_SEQ $$" > "\(state.path)/hanging"
                    sleep 60
                fi
                cat >> "\(log)"
                """.utf8))
        }

        var arguments: [String] {
            ["--hook", "post-finish=sh \(state.path)/record.sh", "--hook", "post-delete=sh \(state.path)/record.sh", "--hook-retry", "0.01s"]
        }

        var delivered: [[String: Any]] { HookTests.records(log) }

        func runs(ofEvent seq: Int) -> Int {
            Int(((try? String(contentsOfFile: state.path + "/runs-\(seq)", encoding: .utf8)) ?? "0").trimmingWhitespace()) ?? 0
        }
    }

    /// `count` small files of distinct bytes, uploaded by one client run; returns name → bytes.
    static func uploadMany(_ count: Int, to server: Server, seed: UInt64) throws -> [String: [UInt8]] {
        let dir = try TempDirectory()
        var files: [String: [UInt8]] = [:]
        for index in 0..<count {
            let name = "file-\(index).bin"
            files[name] = pseudoRandomBytes(count: 100 + index, seed: seed + UInt64(index))
            _ = writeFile(dir.path + "/" + name, files[name] ?? [])
        }
        let sent = try run(Binaries.spool, ["upload", "--quiet", "--recursive", "--server", server.address, dir.path], timeout: 300)
        guard sent.status == 0 else { throw HarnessError("upload failed: \(sent.stderr)") }
        return files
    }

    /// Every finished upload delivered once, with its fields; each upload's events in order.
    static func checkDeliveries(
        _ recorder: Recorder, files: [String: [UInt8]], deleted: Set<String>, server: Server, exactlyOnce: Bool
    ) throws {
        let delivered = recorder.delivered
        let finished = delivered.filter { $0["hook"] as? String == "post-finish" }
        var ids: [String: String] = [:]  // id → name
        for record in finished {
            let event = try #require(record["event"] as? [String: Any])
            let upload = try #require(record["upload"] as? [String: Any] ?? (deleted.contains(event["upload_id"] as? String ?? "") ? [:] : nil),
                                      "\(record)")
            #expect(event["kind"] as? String == "completed")
            // The client names a file under a directory by its path from there.
            guard let name = (upload["name"] as? String)?.split(separator: "/").last.map(String.init) else { continue }
            let bytes = try #require(files[name], "\(name)")
            #expect(upload["sha256"] as? String == sha256Hex(bytes) && upload["size"] as? Int == bytes.count && upload["state"] as? String == "complete")
            let path = try #require(record["path"] as? String)
            #expect(FileManager.default.contents(atPath: path) == Data(bytes), "the object the hook is told of holds the bytes")
            ids[event["upload_id"] as? String ?? ""] = name
        }
        let complete = try server.uploads().filter { $0.state == .complete }.map(\.id)
        #expect(Set(finished.compactMap { ($0["event"] as? [String: Any])?["upload_id"] as? String }) == Set(complete).union(deleted))
        if exactlyOnce { #expect(finished.count == files.count, "each finished upload exactly once") }
        #expect(Set(ids.values).count == files.count - deleted.count || !deleted.isEmpty)

        // In the log's order: seqs rise, so each upload's post-finish comes before its post-delete.
        let seqs = delivered.compactMap { ($0["event"] as? [String: Any])?["seq"] as? Int }
        #expect(seqs == seqs.sorted() && seqs.count == delivered.count, "delivered in the log's order")
        for id in deleted {
            let kinds = delivered.filter { ($0["event"] as? [String: Any])?["upload_id"] as? String == id }.map { $0["hook"] as? String ?? "" }
            #expect(kinds == ["post-finish", "post-delete"], "\(id): \(kinds)")
        }
    }

    @Test func fiveHundredFinishedUploadsAreDeliveredOnceEachInOrder() throws {
        let recorder = try Recorder()
        let server = try Server(workers: 2, arguments: recorder.arguments)
        let files = try Self.uploadMany(500, to: server, seed: 1000)
        let rows = try server.uploads()
        #expect(rows.count == 500 && rows.allSatisfy { $0.state == .complete })
        let deleted = Set(rows.prefix(5).map(\.id))
        let removal = try run(Binaries.spoold, ["admin", "delete", "--data-dir", server.directory.root] + deleted.sorted())
        #expect(removal.status == 0, "\(removal.stderr)")
        #expect(eventually(timeout: 120) { recorder.delivered.count >= 505 }, "\(recorder.delivered.count) delivered")
        try Self.checkDeliveries(recorder, files: files, deleted: deleted, server: server, exactlyOnce: true)

        // Nothing left behind, and an administrator can have a stretch delivered again.
        let ledger = try run(Binaries.spoold, ["admin", "hooks", "--json", "--data-dir", server.directory.root])
        let status = try #require(try JSONSerialization.jsonObject(with: Data(ledger.stdout.utf8)) as? [String: Any])
        #expect(status["pending"] as? Int == 0 && status["cursor"] as? Int == status["last_event"] as? Int, "\(ledger.stdout)")
        let lastThree = recorder.delivered.suffix(3).compactMap { ($0["event"] as? [String: Any])?["seq"] as? Int }
        let replay = try run(Binaries.spoold, ["admin", "hooks", "--replay-from", "\(lastThree[0])", "--data-dir", server.directory.root])
        #expect(replay.status == 0 && replay.stderr.contains("event \(lastThree[0]) is delivered next"), "\(replay.stderr)")
        #expect(eventually(timeout: 20) { recorder.delivered.count == 508 }, "\(recorder.delivered.count)")
        #expect(recorder.delivered.suffix(3).compactMap { ($0["event"] as? [String: Any])?["seq"] as? Int } == lastThree)
        try server.stop()
    }

    @Test func aFailingHookIsTriedAgainUntilItSucceeds() throws {
        let recorder = try Recorder(failing: 3)
        let server = try Server(workers: 2, arguments: recorder.arguments)
        let files = try Self.uploadMany(500, to: server, seed: 2000)
        #expect(eventually(timeout: 240) { recorder.delivered.count >= 500 }, "\(recorder.delivered.count) delivered")
        try Self.checkDeliveries(recorder, files: files, deleted: [], server: server, exactlyOnce: true)
        for record in recorder.delivered {
            let seq = try #require((record["event"] as? [String: Any])?["seq"] as? Int)
            #expect(recorder.runs(ofEvent: seq) == 4, "event \(seq): three failures, then success")
        }
        #expect(server.count("hook failed; trying again") == 1500, "\(server.count("hook failed; trying again"))")
        let ledger = try run(Binaries.spoold, ["admin", "hooks", "--data-dir", server.directory.root]).stdout
        #expect(ledger.contains("lag         none") && ledger.contains("post-finish  attempt 3  exit 1: not yet (run 3)"), "\(ledger)")
        let metrics = try HTTPTests.curl([server.httpBase + "/metrics"]).stdout
        for line in ["spool_hook_deliveries_total 500", "spool_hook_failures_total 1500", "spool_hook_lag_events 0", "spool_hook_lag_seconds 0"] {
            #expect(metrics.contains(line + "\n"), "\(line)")
        }
        try server.stop()
    }

    @Test func aDeliveryCutBySIGKILLIsMadeAgainAfterTheRestart() throws {
        let recorder = try Recorder()
        let data = try TempDirectory()
        var server = try Server(workers: 2, data: data, arguments: recorder.arguments)
        _ = try Self.uploadMany(20, to: server, seed: 3000)
        #expect(eventually(timeout: 60) { recorder.delivered.count == 20 })
        let hang = writeFile(recorder.state.path + "/hang", [])
        let files = try Self.uploadMany(10, to: server, seed: 4000)
        #expect(eventually(timeout: 30) { FileManager.default.fileExists(atPath: recorder.state.path + "/hanging") })
        let hanging = ((try? String(contentsOfFile: recorder.state.path + "/hanging", encoding: .utf8)) ?? "").split(separator: " ")
        let seq = try #require(Int(hanging.first ?? ""))
        let hookPID = try #require(Int32(hanging.last?.trimmingWhitespace() ?? ""))

        // The whole server at once: master, workers, dispatcher, and the hook it was running.
        let group = getpgid(hookPID)
        server.kill()
        kill(-group, SIGKILL)
        try FileManager.default.removeItem(atPath: hang)
        #expect(recorder.delivered.count == 20, "the cut delivery wrote nothing")

        server = try Server(workers: 2, data: data, arguments: recorder.arguments)
        #expect(eventually(timeout: 60) { recorder.delivered.count >= 30 }, "\(recorder.delivered.count) delivered")
        #expect(recorder.runs(ofEvent: seq) == 2, "the event being delivered at the kill ran again")
        let seqs = recorder.delivered.compactMap { ($0["event"] as? [String: Any])?["seq"] as? Int }
        #expect(seqs.contains(seq) && seqs == seqs.sorted() && Set(seqs).count == 30, "nothing skipped, nothing twice in the log: \(seqs)")
        let names = Set(recorder.delivered.suffix(10).compactMap {
            (($0["upload"] as? [String: Any])?["name"] as? String)?.split(separator: "/").last.map(String.init)
        })
        #expect(names == Set(files.keys))
        try server.stop()
    }

    @Test func failuresAndExpiriesReachTheirHooksAndHUPChangesTheHooks() throws {
        let recorder = try Recorder()
        let config = recorder.state.path + "/spoold.conf"
        let hook = { (name: String) in "hook = \"\(name)=sh \(recorder.state.path)/record.sh\"\n" }
        _ = writeFile(config, Array(("partial-ttl = 2s\nhook-retry = 0.01s\n" + hook("post-fail") + hook("post-expire")).utf8))
        let server = try Server(workers: 1, arguments: ["--config", config])

        // A checksum mismatch fails its upload; an upload cut short and never resumed expires.
        let nc = try RawSession(port: server.port)
        #expect(code(try nc.ask("UPLOAD 3 \(sha256Hex(Array("xyz".utf8))) wrong.bin").first) == 150)
        try nc.send("abc")
        #expect(code(try nc.readReply().first) == 554)
        do {
            let cut = try RawSession(port: server.port)
            #expect(code(try cut.ask("UPLOAD 10 \(Self.sha) cut.bin").first) == 150)
            try cut.send("abc")
        }  // closed here: the upload is interrupted, then expires after the 2 s TTL
        let files = try TempDirectory()
        let before = writeFile(files.path + "/before-hup.txt", Array("before".utf8))
        #expect(try run(Binaries.spool, ["upload", "--quiet", "--server", server.address, before]).status == 0)
        #expect(eventually(timeout: 30) { recorder.delivered.count == 2 }, "\(recorder.delivered)")
        let kinds = recorder.delivered.map { ($0["hook"] as? String ?? "", ($0["event"] as? [String: Any])?["kind"] as? String ?? "") }
        #expect(kinds.map(\.0) == ["post-fail", "post-expire"] && kinds.map(\.1) == ["failed", "expired"], "\(kinds)")
        let failed = try #require(recorder.delivered.first?["upload"] as? [String: Any])
        #expect(failed["name"] as? String == "wrong.bin" && failed["state"] as? String == "failed" && (failed["error"] as? String)?.contains("mismatch") == true)

        // HUP: a post-finish hook added to the file is delivered from then on (the upload before it had none).
        _ = writeFile(config, Array(("partial-ttl = 2s\nhook-retry = 0.01s\n" + hook("post-fail") + hook("post-expire") + hook("post-finish")).utf8))
        server.signal(SIGHUP)
        #expect(eventually(timeout: 20) { server.count("setting reloaded key=hook ") == 1 }, "\(server.log())")
        let after = writeFile(files.path + "/after-hup.txt", Array("after".utf8))
        #expect(try run(Binaries.spool, ["upload", "--quiet", "--server", server.address, after]).status == 0)
        #expect(eventually(timeout: 30) { recorder.delivered.count == 3 }, "\(recorder.delivered)")
        let finished = try #require(recorder.delivered.last?["upload"] as? [String: Any])
        #expect(finished["name"] as? String == "after-hup.txt" && recorder.delivered.last?["hook"] as? String == "post-finish")
        try server.stop()
    }

    @Test func aUSR2UpgradeHandsTheDeliveriesOverWithoutATwoDispatcherOverlap() throws {
        let recorder = try Recorder()
        let bin = try TempDirectory()
        let spoold = bin.path + "/spoold"
        try UpgradeTests.install(Binaries.spoold, at: spoold)
        let server = try Server(workers: 1, arguments: recorder.arguments, executable: spoold)
        defer { UpgradeTests.killMaster(server) }
        _ = try Self.uploadMany(20, to: server, seed: 5000)
        #expect(eventually(timeout: 60) { recorder.delivered.count == 20 })

        kill(server.pid, SIGUSR2)
        #expect(eventually(timeout: 60) { UpgradeTests.pidFile(server).map { $0 != server.pid } == true && !server.process.isRunning },
                "\(server.log())")
        // The new master's dispatcher started while the old one's still held the lock, and waited.
        #expect(server.count("hook dispatcher waiting for another to finish") == 1, "\(server.log())")
        _ = try Self.uploadMany(20, to: server, seed: 6000)
        #expect(eventually(timeout: 60) { recorder.delivered.count >= 40 }, "\(recorder.delivered.count)")
        let seqs = recorder.delivered.compactMap { ($0["event"] as? [String: Any])?["seq"] as? Int }
        #expect(seqs.count == 40 && Set(seqs).count == 40 && seqs == seqs.sorted(), "each once, in order: \(seqs)")
        let master = try #require(UpgradeTests.pidFile(server))
        kill(master, SIGTERM)
        #expect(eventually(timeout: 20) { !Processes.isAlive(master) })
    }

    // MARK: - The documentation's example, and the pool's bound

    @Test func theWorkedExampleMovesFinishedFilesToTheInbox() throws {
        let dir = try TempDirectory()
        let server = try Server(workers: 1, arguments: ["--hook-dir", dir.path + "/hooks"])
        let docs = try String(contentsOfFile: Binaries.repository + "/docs/HOOKS.md", encoding: .utf8)
        let example = try #require(docs.components(separatedBy: "<!-- example: post-finish begin -->").last?
            .components(separatedBy: "<!-- example: post-finish end -->").first)
        let script = example.split(separator: "\n", omittingEmptySubsequences: false).filter { !$0.hasPrefix("```") }.joined(separator: "\n")
            .replacingOccurrences(of: "/srv/inbox", with: dir.path + "/inbox")
            .replacingOccurrences(of: "/var/lib/spool", with: server.directory.root)
            .replacingOccurrences(of: "spoold admin", with: Binaries.spoold + " admin")
        #expect(script.hasPrefix("\n#!/bin/sh") || script.hasPrefix("#!/bin/sh"), "\(script)")
        try FileManager.default.createDirectory(atPath: dir.path + "/hooks", withIntermediateDirectories: true)
        try Self.installExecutable(script.trimmingWhitespace() + "\n", at: dir.path + "/hooks/post-finish")

        let files = try TempDirectory()
        try FileManager.default.createDirectory(atPath: files.path + "/photos/2026", withIntermediateDirectories: true)
        let contents: [String: [UInt8]] = [
            "photos/2026/beach.jpg": pseudoRandomBytes(count: 300_000, seed: 5), "photos/notes.txt": Array("hello\n".utf8),
        ]
        for (name, bytes) in contents { _ = writeFile(files.path + "/" + name, bytes) }
        let sent = try run(Binaries.spool, ["upload", "--quiet", "--recursive", "--server", server.address, files.path + "/photos"])
        #expect(sent.status == 0, "\(sent.stderr)")
        // In the inbox under their names, and gone from Spool.
        #expect(eventually(timeout: 30) { (try? server.uploads().isEmpty) == true }, "\(server.log())")
        for (name, bytes) in contents {
            #expect(FileManager.default.contents(atPath: dir.path + "/inbox/" + name) == Data(bytes), "\(name)")
        }
        let left = try FileManager.default.subpathsOfDirectory(atPath: dir.path + "/inbox").filter { $0.hasSuffix(".part") }
        #expect(left.isEmpty, "no temporary copy left: \(left)")
        try server.stop()
        let audit = try run(Binaries.spoold, ["admin", "audit", "--data-dir", server.directory.root])
        #expect(audit.status == 0, "\(audit.stdout)")
    }

    @Test func aWorkerRunsAtMostFourPreCreateHooksAtOnce() throws {
        let state = try TempDirectory()
        // Each run counts the runs under way (a file each) and keeps the highest count seen.
        _ = writeFile(state.path + "/gate.sh", Array("""
            touch "\(state.path)/running.$$"
            ls "\(state.path)" | grep -c '^running\\.' >> "\(state.path)/seen"
            sleep 0.5
            rm "\(state.path)/running.$$"
            """.utf8))
        let server = try Server(workers: 1, arguments: ["--hook", "pre-create=sh \(state.path)/gate.sh"])
        // Twelve clients announce an upload at once: twelve hooks to run in one worker.
        let sessions = try (0..<12).map { _ in try RawSession(port: server.port) }
        for (index, nc) in sessions.enumerated() { try nc.send("UPLOAD 10 \(Self.sha) f\(index)\r\n") }
        for nc in sessions { #expect(code(try nc.readReply().first) == 150) }
        let seen = ((try? String(contentsOfFile: state.path + "/seen", encoding: .utf8)) ?? "").split(separator: "\n").compactMap { Int($0) }
        #expect(seen.count == 12 && seen.max() == 4, "at most 4 at once, and 4 reached: \(seen)")
        try server.stop()
    }
}
