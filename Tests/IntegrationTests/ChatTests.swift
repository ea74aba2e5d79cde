import Foundation
import SpoolTestSupport
import SpoolProtocol
import Testing

/// The chat channel, as people and programs use it.
@Suite struct ChatTests {
    @Test func eachCommandGetsItsDocumentedReply() throws {
        let server = try Server(workers: 1)
        let dir = try TempDirectory()
        let file = writeFile(dir.path + "/report 2026.pdf", pseudoRandomBytes(count: 5000, seed: 50))
        let upload = try run(Binaries.spool, ["upload", "--quiet", "--server", server.address, file])
        let id = String(upload.stdout.prefix(26))
        let sha = sha256Hex(try Data(contentsOf: URL(fileURLWithPath: file)))
        let nc = try RawSession(port: server.port)
        #expect(nc.greetingText.hasPrefix("220 spool/"))

        #expect(try nc.ask("PING") == ["200 pong"])
        let help = try nc.ask("help")
        #expect(help.first == "214-commands:" && help.last == "214 end of help")
        for command in ["STATUS", "FIND", "LIST", "WATCH", "STATS", "UPLOAD", "RESUME", "QUIT"] {
            #expect(help.contains { $0.hasPrefix("214-\(command) ") }, "HELP lists \(command)")
            #expect(code(try nc.ask("HELP \(command.lowercased())").first) == 214)
        }

        let status = try #require(try nc.ask("status \(id)").first)
        #expect(status.hasPrefix("211 id=\(id) state=complete name=report%202026.pdf received=5000 size=5000 percent=100.0 rate=- sha256=\(sha) client=127.0.0.1:"))
        #expect(code(try nc.ask("STATUS 01ZZZZZZZZZZZZZZZZZZZZZZZZ").first) == 550)
        #expect(code(try nc.ask("STATUS nope").first) == 501)

        let list = try nc.ask("LIST")
        #expect(list == ["212-\(id) complete 5000/5000 100.0% \(sha.prefix(12)) report%202026.pdf", "212 1 upload"])
        let json = try nc.ask("LIST 5 --json")
        #expect(json.count == 2 && json[0].hasPrefix("212-{") && json[0].contains("\"id\":\"\(id)\""))
        #expect(code(try nc.ask("LIST 0").first) == 501)
        #expect(code(try nc.ask("LIST lots").first) == 501)

        #expect(try nc.ask("FIND 2026").first?.hasPrefix("212-\(id) ") == true)
        // As typed, and as every reply shows it (percent-encoded): both find the upload.
        #expect(try nc.ask("FIND report 2026").first?.hasPrefix("212-\(id) ") == true)
        #expect(try nc.ask("FIND report%202026").first?.hasPrefix("212-\(id) ") == true)
        #expect(try nc.ask("FIND REPORT%20").first?.hasPrefix("212-\(id) ") == true)
        #expect(try nc.ask("FIND \(sha.prefix(8))").first?.hasPrefix("212-\(id) ") == true)
        #expect(try nc.ask("FIND no such thing") == ["212 0 uploads"])
        #expect(code(try nc.ask("FIND").first) == 501)

        let stats = try #require(try nc.ask("STATS").first)
        #expect(stats.hasPrefix("213 workers=1 connections=1 in_flight=0 completed_today=1 bytes_stored=5000 uploads=1"), "\(stats)")

        // WATCH of an upload that is over: one final line.
        #expect(try nc.ask("WATCH \(id)").first?.hasPrefix("211 id=\(id) state=complete") == true)
        #expect(code(try nc.ask("WATCH 01ZZZZZZZZZZZZZZZZZZZZZZZZ").first) == 550)

        #expect(try nc.ask("STAUTS \(id)") == ["500 unknown command \"STAUTS\"; did you mean STATS? try HELP"])
        #expect(try nc.ask("lsit") == ["500 unknown command \"lsit\"; did you mean LIST? try HELP"])
        #expect(try nc.ask("XYZZY") == ["500 unknown command \"XYZZY\"; try HELP"])
        #expect(try nc.ask("QUIT") == ["221 bye"])
        try server.stop()
    }

    @Test func watchFollowsAnUploadStreamingThroughAnotherWorker() throws {
        let server = try Server(workers: 2)
        let upload = try PartialUpload(server: server, size: 2_000_000)
        var watcher = try RawSession(port: server.port)
        for _ in 0..<20 where watcher.worker == String(upload.worker) {
            watcher = try RawSession(port: server.port)
        }
        #expect(watcher.worker != String(upload.worker), "the watcher is served by the other worker")

        try watcher.send("WATCH \(upload.id)\n")
        var seen: [Int] = []
        var final = ""
        for step in 1...8 {
            try upload.send(200_000, directory: server.directory)
            // Each push comes at least every 500 ms.
            let line = try watcher.readLine()
            #expect(line.hasPrefix("211-id=\(upload.id) state=receiving"), "\(line)")
            if let received = line.components(separatedBy: " received=").last?.split(separator: " ").first.flatMap({ Int($0) }) {
                seen.append(received)
            }
            _ = step
        }
        try upload.sendRest()
        #expect(try upload.connection.readReply().code == .stored)
        while true {
            let line = try watcher.readLine()
            if line.hasPrefix("211 ") {
                final = line
                break
            }
        }
        #expect(seen == seen.sorted(), "byte counts never go back: \(seen)")
        #expect(Set(seen).count >= 3, "progress was seen moving: \(seen)")
        #expect(final.hasPrefix("211 id=\(upload.id) state=complete") && final.contains("received=2000000"))
        try server.stop()
    }

