import Foundation
import SpoolProtocol
import SpoolTestSupport
import Testing

/// Every refusal of an upload reaches the client at once, with its own code and
/// reason: for a small file and a large one, in every protocol version, with the
/// checksum before or after the body, through a raw session and through `spool`.
/// The connection stays usable, and the server keeps no row for what it refused.
///
/// "At once" is asserted as under 5 s: the servers keep their default stall
/// timeout (2 minutes), which a client and a server waiting for each other would
/// have to sit out.
@Suite struct RefusalTests {
    static let small = 100_000
    static let large = 2 << 20
    static let limit = 5.0

    /// How a raw session sends an UPLOAD: the protocol version it agreed, and
    /// whether it marks the line `--at-once` (protocol 3).
    struct Mode: CustomStringConvertible {
        let version: Int
        let marked: Bool
        /// Protocol 2 sends every body at once; protocol 3 only a marked one.
        var bodyFollows: Bool { marked || version == 2 }
        var description: String { "protocol \(version)\(marked ? " --at-once" : "")" }

        static let all = [Mode(version: 1, marked: false), Mode(version: 2, marked: false),
                          Mode(version: 3, marked: false), Mode(version: 3, marked: true)]
    }

    /// One refusal to provoke: the code and words expected, and how.
    struct Case {
        let code: Int
        let words: String
        var name = "file.bin"
        var token: String?
    }

    // MARK: - Raw sessions

