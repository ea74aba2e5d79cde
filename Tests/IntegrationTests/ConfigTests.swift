import Foundation
import SpoolTestSupport
import Testing

/// The configuration file, the environment and the flags, through the real binary.
@Suite struct ConfigTests {
    let sha = String(repeating: "0", count: 64)

    /// 150 when an upload of `size` bytes is admitted, 552 when it is over the limit.
    func admits(_ server: Server, size: Int) throws -> Bool {
        let nc = try RawSession(port: server.port)
        let reply = try nc.ask("UPLOAD \(size) \(sha) probe.bin").first ?? ""
        return reply.hasPrefix("150")
    }

    @Test func serveTakesItsLimitsFromTheFileAndFlagsWin() throws {
        let dir = try TempDirectory()
        let config = dir.path + "/spoold.conf"
        try "# limits\nmax-file-size = 1K\nidle-timeout = 1m\n".write(toFile: config, atomically: true, encoding: .utf8)
        // The file alone, a flag over it, the environment over it (and under the flag).
        let cases: [(flags: [String], environment: [String: String], limit: Int)] = [
            ([], [:], 1024),
            (["--max-file-size", "2K"], [:], 2048),
            ([], ["SPOOL_MAX_FILE_SIZE": "3K"], 3072),
            (["--max-file-size", "2K"], ["SPOOL_MAX_FILE_SIZE": "3K"], 2048),
        ]
        for (flags, environment, limit) in cases {
            let server = try Server(workers: 1, arguments: ["--config", config] + flags, environment: environment)
            #expect(try admits(server, size: limit), "\(flags) \(environment)")
            #expect(try !admits(server, size: limit + 1), "\(flags) \(environment)")
            try server.stop()
        }
    }