    /// A watch of an upload that does not move ends after the idle time, as an idle
    /// connection would (the uploader's own stall limit is much longer).
    @Test func aWatchOfNothingMovingEnds() throws {
        let server = try Server(workers: 1, arguments: ["--idle-timeout", "2s"])
        let upload = try PartialUpload(server: server, size: 1_000_000)
        try upload.send(100_000, directory: server.directory)
        let watcher = try RawSession(port: server.port)
        try watcher.send("WATCH \(upload.id)\n")
        let started = Date()
        var final = ""
        while final.isEmpty, Date().timeIntervalSince(started) < 15 {
            let line = try watcher.readLine()
            if line.hasPrefix("211 ") { final = line }
        }
        #expect(final.hasPrefix("211 id=\(upload.id) state=receiving") && final.contains("received=100000"), "\(final)")
        try server.stop()
    }

    @Test func anyLineStopsAWatch() throws {
        let server = try Server(workers: 1)
        let upload = try PartialUpload(server: server, size: 1_000_000)
        try upload.send(1000, directory: server.directory)
        let nc = try RawSession(port: server.port)
        try nc.send("WATCH \(upload.id)\n")
        #expect(try nc.readLine().hasPrefix("211-id=\(upload.id)"))
        try nc.send("PING\n")
        var line = try nc.readLine()
        while line.hasPrefix("211-") { line = try nc.readLine() }
        #expect(line.hasPrefix("211 id=\(upload.id) state=receiving"))
        #expect(try nc.readLine() == "200 pong")
        try server.stop()
    }

    @Test func spoolStatusAndWatchExitCodes() throws {
        let server = try Server(workers: 1)
        let dir = try TempDirectory()
        let file = writeFile(dir.path + "/done.txt", Array("done\n".utf8))
        let id = String(try run(Binaries.spool, ["upload", "--quiet", "--server", server.address, file]).stdout.prefix(26))

        let byId = try run(Binaries.spool, ["status", "--server", server.address, id])
        #expect(byId.status == 0 && byId.stdout.contains("state     complete"), "\(byId.stdout)\(byId.stderr)")
        let byName = try run(Binaries.spool, ["status", "--server", server.address, "done.txt"])
        #expect(byName.status == 0 && byName.stdout.contains(id))
        #expect(try run(Binaries.spool, ["status", "--server", server.address, "never.txt"]).status == 4)

        let partial = try PartialUpload(server: server, size: 10_000)
        try partial.send(10, directory: server.directory)
        #expect(try run(Binaries.spool, ["status", "--server", server.address, partial.id]).status == 3)
        partial.connection.close()

        let liar = try PartialUpload(server: server, size: 10, name: "liar", seed: 1)
        let bad = try run(Binaries.spool, ["status", "--server", server.address, liar.id])
        #expect(bad.status == 3, "receiving")
        try liar.connection.send(bytes: Array(repeating: 0, count: 10))  // not what was declared
        #expect(try liar.connection.readReply().code == .checksumMismatch)
        #expect(try run(Binaries.spool, ["status", "--server", server.address, liar.id]).status == 2)
        #expect(try run(Binaries.spool, ["watch", "--server", server.address, liar.id]).status == 2)
        #expect(try run(Binaries.spool, ["watch", "--server", server.address, id]).status == 0)
        try server.stop()
    }

    @Test func spoolChatThroughAPipe() throws {
        let server = try Server(workers: 1)
        let result = try run(Binaries.spool, ["chat", "--server", server.address],
                             stdin: "PING\nHELP PING\nSTATS\nLIST\n")
        #expect(result.status == 0, "\(result.stderr)")
        let lines = result.stdout.split(separator: "\n").map(String.init)
        #expect(lines.first?.hasPrefix("220 spool/") == true)
        #expect(lines.contains("200 pong"))
        #expect(lines.contains { $0.hasPrefix("214 PING") })
        #expect(lines.contains { $0.hasPrefix("213 workers=1") })
        #expect(lines.contains("212 0 uploads"))
        #expect(lines.last == "221 bye", "end of input says goodbye: \(lines)")
        #expect(!result.stdout.contains("spool> "), "no prompt when not on a terminal")
        try server.stop()
    }

    @Test func spoolChatOnATerminal() throws {
        let server = try Server(workers: 1)
        let terminal = try PseudoTerminal()
        let process = Process()
        process.executableURL = URL(fileURLWithPath: Binaries.spool)
        process.arguments = ["chat", "--server", server.address]
        process.standardInput = terminal.follower
        process.standardOutput = terminal.follower
        process.standardError = terminal.follower
        try process.run()
        #expect(try terminal.read(until: "spool> ").contains("220 spool/"))
        try terminal.type("ping\n")
        #expect(try terminal.read(until: "200 pong").contains("200 pong"))
        try terminal.type("QUIT\n")
        #expect(try terminal.read(until: "221 bye").contains("221 bye"))
        #expect(eventually(timeout: 10) { !process.isRunning })
        #expect(process.terminationStatus == 0)
        try server.stop()
    }
}
