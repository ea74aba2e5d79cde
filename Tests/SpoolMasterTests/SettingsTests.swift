import Testing
@testable import SpoolMaster

/// The configuration's layering, file format and HUP merge, without a process.
struct SettingsTests {
    func file(_ text: String) -> SettingsFile { SettingsFile.parse(text, path: "spoold.conf") }

    func resolve(flags: SettingLayer = [:], environment: [String: String] = [:], file text: String? = nil) -> Result<Settings, SettingsError> {
        Settings.resolve(SettingSources(flags: flags, environment: environment, file: text.map(file)))
    }

    @Test func defaultsAloneAreValid() throws {
        let settings = try resolve().get()
        #expect(settings.listen.description == "127.0.0.1:8888")
        #expect(settings.maxFileSize == 1 << 40 && settings.idleTimeout == 300 && settings.partialTTL == 86_400)
        #expect(settings.assignments["listen"]?.source == .builtIn)
        #expect(settings.logFile == nil && settings.assignments["log-file"] == nil)
    }

    @Test func flagsOverTheEnvironmentOverTheFileOverTheDefault() throws {
        let settings = try resolve(
            flags: ["max-file-size": Assignment(["3G"], from: .flag("--max-file-size"))],
            environment: ["SPOOL_MAX_FILE_SIZE": "2G", "SPOOL_MIN_FREE": "5G"],
            file: "max-file-size = 1G\nmin-free = 4G\nidle-timeout = 10m\n"
        ).get()
        #expect(settings.maxFileSize == 3 << 30)
        #expect(settings.minFree == 5 << 30)
        #expect(settings.idleTimeout == 600)
        #expect(settings.lineTimeout == 30)
        #expect(settings.assignments["max-file-size"]?.source == .flag("--max-file-size"))
        #expect(settings.assignments["min-free"]?.source == .environment("SPOOL_MIN_FREE"))
        #expect(settings.assignments["idle-timeout"]?.source == .file(path: "spoold.conf", line: 3))
        #expect(settings.assignments["line-timeout"]?.source == .builtIn)
    }

    @Test func commentsQuotesAndBlankLines() throws {
        let parsed = file("""
            # a comment
               listen = 127.0.0.1:9000   # trailing comment

            log-file = "/var/log/spool #1/spoold.log"   # quoted keeps the #
            tls-cert = /etc/spool/a#b.pem
            tls-key = "/etc/spool/say \\"hi\\".pem"
            """)
        #expect(parsed.problems.isEmpty)
        #expect(parsed.entries.map(\.key) == ["listen", "log-file", "tls-cert", "tls-key"])
        #expect(parsed.entries.map(\.value) == ["127.0.0.1:9000", "/var/log/spool #1/spoold.log", "/etc/spool/a#b.pem", "/etc/spool/say \"hi\".pem"])
        #expect(parsed.entries.map(\.line) == [2, 4, 5, 6])
    }

    @Test func everyProblemIsReportedWithTheFileLineAndWhatWasExpected() {
        guard case .failure(let error) = resolve(file: """
            listen = localhost
            max-filesize = 2G
            workers
            workers = 0
            log-file = "open
            tls-cert = /a.pem
            """)
        else {
            Issue.record("a bad file was accepted")
            return
        }
        let lines = error.problems.map(\.description)
        #expect(lines.contains("spoold.conf:3: expected key = value, got \"workers\""), "\(lines)")
        #expect(lines.contains("spoold.conf:5: log-file: a quoted value is not closed"), "\(lines)")
        #expect(lines.contains("spoold.conf:2: unknown key \"max-filesize\" (did you mean max-file-size?)"), "\(lines)")
        #expect(lines.contains { $0.hasPrefix("spoold.conf:1: listen: expected HOST:PORT") && $0.hasSuffix("got \"localhost\"") }, "\(lines)")
        #expect(lines.contains("spoold.conf:4: workers: expected a number from 1 to 512, got \"0\""), "\(lines)")
        #expect(lines.contains { $0.hasPrefix("spoold.conf:6: tls-cert: tls-cert and tls-key go together") }, "\(lines)")
        #expect(lines.count == 6, "\(lines)")
    }

    @Test func aKeySetTwiceIsRefusedUnlessItRepeats() throws {
        guard case .failure(let error) = resolve(file: "workers = 2\nworkers = 3\n") else {
            Issue.record("a key set twice was accepted")
            return
        }
        #expect(error.description == "spoold.conf:2: workers: set twice (first at spoold.conf:1)")
        let origins = try resolve(file: "cors-origin = https://a.example\ncors-origin = https://b.example\n").get()
        #expect(origins.corsOrigins == ["https://a.example", "https://b.example"])
    }

    @Test func environmentErrorsNameTheVariableAndListsSplitOnCommas() throws {
        guard case .failure(let error) = resolve(environment: ["SPOOL_IDLE_TIMEOUT": "soon"]) else {
            Issue.record("a bad variable was accepted")
            return
        }
        #expect(error.description == "SPOOL_IDLE_TIMEOUT: expected a duration like 90s, 30m, 24h or 7d, at least 1s, got \"soon\"")
        let settings = try resolve(environment: ["SPOOL_CORS_ORIGIN": "https://a.example, https://b.example"]).get()
        #expect(settings.corsOrigins == ["https://a.example", "https://b.example"])
    }

