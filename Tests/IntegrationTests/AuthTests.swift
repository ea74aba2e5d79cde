import Foundation
import SpoolTestSupport
import SpoolClient
import SpoolProtocol
import SpoolStore
import Testing

/// Tokens: who may upload, who sees what.
@Suite struct AuthTests {
    @Test func tokensAreCreatedListedAndRevokedAndOnlyTheirHashIsKept() throws {
        let server = try Server(workers: 1)
        let secret = try server.createToken(["--name", "alice", "--quota-files", "2", "--quota-bytes", "10K"])
        #expect(secret.hasPrefix("spool_") && secret.count == 70)
        let list = try run(Binaries.spoold, ["admin", "token", "list", "--json", "--data-dir", server.directory.root])
        let tokens = try JSONDecoder().decode([TokenRecord].self, from: Data(list.stdout.utf8))
        #expect(tokens.map(\.name) == ["alice"] && tokens[0].quotaFiles == 2 && tokens[0].quotaBytes == 10240)
        #expect(!list.stdout.contains(secret))
        let database = try Data(contentsOf: URL(fileURLWithPath: server.directory.databasePath))
            + ((try? Data(contentsOf: URL(fileURLWithPath: server.directory.databasePath + "-wal"))) ?? Data())
        #expect(database.range(of: Data(secret.utf8)) == nil, "the secret is never stored")
        #expect(try run(Binaries.spoold, ["admin", "token", "create", "--name", "alice", "--data-dir", server.directory.root]).status == 2)
        #expect(try run(Binaries.spoold, ["admin", "token", "revoke", "alice", "--data-dir", server.directory.root]).stdout == "revoked alice\n")
        #expect(try run(Binaries.spoold, ["admin", "token", "revoke", "alice", "--data-dir", server.directory.root]).status == 2)
        try server.stop()
    }

