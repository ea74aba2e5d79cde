import ArgumentParser
import Foundation
import SpoolMaster

/// The configuration file to read: --config, else SPOOL_CONFIG, else
/// /etc/spool/spoold.conf when it exists. `none` reads no file.
struct ConfigFileOptions: ParsableArguments {
    @Option(help: ArgumentHelp(
        "Configuration file, key = value lines (docs/OPERATIONS.md); none for no file. Default: $SPOOL_CONFIG, else \(SettingsFile.defaultPath) when it exists.",
        valueName: "file"))
    var config: String?

    /// The path chosen, or nil for no file; a path named explicitly must exist (checked when read).
    func path(environment: [String: String]) -> String? {
        let named = config ?? environment["SPOOL_CONFIG"]
        if let named { return named == "none" || named.isEmpty ? nil : named }
        return FileManager.default.fileExists(atPath: SettingsFile.defaultPath) ? SettingsFile.defaultPath : nil
    }

    func sources(flags: SettingLayer) throws(SettingsError) -> SettingSources {
        let environment = ProcessInfo.processInfo.environment
        var sources = SettingSources(flags: flags, environment: environment)
        if let path = path(environment: environment) { sources.file = try SettingsFile.read(path).get() }
        return sources
    }
}

/// Every setting of `spoold serve` as a flag. The same options are taken by
/// `spoold config check` and `config show`, so a unit file's command line can be
/// checked as it stands. Each is optional: unset, the environment, the file or
/// the built-in default decides (Settings.resolve), and the help says the default.
struct ServeOptions: ParsableArguments {
    @OptionGroup var file: ConfigFileOptions

    @Option(help: described(.dataDir, "Data directory: database, spool, pid file."))
    var dataDir: String?

    @Option(help: described(.listen, "Address for the line protocol, HOST:PORT (IPv6 as [::1]:PORT). Port 0 picks a free port."))
    var listen: String?

    @Option(help: described(.http, "Address for HTTP (docs/HTTP.md), HOST:PORT, or none. Port 0 picks a free port."))
    var http: String?

    @Option(help: described(
        .metrics, "A loopback address for /metrics, /healthz and /readyz without a token (for a local Prometheus), HOST:PORT, or none."))
    var metrics: String?

    @Option(help: described(
        .corsOrigin, "A web origin whose pages may call the HTTP door (CORS), like https://app.example.com, or * for any; repeat for more.",
        valueName: "origin"))
    var corsOrigin: [String] = []

    @Option(help: described(.workers, "Number of worker processes (default: the number of CPU cores).", showDefault: false))
    var workers: String?

    @Option(help: described(.logLevel, "Log level: trace, debug, info, notice, warning, error, critical."))
    var logLevel: String?

    @Option(help: described(.logFormat, "Log lines as text (key=value, for people and grep) or json (one object per line, for log shippers)."))
    var logFormat: String?

    @Option(help: described(.logFile, "Append log lines to this file instead of standard error (reopened on USR1).", valueName: "file"))
    var logFile: String?

    @Option(help: described(.gracefulTimeout, "Seconds that in-flight uploads get to finish on QUIT or HUP."))
    var gracefulTimeout: String?

    @Option(help: described(.timeout, "Seconds without a heartbeat after which a worker is aborted and replaced."))
    var timeout: String?

    @Option(name: .customLong("partial-ttl"), help: described(
        .partialTTL, "Interrupted uploads not resumed within this time expire: 90s, 30m, 24h, 7d.", valueName: "duration"))
    var partialTTL: String?

    @Option(help: described(
        .retain, "How long finished uploads are kept, by state: complete=90d,failed=7d,expired=7d,lost=30d (forever keeps them).",
        valueName: "policy"))
    var retain: String?

    @Option(help: described(.maxFileSize, "Largest upload accepted, checked against the declared size: 500M, 2G, 1T.", valueName: "size"))
    var maxFileSize: String?

    @Option(help: described(.minFree, "Free space that must remain after every upload in flight has arrived: 500M, 2G.", valueName: "size"))
    var minFree: String?

    @Option(help: described(.idleTimeout, "Close a connection that sends no command for this long: 30s, 5m.", valueName: "duration"))
    var idleTimeout: String?

    @Option(help: described(.lineTimeout, "Close a connection whose command line is not finished within this long.", valueName: "duration"))
    var lineTimeout: String?

    @Option(help: described(
        .stallTimeout, "Close a connection whose upload body stops moving for this long (the upload stays resumable).", valueName: "duration"))
    var stallTimeout: String?

    @Option(help: described(.maxConnections, "Connections one worker serves at once; at the cap it stops accepting."))
    var maxConnections: String?

    @Option(help: described(.maxClientConnections, "Connections from one client address, across all workers."))
    var maxClientConnections: String?

