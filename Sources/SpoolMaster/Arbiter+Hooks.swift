import CSpoolSys
import Logging
import SpoolHooks
import SpoolStore
import SpoolSystem

#if canImport(Glibc)
import Glibc
#endif

/// The hook dispatcher (docs/HOOKS.md): one child process for the whole server
/// that delivers the event log to the notification hooks. The master forks it
/// when a notification hook is configured, replaces it when it dies (a second
/// later) and on HUP (new settings), and stops it with the workers. It leaves
/// with the master (parent-death signal), and a delivery it was making when it
/// went is made again by the next one: the cursor only moves after success.
extension Arbiter {
    struct Dispatcher {
        let pid: Int32
        /// Asked to stop (HUP, stop): its end is expected, and the next starts at once.
        var stopping = false
    }

    func maintainDispatcher() {
        guard dispatcher == nil, config.hooks.hasNotifications, UTCTime.monotonic() >= nextDispatcherAt else { return }
        let (hooks, directory, master, board, backends) = (config.hooks, config.directory, masterPID, scoreboard?.master, config.backends)
        let pid = forkChild()
        if pid == 0 {
            _ = spool_set_thread_name("spoold-hooks")
            _ = spool_set_parent_death_signal(SIGTERM)
            if getppid() != master { _exit(0) }
            Fault.arm()
            let logger = Logger(label: "hooks")
            do {
                let store = try Store(directory: directory, actor: "hooks:\(getpid())", backends: backends)
                var dispatcher = HookDispatcher(store: store, hooks: hooks, logger: logger) { getppid() != master }
                dispatcher.board = board
                dispatcher.run(lockPath: directory.runPath + "/hooks.lock")
            } catch {
                logger.error("hook dispatcher cannot open the database", metadata: ["error": "\(error)"])
                fflush(nil)
                _exit(1)
            }
            fflush(nil)
            _exit(0)
        }
        guard pid > 0 else {
            logger.error("cannot fork the hook dispatcher; will try again", metadata: ["error": "\(SystemError.last("fork"))"])
            nextDispatcherAt = UTCTime.monotonic() + 1
            return
        }
        dispatcher = Dispatcher(pid: pid)
        logger.debug("hook dispatcher started", metadata: ["pid": "\(pid)"])
    }

    func dispatcherEnded(status: Int32) {
        guard let ended = dispatcher else { return }
        dispatcher = nil
        if ended.stopping {
            nextDispatcherAt = 0
        } else {
            logger.warning("hook dispatcher exited; starting another in a second", metadata: [
                "pid": "\(ended.pid)", "status": "\(Self.describe(status: status))",
            ])
            nextDispatcherAt = UTCTime.monotonic() + 1
        }
    }

    /// A delivery under way is cut short; the next dispatcher makes it again.
    func stopDispatcher(_ signal: Int32 = SIGTERM) {
        guard let running = dispatcher else { return }
        dispatcher?.stopping = true
        kill(running.pid, signal)
    }
}