    @Test func onceATokenExistsEveryClientMustAuthenticate() throws {
        let server = try Server(workers: 2)
        let secret = try server.createToken(["--name", "alice"])
        #expect(server.waitForAuthRequired())
        let nc = try RawSession(port: server.port)
        #expect(try nc.ask("PING") == ["200 pong"])
        #expect(try nc.ask("UPLOAD 1 \(String(repeating: "0", count: 64)) x") == ["530 authenticate first: AUTH <token>"])

        // A wrong token is answered slowly, and the third closes the connection.
        let started = Date()
        #expect(try nc.ask("AUTH spool_wrong") == ["535 authentication failed"])
        #expect(Date().timeIntervalSince(started) >= 0.5)
        #expect(try nc.ask("AUTH also-wrong") == ["535 authentication failed"])
        #expect(try nc.ask("AUTH still-wrong") == ["535 authentication failed"])
        #expect(try nc.readLine() == "421 too many failed attempts; closing")
        #expect(server.log().contains("authentication failed"))

        let ok = try RawSession(port: server.port)
        #expect(try ok.ask("AUTH \(secret)") == ["235 authenticated as alice"])
        #expect(code(try ok.ask("LIST").last) == 212)
        // STATS counts everyone's uploads: an admin's question only.
        #expect(try ok.ask("STATS") == ["530 STATS counts every token's uploads: AUTH with an admin token"])
        let root = try server.createToken(["--name", "root", "--admin"])
        let admin = try RawSession(port: server.port)
        #expect(try admin.ask("AUTH \(root)") == ["235 authenticated as root (admin)"])
        #expect(code(try admin.ask("STATS").first) == 213)

        // The client: --token, or SPOOL_TOKEN.
        let dir = try TempDirectory()
        let file = writeFile(dir.path + "/mine.txt", Array("mine\n".utf8))
        let anonymous = try run(Binaries.spool, ["upload", "--quiet", "--retries", "0", "--server", server.address, file])
        #expect(anonymous.status == 1 && anonymous.stderr.contains("530"), "\(anonymous.stderr)")
        #expect(try run(Binaries.spool, ["upload", "--quiet", "--token", secret, "--server", server.address, file]).status == 0)
        #expect(try run(Binaries.spool, ["upload", "--quiet", "--server", server.address, file],
                        environment: ["SPOOL_TOKEN": secret]).status == 0)
        let tokens = try server.uploads().map(\.token)
        #expect(tokens == ["alice", "alice"], "\(tokens)")
        try server.stop()
    }

    @Test func aTokenSeesOnlyItsOwnUploadsUnlessAdmin() throws {
        let server = try Server(workers: 1)
        let alice = try server.createToken(["--name", "alice"])
        let bob = try server.createToken(["--name", "bob"])
        let root = try server.createToken(["--name", "root", "--admin"])
        #expect(server.waitForAuthRequired())
        let dir = try TempDirectory()
        let file = writeFile(dir.path + "/alice.txt", Array("alice's\n".utf8))
        let id = String(try run(Binaries.spool, ["upload", "--quiet", "--token", alice, "--server", server.address, file]).stdout.prefix(26))

        let asBob = try RawSession(port: server.port)
        #expect(try asBob.ask("AUTH \(bob)") == ["235 authenticated as bob"])
        #expect(code(try asBob.ask("STATUS \(id)").first) == 550)
        #expect(try asBob.ask("LIST") == ["212 0 uploads"])
        #expect(try asBob.ask("FIND alice") == ["212 0 uploads"])
        let asRoot = try RawSession(port: server.port)
        #expect(try asRoot.ask("AUTH \(root)") == ["235 authenticated as root (admin)"])
        #expect(code(try asRoot.ask("STATUS \(id)").first) == 211)
        #expect(try asRoot.ask("LIST").count == 2)

        // Resuming is for the token that started the upload.
        let partial = try Connection(server: server.address, token: alice)
        let bytes = pseudoRandomBytes(count: 10_000, seed: 4)
        try partial.send(line: UploadRequest(name: "p", size: 10_000, sha256: sha256Hex(bytes)).line)
        let pid = try #require(try partial.readReply().fields["id"])
        partial.close()
        #expect(try eventually { try server.upload(id: pid)?.state == .interrupted })
        #expect(code(try asBob.ask("RESUME \(pid) \(sha256Hex(bytes))").first) == 550)
        let again = try Connection(server: server.address, token: alice)
        try again.send(line: "RESUME \(pid) \(sha256Hex(bytes))")
        #expect(try again.readReply().code == .sendBody)
        try server.stop()
    }

    @Test func quotasAreCheckedAtDeclarationCountingUploadsInFlight() throws {
        let server = try Server(workers: 1)
        let secret = try server.createToken(["--name", "small", "--quota-bytes", "10K", "--quota-files", "3"])
        #expect(server.waitForAuthRequired())
        let connection = try Connection(server: server.address, token: secret)
        let six = pseudoRandomBytes(count: 6 * 1024, seed: 6)
        // 6 KiB in flight (not sent yet) counts against the quota already.
        try connection.send(line: UploadRequest(name: "a", size: 6144, sha256: sha256Hex(six)).line)
        #expect(try connection.readReply().code == .sendBody)
        let second = try Connection(server: server.address, token: secret)
        try second.send(line: UploadRequest(name: "b", size: 6144, sha256: sha256Hex(six)).line)
        let refused = try second.readReply()
        #expect(refused.code == .exceedsLimit && refused.text.contains("quota exceeded"), "\(refused)")
        try connection.send(bytes: six)
        #expect(try connection.readReply().code == .stored)
        // Small files fit until the file count runs out.
        for n in 0..<2 {
            try second.send(line: UploadRequest(name: "s\(n)", size: 1, sha256: sha256Hex([UInt8(n)])).line)
            #expect(try second.readReply().code == .sendBody)
            try second.send(bytes: [UInt8(n)])
            #expect(try second.readReply().code == .stored)
        }
        try second.send(line: UploadRequest(name: "s9", size: 1, sha256: sha256Hex([9])).line)
        #expect(try second.readReply().text.contains("3 files"))
        try server.stop()
    }

    @Test func refusesToServeANonLoopbackAddressWithoutTokens() throws {
        let dir = try TempDirectory()
        // It refuses before it binds: nothing ever listens on 0.0.0.0 here.
        let result = try run(
            Binaries.spoold, ["serve", "--listen", "0.0.0.0:0", "--allow-plaintext", "--data-dir", dir.path], timeout: 20)
        #expect(result.status == 1)
        #expect(result.stderr.contains("refusing to serve 0.0.0.0 without authentication"), "\(result.stderr)")
        #expect(result.stderr.contains("admin token create") && result.stderr.contains("--allow-anonymous"))
    }
}
