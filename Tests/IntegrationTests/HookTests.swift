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
}