    @Test func booleansAndNone() throws {
        let settings = try resolve(environment: ["SPOOL_ALLOW_ANONYMOUS": "yes"], file: "http = none\nallow-plaintext = on\n").get()
        #expect(settings.allowAnonymous && settings.allowPlaintext && settings.http == nil)
        #expect(throws: SettingsError.self) { try resolve(file: "allow-anonymous = maybe\n").get() }
    }

    @Test func strayVariablesAreNamedWithAGuessButClientOnesAreNot() {
        let sources = SettingSources(environment: [
            "SPOOL_MAX_FILESIZE": "1G", "SPOOL_TOKEN": "x", "SPOOL_SERVER": "h:1", "SPOOL_WORKERS": "2", "PATH": "/bin",
        ])
        let stray = sources.strayEnvironment()
        #expect(stray.map(\.name) == ["SPOOL_MAX_FILESIZE"])
        #expect(stray.first?.didYouMean == "SPOOL_MAX_FILE_SIZE")
    }

    @Test func whatShowPrintsReadsBackAsTheSameSettings() throws {
        let settings = try resolve(
            flags: ["workers": Assignment(["3"], from: .flag("--workers"))],
            environment: ["SPOOL_CORS_ORIGIN": "https://a.example,https://b.example"],
            file: "log-file = \" /tmp/odd #name \"\ntls-cert = /c.pem\ntls-key = /k.pem\n"
        ).get()
        let text = settings.rendered()
        #expect(text.contains("workers = 3"))
        #expect(text.contains("# --workers") && text.contains("# SPOOL_CORS_ORIGIN") && text.contains("# spoold.conf:2"))
        let again = try Settings.resolve(SettingSources(file: SettingsFile.parse(text, path: "shown.conf"))).get()
        for key in SettingKey.all {
            #expect(again.assignments[key.name]?.values == settings.assignments[key.name]?.values, "\(key.name)")
        }
        #expect(again.logFile == " /tmp/odd #name ")
    }

    @Test func reloadTakesWhatCanChangeAndNamesWhatCannot() throws {
        let before = try resolve(file: "max-file-size = 1G\nlisten = 127.0.0.1:9000\nlog-format = text\n").get()
        let after = try resolve(file: "max-file-size = 2G\nlisten = 127.0.0.1:9001\nlog-format = json\nidle-timeout = 1m\nlog-level = debug\n").get()
        let reload = before.reloading(after)
        #expect(reload.applied.map(\.name) == ["log-level", "max-file-size", "idle-timeout"])
        #expect(reload.needsRestart.map(\.name) == ["listen", "log-format"])
        #expect(reload.settings.maxFileSize == 2 << 30 && reload.settings.idleTimeout == 60 && reload.settings.logLevel == .debug)
        #expect(reload.settings.listen.port == 9000 && reload.settings.logFormat == .text)
        #expect(reload.settings.assignments["max-file-size"]?.source == .file(path: "spoold.conf", line: 1))
        #expect(before.reloading(before).applied.isEmpty && before.reloading(before).needsRestart.isEmpty)
    }

    @Test func tlsMayBeTurnedOnOrRenewedByReloadButNotOff() throws {
        let plain = try resolve(file: "max-file-size = 1G\n").get()
        let tls = try resolve(file: "tls-cert = /c.pem\ntls-key = /k.pem\n").get()
        let on = plain.reloading(tls)
        #expect(on.applied.map(\.name) == ["max-file-size", "tls-cert", "tls-key"] && on.settings.tlsCert == "/c.pem")
        let renewed = tls.reloading(try resolve(file: "tls-cert = /c2.pem\ntls-key = /k2.pem\n").get())
        #expect(renewed.applied.map(\.name) == ["tls-cert", "tls-key"] && renewed.settings.tlsKey == "/k2.pem")
        let off = tls.reloading(plain)
        #expect(off.needsRestart.map(\.name) == ["tls-cert", "tls-key"], "\(off.needsRestart)")
        #expect(off.applied.map(\.name) == ["max-file-size"])
        #expect(off.settings.tlsCert == "/c.pem" && off.settings.tlsKey == "/k.pem" && off.settings.maxFileSize == 1 << 30)
    }

    @Test func masterConfigurationFollowsTheSettings() throws {
        let settings = try resolve(file: "http = none\nmax-client-connections = 7\nstall-timeout = 45s\nlisten = 0.0.0.0:1\n").get()
        let config = MasterConfiguration(settings)
        #expect(config.listeners == [ListenerSpec(.line, host: "0.0.0.0", port: 1)])
        #expect(config.limits.maxConnectionsPerClient == 7 && config.limits.timeouts.stall == 45)
        #expect(!config.limits.loopback)
    }

    @Test func closeNamesAreGuessedAndFarOnesAreNot() {
        let names = SettingKey.all.map(\.name)
        #expect(SettingKey.closest(to: "max-filesize", among: names) == "max-file-size")
        #expect(SettingKey.closest(to: "worker", among: names) == "workers")
        #expect(SettingKey.closest(to: "colour", among: names) == nil)
        #expect(SettingKey.editDistance("", "abc") == 3 && SettingKey.editDistance("abc", "") == 3)
    }
}