    @Test func hupAppliesWhatItCanNamesWhatItCannotAndKeepsGoingOnABrokenFile() throws {
        let dir = try TempDirectory()
        let config = dir.path + "/spoold.conf"
        try "max-file-size = 1M\nlog-format = text\n".write(toFile: config, atomically: true, encoding: .utf8)
        let server = try Server(workers: 1, arguments: ["--config", config])
        #expect(try admits(server, size: 4096))

        try "max-file-size = 1K\nlog-format = json\nlog-level = debug\n".write(toFile: config, atomically: true, encoding: .utf8)
        var before = Set(server.workerPIDs())
        server.signal(SIGHUP)
        #expect(eventually(timeout: 30) {
            let now = Set(server.workerPIDs())
            return now.count == 1 && now.isDisjoint(with: before) && server.count("worker ready") >= 2
        }, "\(server.log())")
        let log = server.log()
        #expect(log.contains("setting reloaded key=max-file-size value=1K"), "\(log)")
        #expect(log.contains("setting changed but not applied: it takes a restart or a USR2 upgrade in_file=json in_force=text key=log-format"), "\(log)")
        #expect(log.contains("setting reloaded key=log-level value=debug"), "\(log)")
        // At debug, the master now logs each signal it takes; at info it did not.
        #expect(!log.contains("debug master: signal signal=HUP"))
        server.signal(SIGUSR1)
        #expect(eventually { server.log().contains("debug master: signal signal=USR1") }, "\(server.log())")
        #expect(try !admits(server, size: 4096))
        #expect(try admits(server, size: 1024))

        // A file that no longer passes changes nothing, and the log says what is wrong.
        try "max-file-size = 1M\nmax-filesize = 2M\n".write(toFile: config, atomically: true, encoding: .utf8)
        before = Set(server.workerPIDs())
        server.signal(SIGHUP)
        #expect(eventually(timeout: 30) { Set(server.workerPIDs()).isDisjoint(with: before) && server.count("worker ready") >= 3 })
        #expect(server.log().contains(
            "configuration not reloaded; the settings in force stay problem=\(config):2: unknown key \"max-filesize\" (did you mean max-file-size?)"),
            "\(server.log())")
        #expect(try !admits(server, size: 4096), "the 1K limit stays")
        #expect(server.process.isRunning)
        try server.stop()
    }

    @Test func checkFindsEveryProblemAndShowSaysWhereEachValueCameFrom() throws {
        let dir = try TempDirectory()
        let bad = dir.path + "/bad.conf"
        try "listen = localhost\nmax-filesize = 2G\nworkers = 0\n".write(toFile: bad, atomically: true, encoding: .utf8)
        let refused = try run(Binaries.spoold, ["config", "check", "--config", bad], timeout: 20)
        #expect(refused.status == 64)
        #expect(refused.stderr.contains("spoold: \(bad):1: listen: expected HOST:PORT"), "\(refused.stderr)")
        #expect(refused.stderr.contains("spoold: \(bad):2: unknown key \"max-filesize\" (did you mean max-file-size?)"), "\(refused.stderr)")
        #expect(refused.stderr.contains("spoold: \(bad):3: workers: expected a number from 1 to 512, got \"0\""), "\(refused.stderr)")
        // serve refuses the same file the same way, before binding anything.
        let serve = try run(Binaries.spoold, ["serve", "--config", bad, "--data-dir", dir.path + "/d"], timeout: 20)
        #expect(serve.status == 64 && serve.stderr.contains("did you mean max-file-size?"), "\(serve.stderr)")
        #expect(!FileManager.default.fileExists(atPath: dir.path + "/d"))

        let good = dir.path + "/good.conf"
        try "max-file-size = 2G\nworkers = 2\ncors-origin = https://a.example\n".write(toFile: good, atomically: true, encoding: .utf8)
        let checked = try run(Binaries.spoold, ["config", "check", "--config", good], environment: ["SPOOL_IDLE_TIMOUT": "1m"], timeout: 20)
        #expect(checked.status == 0 && checked.stdout == "\(good): ok\n", "\(checked)")
        #expect(checked.stderr.contains("SPOOL_IDLE_TIMOUT is not a spoold setting; ignored (did you mean SPOOL_IDLE_TIMEOUT?)"))
        let missing = try run(Binaries.spoold, ["config", "check", "--config", dir.path + "/nothing.conf"], timeout: 20)
        #expect(missing.status == 64 && missing.stderr.contains("cannot read \(dir.path)/nothing.conf"), "\(missing.stderr)")

        let shown = try run(Binaries.spoold, ["config", "show", "--workers", "4"],
                            environment: ["SPOOL_CONFIG": good, "SPOOL_MAX_FILE_SIZE": "3G"], timeout: 20)
        #expect(shown.status == 0)
        let lines = shown.stdout.split(separator: "\n").map { $0.replacingOccurrences(of: " +", with: " ", options: .regularExpression) }
        #expect(lines.contains("workers = 4 # --workers"), "\(shown.stdout)")
        #expect(lines.contains("max-file-size = 3G # SPOOL_MAX_FILE_SIZE"), "\(shown.stdout)")
        #expect(lines.contains("cors-origin = https://a.example # \(good):3"), "\(shown.stdout)")
        #expect(lines.contains("idle-timeout = 5m # default"), "\(shown.stdout)")
        #expect(lines.contains("# log-file is not set"), "\(shown.stdout)")
        // What show prints is a configuration file that check accepts.
        let again = dir.path + "/shown.conf"
        try shown.stdout.write(toFile: again, atomically: true, encoding: .utf8)
        #expect(try run(Binaries.spoold, ["config", "check", "--config", again], timeout: 20).status == 0)
    }

    @Test func adminFindsTheDataDirectoryWhereTheFileSaysItIs() throws {
        let dir = try TempDirectory()
        let config = dir.path + "/spoold.conf"
        let server = try Server(workers: 1)
        try "data-dir = \(server.directory.root)\n".write(toFile: config, atomically: true, encoding: .utf8)
        let file = writeFile(dir.path + "/three.bin", [1, 2, 3])
        #expect(try run(Binaries.spool, ["upload", "--quiet", "--server", server.address, file]).status == 0)
        try server.stop()
        let listed = try run(Binaries.spoold, ["admin", "list", "--json"], environment: ["SPOOL_CONFIG": config], timeout: 20)
        #expect(listed.status == 0 && listed.stdout.contains("three.bin"), "\(listed)")
        // Without the file, admin looks in ./var and says there is no database there.
        let elsewhere = try run(Binaries.spoold, ["admin", "list", "--config", "none"], workingDirectory: dir.path, timeout: 20)
        #expect(elsewhere.status == 2 && elsewhere.stderr.contains("no database at var/spool.db"), "\(elsewhere.stderr)")
    }

    @Test func everySettingIsAFlagOfServe() throws {
        let help = try run(Binaries.spoold, ["serve", "--help"], timeout: 20).stdout
        for name in ["data-dir", "listen", "http", "metrics", "cors-origin", "workers", "log-level", "log-format", "log-file",
                     "graceful-timeout", "timeout", "partial-ttl", "retain", "max-file-size", "min-free", "idle-timeout", "line-timeout",
                     "stall-timeout", "max-connections", "max-client-connections", "allow-anonymous", "tls-cert", "tls-key",
                     "allow-plaintext", "max-boot-failures", "hook-dir", "hook", "pre-create-timeout", "hook-timeout", "hook-retry", "objects", "part-size",
                     "database", "config"] {
            #expect(help.contains("--\(name) ") || help.contains("--\(name)/"), "--\(name) missing from serve --help")
        }
        let shown = try run(Binaries.spoold, ["config", "show", "--config", "none"], timeout: 20).stdout
        #expect(shown.split(separator: "\n").count == 33, "one line per setting:\n\(shown)")
    }
}