    static func session(_ server: Server, _ mode: Mode, token: String? = nil) throws -> RawSession {
        let nc = try RawSession(port: server.port)
        if mode.version > 1 { #expect(code(try nc.ask("HELLO \(mode.version)").first) == 200) }
        if let token { #expect(code(try nc.ask("AUTH \(token)").first) == 235) }
        return nc
    }

    /// Sends one UPLOAD as `mode` says (the body and its DIGEST line only if they
    /// follow at once) and returns the reply's lines and how long it took.
    static func upload(_ nc: RawSession, _ mode: Mode, size: Int, digestAfter: Bool, name: String) throws -> ([String], Double) {
        let body = pseudoRandomBytes(count: size, seed: UInt64(size))
        let sha = sha256Hex(body)
        let started = Date()
        try nc.send("UPLOAD \(size) \(digestAfter ? "-" : sha) \(PercentCoding.encode(name))\(mode.marked ? " --at-once" : "")\n")
        if mode.bodyFollows {
            try nc.send(bytes: body)
            if digestAfter { try nc.send("DIGEST \(sha)\n") }
        }
        let reply = try nc.readReply()
        return (reply, Date().timeIntervalSince(started))
    }

    /// Each case × small and large × checksum before and after, in `mode`, on one
    /// connection: every refusal as expected and prompt, and a PING after each answered.
    static func refusals(_ server: Server, _ cases: [Case], _ mode: Mode) throws {
        for refusal in cases {
            let nc = try session(server, mode, token: refusal.token)
            for size in [small, large] {
                for digestAfter in [false, true] {
                    let (reply, seconds) = try upload(nc, mode, size: size, digestAfter: digestAfter, name: refusal.name)
                    let what = "\(mode), \(size) bytes, checksum \(digestAfter ? "after" : "first")"
                    #expect(reply.count == 1 && code(reply.first) == refusal.code && reply[0].contains(refusal.words),
                            "\(what): \(reply)")
                    #expect(seconds < limit, "\(what): \(seconds) s")
                    #expect(try nc.ask("PING") == ["200 pong"], "\(what): the connection is in step")
                }
            }
        }
    }

    /// The next upload on a connection that had one refused is stored.
    static func storesTheNextUpload(_ server: Server, _ mode: Mode, token: String? = nil) throws {
        let nc = try session(server, mode, token: token)
        _ = try upload(nc, mode, size: large, digestAfter: false, name: "refused.bin")
        for digestAfter in [false, true] {
            let body = pseudoRandomBytes(count: 1000, seed: 9)
            let line = "UPLOAD 1000 \(digestAfter ? "-" : sha256Hex(body)) fits.bin\(mode.marked ? " --at-once" : "")\n"
            var message = Array(line.utf8)
            if mode.bodyFollows { message += body }
            try nc.send(bytes: message)
            if !mode.bodyFollows {
                #expect(code(try nc.readReply().first) == 150, "\(mode)")
                try nc.send(bytes: body)
            }
            if digestAfter { try nc.send("DIGEST \(sha256Hex(body))\n") }
            if mode.bodyFollows { #expect(code(try nc.readReply().first) == 150, "\(mode)") }
            #expect(code(try nc.readReply().first) == 250, "\(mode)")
        }
    }

    // MARK: - spool

    /// `spool upload` of a small and a large file, in each protocol version, with the
    /// checksum first and after: each fails at once, saying why, without retrying.
    static func spoolIsRefused(_ server: Server, _ refusal: Case, files: TempDirectory, extra: [String] = []) throws {
        for size in [small, large] {
            let file = writeFile(files.path + "/\(size)-" + refusal.name, pseudoRandomBytes(count: size, seed: UInt64(size)))
            for version in 1...ProtocolInfo.version {
                for checksum in ["first", "after"] {
                    let started = Date()
                    let result = try run(Binaries.spool, ["upload", "--quiet", "--protocol", "\(version)", "--checksum", checksum,
                                                          "--server", server.address] + extra + [file])
                    let seconds = Date().timeIntervalSince(started)
                    let what = "spool, protocol \(version), \(size) bytes, checksum \(checksum): \(result.stderr)"
                    #expect(result.status == 1 && result.stderr.contains("\(refusal.code) ") && result.stderr.contains(refusal.words), "\(what)")
                    #expect(!result.stderr.contains("retrying"), "a permanent refusal is not retried: \(what)")
                    #expect(seconds < limit, "\(what) took \(seconds) s")
                }
            }
        }
    }

    /// No row for anything refused: only the uploads that were stored.
    static func onlyStoredRows(_ server: Server, count: Int) throws {
        let rows = try server.uploads()
        #expect(rows.count == count && rows.allSatisfy { $0.state == .complete }, "\(rows.map(\.state))")
    }

    // MARK: - The refusals

    @Test func sizeLimitAndBadNames() throws {
        let server = try Server(workers: 1, arguments: ["--max-file-size", "64K"])
        let tooLarge = Case(code: 552, words: "over this server's limit of 65536 bytes")
        let badName = Case(code: 501, words: "name contains control characters", name: "bad\u{1}name.bin")
        for mode in Mode.all {
            try Self.refusals(server, [tooLarge, badName], mode)
            try Self.storesTheNextUpload(server, mode)
        }
        let files = try TempDirectory()
        try Self.spoolIsRefused(server, tooLarge, files: files)
        try Self.spoolIsRefused(server, badName, files: files)
        // After a refusal, the next file is stored, whatever the protocol.
        let fits = writeFile(files.path + "/fits.bin", pseudoRandomBytes(count: 1000, seed: 10))
        for version in 1...ProtocolInfo.version {
            let started = Date()
            let result = try run(Binaries.spool, ["upload", "--quiet", "--protocol", "\(version)", "--server", server.address,
                                                  files.path + "/\(Self.large)-file.bin", fits])
            #expect(result.status == 1 && result.stdout.hasSuffix(" \(fits)\n"), "protocol \(version): \(result.stderr)")
            #expect(Date().timeIntervalSince(started) < Self.limit)
        }
        try Self.onlyStoredRows(server, count: Mode.all.count * 2 + ProtocolInfo.version)
        try server.stop()
    }

    @Test func notEnoughSpace() throws {
        let server = try Server(workers: 1, arguments: ["--min-free", "1000000T"])
        let noSpace = Case(code: 452, words: "not enough space")
        for mode in Mode.all { try Self.refusals(server, [noSpace], mode) }
        let files = try TempDirectory()
        let file = writeFile(files.path + "/f.bin", pseudoRandomBytes(count: Self.large, seed: 11))
        for version in 1...ProtocolInfo.version {
            // A 4xx is retried exactly as --retries says, and then reported.
            for retries in [0, 2] {
                let started = Date()
                let result = try run(Binaries.spool, ["upload", "--quiet", "--retries", "\(retries)", "--protocol", "\(version)",
                                                      "--server", server.address, file])
                let notices = result.stderr.components(separatedBy: "retrying in").count - 1
                #expect(result.status == 1 && notices == retries && result.stderr.contains("452 not enough space"),
                        "protocol \(version): \(result.stderr)")
                #expect(Date().timeIntervalSince(started) < Self.limit)
            }
        }
        try Self.onlyStoredRows(server, count: 0)
        try server.stop()
    }

    @Test func authenticationAndQuotas() throws {
        let server = try Server(workers: 1)
        let secret = try server.createToken(["--name", "alice", "--quota-bytes", "10K"])
        #expect(server.waitForAuthRequired())
        let anonymous = Case(code: 530, words: "authenticate first")
        let overQuota = Case(code: 552, words: "quota exceeded", token: secret)
        for mode in Mode.all {
            try Self.refusals(server, [anonymous, overQuota], mode)
            let nc = try Self.session(server, mode)
            let started = Date()
            #expect(try nc.ask("AUTH spool_wrong") == ["535 authentication failed"])
            #expect(Date().timeIntervalSince(started) < Self.limit)
            try Self.storesTheNextUpload(server, mode, token: secret)
        }
        let files = try TempDirectory()
        try Self.spoolIsRefused(server, anonymous, files: files)
        try Self.spoolIsRefused(server, overQuota, files: files, extra: ["--token", secret])
        try Self.spoolIsRefused(server, Case(code: 535, words: "authentication failed"), files: files, extra: ["--token", "spool_wrong"])
        try Self.onlyStoredRows(server, count: Mode.all.count * 2)
        try server.stop()
    }

    /// RESUME's refusals: `550` (no such upload for this checksum) and `450` (another
    /// connection is writing it) come at once in every version, and the connection goes on.
    @Test func resumeRefusals() throws {
        let server = try Server(workers: 1)
        let body = pseudoRandomBytes(count: Self.large, seed: 12)
        let writer = try Self.session(server, Mode(version: 1, marked: false))
        try writer.send("UPLOAD \(body.count) \(sha256Hex(body)) held.bin\n")
        let ready = try #require(try writer.readReply().first)
        let id = try #require(ready.split(separator: " ").first { $0.hasPrefix("id=") }?.dropFirst(3))
        try writer.send(bytes: Array(body[0..<1000]))
        for mode in Mode.all where !mode.marked {
            let nc = try Self.session(server, mode)
            for (line, expected) in [("RESUME \(id) \(sha256Hex(body))", 450), ("RESUME 01ZZZZZZZZZZZZZZZZZZZZZZZZ \(sha256Hex(body))", 550),
                                     ("RESUME \(id) \(sha256Hex([1]))", 550)] {
                let started = Date()
                let reply = try nc.ask(line)
                #expect(code(reply.first) == expected, "\(mode): \(line): \(reply)")
                #expect(Date().timeIntervalSince(started) < Self.limit)
                #expect(try nc.ask("PING") == ["200 pong"])
            }
        }
        withExtendedLifetime(writer) {}
        try server.stop()
    }
}
