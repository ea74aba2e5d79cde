import SpoolStore

extension MasterConfiguration {
    /// What the master runs with for these settings.
    public init(_ settings: Settings) {
        var listeners = [ListenerSpec(.line, host: settings.listen.host, port: settings.listen.port)]
        if let web = settings.http { listeners.append(ListenerSpec(.http, host: web.host, port: web.port)) }
        if let metrics = settings.metrics { listeners.append(ListenerSpec(.metrics, host: metrics.host, port: metrics.port)) }
        self.init(listeners: listeners, directory: DataDirectory(settings.dataDir), workers: settings.workers)
        self.settings = settings
        gracefulTimeout = settings.gracefulTimeout
        timeout = settings.timeout
        maxBootFailures = settings.maxBootFailures
        logFile = settings.logFile
        if let certificate = settings.tlsCert, let key = settings.tlsKey { tlsFiles = (certificate, key) }
        allowPlaintext = settings.allowPlaintext
        partialTTL = settings.partialTTL
        retention = settings.retention
        limits.admission.maxFileSize = settings.maxFileSize
        limits.admission.minFreeBytes = settings.minFree
        limits.timeouts = .init(idle: settings.idleTimeout, line: settings.lineTimeout, stall: settings.stallTimeout)
        limits.maxConnectionsPerWorker = settings.maxConnections
        limits.maxConnectionsPerClient = settings.maxClientConnections
        limits.allowAnonymous = settings.allowAnonymous
        limits.loopback = listeners.allSatisfy(\.isLoopback)
        limits.cors = .init(origins: settings.corsOrigins)
        limits.partialTTL = settings.partialTTL
        hooks = settings.hooks
    }
}

/// What HUP did with a configuration read again.
public struct SettingsReload: Sendable {
    /// The settings in force from now on.
    public var settings: Settings
    /// Changed, and applied to the workers started from now on.
    public var applied: [SettingKey]
    /// Changed, but kept as they were: a restart or a USR2 upgrade applies them.
    public var needsRestart: [SettingKey]
}

extension Settings {
    /// Takes from `fresh` what may change while serving; keeps the rest as it is,
    /// naming what differed so the log can say it was not applied.
    public func reloading(_ fresh: Settings) -> SettingsReload {
        var merged: SettingLayer = [:]
        var applied: [SettingKey] = []
        var needsRestart: [SettingKey] = []
        // Turning TLS off would put a listener that may face the network in clear
        // text without the checks made at start: that takes a restart.
        let turnsTLSOff = tlsCert != nil && fresh.tlsCert == nil
        for key in SettingKey.all {
            let now = assignments[key.name]
            let next = fresh.assignments[key.name]
            guard now?.values != next?.values else {
                merged[key.name] = next ?? now
                continue
            }
            switch turnsTLSOff && (key == .tlsCert || key == .tlsKey) ? .restart : key.reload {
            case .onHUP:
                merged[key.name] = next
                applied.append(key)
            case .restart:
                merged[key.name] = now
                needsRestart.append(key)
            }
        }
        // Every value was valid in one of the two; a pair that must agree (tls-cert and
        // tls-key) reloads together. Should the mix still not hold, nothing changes.
        guard case .success(let settings) = Settings.resolve(layers: [merged], problems: []) else {
            return SettingsReload(settings: self, applied: [], needsRestart: applied + needsRestart)
        }
        return SettingsReload(settings: settings, applied: applied, needsRestart: needsRestart)
    }

    /// A setting's value as `config show` and the log print it: masked when secret.
    public func display(_ key: SettingKey) -> String {
        guard let values = assignments[key.name]?.values, !values.isEmpty else { return "" }
        if key.secret { return "********" }
        return values.joined(separator: ", ")
    }
}
