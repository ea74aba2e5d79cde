import SpoolSystem

#if canImport(Glibc)
import Glibc
#endif

/// What the master has told systemd so far.
struct SystemdReport {
    var activated = false
    /// READY=1 sent for the start.
    var announcedReady = false
    /// HUP: RELOADING=1 sent, READY=1 due once every worker is replaced.
    var reloading = false
    var lastStatus = ""
    /// WATCHDOG_USEC asks for a WATCHDOG=1 at least this often (half its value).
    var watchdogInterval: Double?
    var nextWatchdogAt = 0.0
}

extension Arbiter {
    /// Reads WATCHDOG_USEC (meant for this process when WATCHDOG_PID is unset or ours).
    func setUpSystemdWatchdog() {
        defer {
            unsetenv("WATCHDOG_USEC")
            unsetenv("WATCHDOG_PID")
        }
        guard notifier != nil, let text = getenv("WATCHDOG_USEC").map({ String(cString: $0) }),
            let microseconds = Double(text), microseconds > 0
        else { return }
        if let owner = getenv("WATCHDOG_PID").map({ String(cString: $0) }), Int32(owner) != masterPID { return }
        systemd.watchdogInterval = microseconds / 2_000_000
    }

    /// Once per turn of the loop: READY=1 when every worker accepts (at start and
    /// after a HUP has replaced them all), STATUS= when it changed, WATCHDOG=1 when due.
    func reportToSystemd() {
        // Handed over (USR2), the new master speaks for the service: with NotifyAccess=all
        // systemd takes any process's word, and this one's STATUS= while it drained
        // ("0 of 2 workers ready") replaced the new master's (seen under systemd 252).
        guard let notifier, let board = scoreboard, !upgrade.handedOver else { return }
        let ready = readyWorkers()
        let totals = board.totals()
        let status = "\(ready) of \(wantedWorkers) workers ready, \(totals.connections) connections, "
            + "\(totals.uploads) uploads in flight"
        var fields: [String] = []
        var announcing = false, reloaded = false
        // A new master (USR2) is ready once the old one has been told to go.
        if case .running = phase, ready >= wantedWorkers, upgrade.from == nil {
            announcing = !systemd.announcedReady
            reloaded = systemd.announcedReady && systemd.reloading && toReplace.isEmpty && replacement == nil
            if announcing || reloaded { fields.append("READY=1") }
            // The old master was systemd's main process; from now on this one is.
            if announcing && upgrade.replaced { fields.append("MAINPID=\(masterPID)") }
        }
        if status != systemd.lastStatus { fields.append("STATUS=" + status) }
        if let interval = systemd.watchdogInterval, UTCTime.monotonic() >= systemd.nextWatchdogAt {
            fields.append("WATCHDOG=1")
            systemd.nextWatchdogAt = UTCTime.monotonic() + interval
        }
        // Whatever could not be sent is sent again on the next turn (a beat waits for its next time).
        guard !fields.isEmpty, notifier.send(fields) else { return }
        systemd.lastStatus = status
        if announcing {
            systemd.announcedReady = true
            logger.info("ready: told systemd", metadata: ["workers": "\(ready)"])
        }
        if reloaded { systemd.reloading = false }
    }

    /// HUP: systemd shows the service reloading until READY=1 follows.
    func reportReloading() {
        guard let notifier else { return }
        systemd.reloading = true
        notifier.send(["RELOADING=1", "MONOTONIC_USEC=\(UInt64(UTCTime.monotonic() * 1_000_000))"])
    }

    func reportStopping() {
        notifier?.send(["STOPPING=1"])
    }
}
