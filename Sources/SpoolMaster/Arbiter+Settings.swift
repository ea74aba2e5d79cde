import Logging
import SpoolSystem

/// HUP reads the configuration file again, as nginx's reload does: what can change
/// while serving goes to the workers HUP then starts; what cannot is logged and
/// left for a restart or a USR2 upgrade; a file that no longer passes the checks
/// changes nothing.
extension Arbiter {
    func rereadSettings() {
        guard let settings = config.settings, var sources = config.settingSources, let path = sources.file?.path else { return }
        let fresh: Settings
        switch SettingsFile.read(path).flatMap({ file in
            sources.file = file
            return Settings.resolve(sources)
        }) {
        case .success(let resolved): fresh = resolved
        case .failure(let error):
            for problem in error.problems {
                logger.error("configuration not reloaded; the settings in force stay", metadata: ["problem": "\(problem)"])
            }
            return
        }
        let reload = settings.reloading(fresh)
        for key in reload.needsRestart {
            logger.warning("setting changed but not applied: it takes a restart or a USR2 upgrade", metadata: [
                "key": "\(key.name)", "in_force": "\(settings.display(key))", "in_file": "\(fresh.display(key))",
            ])
        }
        // Before the lines below, and before the new workers are forked: they inherit it.
        if reload.applied.contains(.logLevel) { SpoolLogging.level = reload.settings.logLevel }
        for key in reload.applied {
            logger.notice("setting reloaded", metadata: ["key": "\(key.name)", "value": "\(reload.settings.display(key))"])
        }
        var next = MasterConfiguration(reload.settings)
        next.listeners = config.listeners
        next.limits.loopback = config.limits.loopback
        next.settingSources = sources
        config = next
        if reload.applied.contains(.workers) {
            wantedWorkers = reload.settings.workers
            retire(slotsFrom: wantedWorkers)
        }
    }
}