    @Flag(inversion: .prefixedNo, help: described(
        .allowAnonymous, "Serve clients without a token even when tokens exist or the address is not loopback."))
    var allowAnonymous: Bool?

    @Option(help: described(
        .tlsCert, "PEM certificate chain (leaf first) that both listeners serve over TLS; read again on HUP (docs/TLS.md).", valueName: "file"))
    var tlsCert: String?

    @Option(help: described(.tlsKey, "PEM private key of --tls-cert (no passphrase).", valueName: "file"))
    var tlsKey: String?

    @Flag(inversion: .prefixedNo, help: described(
        .allowPlaintext, "Serve plain text on an address that is not loopback: tokens and files then cross the network in clear."))
    var allowPlaintext: Bool?

    @Option(help: described(.maxBootFailures, "Early worker deaths in a row after which the server gives up and exits 3."))
    var maxBootFailures: String?

    @Option(help: described(
        .hookDir, "A directory of hooks: executables named pre-create, post-finish, post-fail, post-expire, post-delete (docs/HOOKS.md)."))
    var hookDir: String?

    @Option(help: described(
        .hook, "One hook as NAME=COMMAND, run by /bin/sh, like post-finish=/usr/local/bin/scan; repeat for more. Wins over --hook-dir.",
        valueName: "name=command"))
    var hook: [String] = []

    @Option(help: described(.preCreateTimeout, "How long a pre-create hook may take; one that takes longer refuses the upload."))
    var preCreateTimeout: String?

    @Option(help: described(.hookTimeout, "How long a notification hook may take before it is killed and its delivery tried again."))
    var hookTimeout: String?

    @Option(help: described(.hookRetry, "The wait before a failed notification is tried again; it doubles each time, up to 5m."))
    var hookRetry: String?

    @Option(help: described(
        .objects, "Keep uploads in an S3-compatible store instead of the spool directory: s3://BUCKET[/PREFIX] (docs/SCALING.md).",
        valueName: "url"))
    var objects: String?

    @Option(help: described(.partSize, "With --objects: the size of the parts an upload is sent to S3 in (one is buffered locally per upload)."))
    var partSize: String?

    @Option(help: described(
        .database, "Keep the catalog in PostgreSQL instead of SQLite in the data directory, so several hosts can share it (docs/SCALING.md).",
        valueName: "url"))
    var database: String?

    /// The flags given, as the top layer.
    var flags: SettingLayer {
        var layer: SettingLayer = [:]
        func set(_ key: SettingKey, _ values: [String]) {
            if !values.isEmpty { layer[key.name] = Assignment(values, from: .flag(key.flag)) }
        }
        func set(_ key: SettingKey, _ value: String?) { set(key, value.map { [$0] } ?? []) }
        set(.dataDir, dataDir)
        set(.listen, listen)
        set(.http, http)
        set(.metrics, metrics)
        set(.corsOrigin, corsOrigin)
        set(.workers, workers)
        set(.logLevel, logLevel)
        set(.logFormat, logFormat)
        set(.logFile, logFile)
        set(.gracefulTimeout, gracefulTimeout)
        set(.timeout, timeout)
        set(.partialTTL, partialTTL)
        set(.retain, retain)
        set(.maxFileSize, maxFileSize)
        set(.minFree, minFree)
        set(.idleTimeout, idleTimeout)
        set(.lineTimeout, lineTimeout)
        set(.stallTimeout, stallTimeout)
        set(.maxConnections, maxConnections)
        set(.maxClientConnections, maxClientConnections)
        set(.allowAnonymous, allowAnonymous.map { "\($0)" })
        set(.tlsCert, tlsCert)
        set(.tlsKey, tlsKey)
        set(.allowPlaintext, allowPlaintext.map { "\($0)" })
        set(.maxBootFailures, maxBootFailures)
        set(.hookDir, hookDir)
        set(.hook, hook)
        set(.preCreateTimeout, preCreateTimeout)
        set(.hookTimeout, hookTimeout)
        set(.hookRetry, hookRetry)
        set(.objects, objects)
        set(.partSize, partSize)
        set(.database, database)
        return layer
    }

    /// Flags, environment and file, checked; every problem printed as `spoold: …`, exit 64.
    func resolve() throws -> (Settings, SettingSources) {
        do {
            let sources = try file.sources(flags: flags)
            return (try Settings.resolve(sources).get(), sources)
        } catch {
            for problem in error.problems { printStandardError("spoold: \(problem)") }
            throw ExitCode.validationFailure
        }
    }
}

/// A flag's help with the built-in default it falls back to, from the table of settings.
private func described(_ key: SettingKey, _ text: String, valueName: String? = nil, showDefault: Bool = true) -> ArgumentHelp {
    let suffix = showDefault ? key.defaultText.map { " (default: \($0))" } ?? "" : ""
    return ArgumentHelp(text + suffix, valueName: valueName)
}
