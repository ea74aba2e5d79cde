import Foundation
import SpoolStore
import SpoolTestSupport
import Testing

@testable import SpoolPostgres

/// The protocol client and the engine against a real PostgreSQL (`scripts/pg`).
@Suite struct PostgresEngineTests {
    @Test func logsInWithSCRAMAndRunsStatementsWithParameters() throws {
        let url = try PostgresURL(PostgresServer.database("engine"))
        let engine = try PostgresEngine(url)
        try engine.execute("CREATE TABLE t (id BIGINT PRIMARY KEY, name TEXT, note TEXT)")
        #expect(try engine.run("INSERT INTO t (id, name, note) VALUES (?, ?, ?), (?, ?, ?)",
                               [.integer(1), .text("one 'quoted' ?"), .null, .integer(Int64.max), .text("ünïcode"), .text("x")]) == 2)
        let rows = try engine.query("SELECT id, name, note FROM t WHERE id >= ?1 ORDER BY id LIMIT ?2", [.integer(0), .integer(10)]) {
            ($0.int(0), $0.text(1), $0.optionalText(2), $0.isNull(2))
        }
        #expect(rows.count == 2)
        #expect(rows[0] == (1, "one 'quoted' ?", nil, true))
        #expect(rows[1] == (Int64.max, "ünïcode", "x", false))
        // A literal's ? is not a placeholder.
        #expect(try engine.query("SELECT '?' || ?", [.text("!")]) { $0.text(0) } == ["?!"])
        #expect(try engine.run("UPDATE t SET note = ? WHERE id > ?", [.text("n"), .integer(0)]) == 2)
        // An error names the statement and carries SQLSTATE; the connection goes on.
        #expect(throws: StoreError.self) { try engine.run("INSERT INTO t (id) VALUES (?)", [.integer(1)]) }
        do {
            try engine.run("INSERT INTO t (id) VALUES (?)", [.integer(1)])
        } catch {
            guard case .postgres(_, let code, _) = error else { Issue.record("\(error)"); return }
            #expect(code == "23505")  // unique_violation
        }
        #expect(try engine.query("SELECT count(*) FROM t") { $0.int(0) } == [2])
    }

    @Test func aFailedTransactionChangesNothingAndTheNextOneWorks() throws {
        let engine = try PostgresEngine(PostgresURL(PostgresServer.database("transaction")))
        try engine.execute("CREATE TABLE t (id BIGINT PRIMARY KEY)")
        #expect(throws: StoreError.self) {
            try engine.transaction { () throws(StoreError) in
                try engine.run("INSERT INTO t VALUES (?)", [.integer(1)])
                try engine.run("INSERT INTO t VALUES (?)", [.integer(1)])
            }
        }
        #expect(try engine.query("SELECT count(*) FROM t") { $0.int(0) } == [0])
        try engine.transaction(durable: false) { () throws(StoreError) in try engine.run("INSERT INTO t VALUES (?)", [.integer(2)]) }
        #expect(try engine.query("SELECT id FROM t") { $0.int(0) } == [2])
    }

    @Test func aWrongPasswordIsRefusedWithTheServersReason() throws {
        var url = try PostgresURL(PostgresServer.database("password"))
        url.password = "wrong"
        do {
            _ = try PostgresEngine(url)
            Issue.record("logged in with a wrong password")
        } catch {
            #expect(error.description.contains("28P01") && error.description.contains("password authentication failed"), "\(error)")
            #expect(!error.description.contains("wrong"))
        }
    }

    @Test func urlsAreParsedAndBadOnesRefused() throws {
        let url = try PostgresURL("postgres://us%40er:p%3Ass@db.example:6543/spool%20db")
        #expect(url.user == "us@er" && url.password == "p:ss" && url.host == "db.example" && url.port == 6543 && url.database == "spool db")
        #expect(url.redacted == "postgres://us@er@db.example:6543/spool db")
        #expect(try PostgresURL("postgresql://u@[::1]/d").host == "::1")
        #expect(try PostgresURL("postgres://u@h/d", environment: ["PGPASSWORD": "s"]).password == "s")
        for bad in ["http://u@h/d", "postgres://h/d", "postgres://u@h", "postgres://u@h:99999/d", "postgres://u@h/d?sslmode=require"] {
            #expect(throws: StoreError.self, "\(bad)") { try PostgresURL(bad) }
        }
    }

    /// RFC 7677's example exchange.
    @Test func scramMatchesTheRFCExample() throws {
        let client = SCRAMClient(password: "pencil", nonce: "rOprNGfwEbeRWgbNEkqO")
        let serverFirst = "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096"
        // The RFC's client-first-bare names the user; PostgreSQL's leaves it empty, so compute with the RFC's.
        let rfc = SCRAMRFC(client: client, user: "user")
        let (final, signature) = try rfc.respond(to: serverFirst)
        #expect(final == "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=")
        #expect(signature == "6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=")
        #expect(throws: SCRAMClient.Failure.self) { try client.respond(to: "r=someoneElse,s=QQ==,i=1") }
    }

    @Test func placeholdersAreNumberedOutsideQuotes() {
        #expect(PostgresEngine.numbered("SELECT ? , '?', ?1, ?12 FROM t WHERE a = ?") == "SELECT $1 , '?', $1, $12 FROM t WHERE a = $2")
    }
}

/// SCRAM with the user in client-first-bare, as RFC 7677's example has it.
struct SCRAMRFC {
    let client: SCRAMClient
    let user: String

    func respond(to serverFirst: String) throws -> (String, String) {
        try client.respond(to: serverFirst, clientFirstBare: "n=\(user),r=\(client.nonce)")
    }
}

/// Statements prepared once per connection, and what an error does to them.
@Suite struct PreparedStatementTests {
    @Test func aStatementIsParsedOnceAndSurvivesErrorsAroundIt() throws {
        let engine = try PostgresEngine(PostgresURL(PostgresServer.database("prepared")))
        try engine.execute("CREATE TABLE t (id BIGINT PRIMARY KEY, name TEXT)")
        for n in 1...5 { try engine.run("INSERT INTO t (id, name) VALUES (?, ?)", [.integer(Int64(n)), .text("n\(n)")]) }
        // A failing batch: the statement after the error was never parsed, and must be parsed again later.
        #expect(throws: StoreError.self) {
            try engine.transaction { () throws(StoreError) in
                try engine.runLater("INSERT INTO t (id, name) VALUES (?, ?)", [.integer(1), .text("again")])
                try engine.run("UPDATE t SET name = ? WHERE id > ?", [.text("x"), .integer(100)])
            }
        }
        #expect(try engine.run("UPDATE t SET name = ? WHERE id > ?", [.text("y"), .integer(3)]) == 2)
        // A transaction given up before its waiting statements were sent (an error of the caller's).
        struct GiveUp: Error {}
        #expect(throws: StoreError.self) {
            try engine.transaction { () throws(StoreError) in
                try engine.runLater("DELETE FROM t WHERE name = ?", [.text("n1")])
                throw .notFound(id: "given up")
            }
        }
        #expect(try engine.run("DELETE FROM t WHERE name = ?", [.text("n1")]) == 1)
        #expect(try engine.query("SELECT count(*) FROM pg_prepared_statements") { $0.int(0) }.first ?? 0 >= 3)
        #expect(try engine.query("SELECT id FROM t ORDER BY id") { $0.int(0) } == [2, 3, 4, 5])
    }
}
