import CSpoolSys
import Logging
import SpoolStore
import SpoolSystem

#if canImport(Glibc)
import Glibc
#endif

/// The master's database work: recording a dead worker's uploads (`interrupted`,
/// with what their files hold, fsynced) and expiring partial uploads. Both wait
/// on SQLite's locks (up to its 5 s busy timeout) and on fsync, so the master does
/// neither in its loop: it forks a short-lived child for them, one at a time, and
/// reaps it like a worker. Work that fails is tried again a second later. The
/// master stays single-threaded and opens no database after start-up.
extension Arbiter {
    struct Chore {
        let pid: Int32
        let recoveries: [(pid: Int32, how: String)]
        let expiry: Bool
    }

    func startChore() {
        guard chore == nil, UTCTime.monotonic() >= nextChoreAt, !pendingRecoveries.isEmpty || expiryDue else { return }
        let (recoveries, expiry) = (pendingRecoveries, expiryDue)
        pendingRecoveries = []
        expiryDue = false
        let pid = forkChild()
        if pid == 0 {
            _ = spool_set_thread_name("spoold-chore")  // told apart from workers in ps and /proc
            Fault.arm()  // test builds: SPOOL_FAULT fires in this child as in workers
            let ok = runChore(recoveries: recoveries, expiry: expiry)
            fflush(nil)
            _exit(ok ? 0 : 1)
        }
        guard pid > 0 else {
            logger.error("cannot fork for database work; will try again", metadata: ["error": "\(SystemError.last("fork"))"])
            requeue(recoveries, expiry)
            return
        }
        chore = Chore(pid: pid, recoveries: recoveries, expiry: expiry)
    }

    /// In the child. True when every part of the work was done.
    func runChore(recoveries: [(pid: Int32, how: String)], expiry: Bool) -> Bool {
        let store: Store
        do {
            store = try Store(directory: config.directory, actor: "master:\(masterPID)", backends: config.backends)
        } catch {
            logger.error("cannot open the database for the master's work", metadata: ["error": "\(error)"])
            return false
        }
        var ok = true
        for (pid, how) in recoveries {
            do {
                for (id, received) in try store.interruptReceiving(workerPID: Int(pid), reason: "worker \(pid) \(how)") {
                    logger.warning("upload interrupted by its worker's exit",
                                   metadata: ["id": "\(id)", "received": "\(received)", "worker": "\(pid)"])
                }
            } catch {
                logger.error("cannot record the uploads of a dead worker", metadata: ["pid": "\(pid)", "error": "\(error)"])
                ok = false
            }
        }
        if expiry {
            let cutoff = UTCTime.epochMilliseconds() - Int64(config.partialTTL * 1000)
            let cutoffText = UTCTime.format(seconds: Int(cutoff / 1000), milliseconds: Int(cutoff % 1000))
            do {
                for id in try store.expireInterrupted(before: cutoffText) {
                    logger.info("partial upload expired", metadata: ["id": "\(id)", "ttl": "\(config.partialTTL)s"])
                }
            } catch {
                logger.error("cannot expire partial uploads", metadata: ["error": "\(error)"])
                ok = false
            }
            // Retention runs at the same pace, a batch at a time; what is left waits for the next turn.
            do {
                for row in try store.applyRetention(config.retention, nowMilliseconds: UTCTime.epochMilliseconds()) {
                    logger.info("upload removed by retention", metadata: [
                        "id": "\(row.id)", "state": "\(row.state.rawValue)", "updated": "\(row.updatedAt)", "retain": "\(config.retention)",
                    ])
                }
            } catch {
                logger.error("cannot apply the retention policy", metadata: ["error": "\(error)"])
                ok = false
            }
        }
        return ok
    }

    /// Reaped: a chore that failed gives its work back, for a second later.
    func choreEnded(status: Int32) {
        guard let done = chore else { return }
        chore = nil
        if Self.exitCode(status) != 0 {
            logger.error("the master's database work failed; trying again", metadata: ["status": "\(Self.describe(status: status))"])
            requeue(done.recoveries, done.expiry)
        }
    }

    private func requeue(_ recoveries: [(pid: Int32, how: String)], _ expiry: Bool) {
        pendingRecoveries = recoveries + pendingRecoveries
        expiryDue = expiryDue || expiry
        nextChoreAt = UTCTime.monotonic() + 1
    }

    /// Stopping, every worker gone: nothing is left to supervise, so the last of the
    /// work is done here, waiting for the disk and the database as long as it takes.
    func finishChoresBeforeExit() {
        if let running = chore {
            var status: Int32 = 0
            while waitpid(running.pid, &status, 0) < 0 && errno == EINTR {}
            choreEnded(status: status)
        }
        guard !pendingRecoveries.isEmpty else { return }
        _ = runChore(recoveries: pendingRecoveries, expiry: false)
        pendingRecoveries = []
    }
}
