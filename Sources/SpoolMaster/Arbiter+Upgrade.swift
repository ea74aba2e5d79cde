import CSpoolSys
import SpoolSystem

#if canImport(Glibc)
import Glibc
#endif

/// USR2, the binary upgrade, as unicorn and nginx do it (docs/SIGNALS.md):
///
/// 1. The old master renames its pid file to `spoold.pid.oldbin` and forks a
///    child that executes the binary on disk with the same arguments, handing it
///    the listening sockets as systemd would (LISTEN_FDS) and its own pid
///    (SPOOL_UPGRADE_FROM).
/// 2. The new master takes the pid file and the sockets, migrates the database if
///    it must, and starts its workers; both sets of workers accept meanwhile.
/// 3. Once every new worker accepts, the new master sends the old one QUIT: it
///    drains its workers and exits. If the new master exits first, or is not ready
///    within `--timeout`, the old one takes its pid file back and keeps serving.
struct Upgrade {
    /// The new master, while the old one waits for it.
    var child: Int32?
    /// In a new master: the old master to send QUIT once every worker accepts.
    var from: Int32?
    var deadline = Double.infinity
    /// This master was told to stop by the one that replaced it: no STOPPING=1 for
    /// systemd, and the ports file is the new master's.
    var handedOver = false
    /// A new master: tells systemd its pid (MAINPID=) with READY=1.
    var replaced = false
    /// The ports file is this master's to remove at exit: not an old master's that
    /// handed over, nor a new master's that never took over.
    var ownsPortsFile = true
}

extension Arbiter {
    /// The binary to execute on USR2: the path this one was started from, read at
    /// start (once replaced, /proc/self/exe names the old, deleted file).
    static func executablePath() -> String? {
        var buffer = [CChar](repeating: 0, count: 4096)
        let n = readlink("/proc/self/exe", &buffer, buffer.count)
        guard n > 0 else { return nil }
        return String(decoding: buffer[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    /// At start: whether this master replaces a running one (the variable is then removed).
    func takeUpgradeRole() {
        guard let text = getenv("SPOOL_UPGRADE_FROM").map({ String(cString: $0) }) else { return }
        unsetenv("SPOOL_UPGRADE_FROM")
        guard let pid = Int32(text), pid > 1 else { return }
        upgrade.from = pid
        upgrade.replaced = true
        upgrade.ownsPortsFile = false
        upgrade.deadline = UTCTime.monotonic() + config.timeout
    }

    func startUpgrade() {
        guard upgrade.child == nil else {
            logger.warning("upgrade already in progress", metadata: ["new_master": "\(upgrade.child ?? 0)"])
            return
        }
        guard let binary = executable, let pidFile else {
            logger.error("upgrade: cannot tell which binary to execute")
            return
        }
        let oldbin = pidFile.path + ".oldbin"
        do {
            try Files.rename(pidFile.path, oldbin)
        } catch {
            logger.error("upgrade: cannot rename the pid file", metadata: ["error": "\(error)"])
            return
        }
        self.pidFile = PidFile(path: oldbin, fd: pidFile.fd)
        let pid = forkChild()
        if pid == 0 { execNewMaster(binary) }
        guard pid > 0 else {
            logger.error("upgrade: cannot fork", metadata: ["error": "\(SystemError.last("fork"))"])
            restorePidFile()
            return
        }
        upgrade.child = pid
        logger.info("upgrade: new master started; this one serves until it is ready",
                    metadata: ["new_master": "\(pid)", "binary": "\(binary)"])
    }

    /// In the forked child: the sockets to descriptors 3, 4 (out of the way first,
    /// so no dup2 lands on one not yet moved), the variables, then exec. Never returns.
    func execNewMaster(_ binary: String) -> Never {
        let high = sockets.map { fcntl($0.socket.fd, F_DUPFD_CLOEXEC, 100) }
        for (index, fd) in high.enumerated() where fd >= 0 {
            dup2(fd, 3 + Int32(index))  // the copy is not close-on-exec
        }
        spool_close_from(3 + Int32(high.count))
        setenv("LISTEN_PID", "\(getpid())", 1)
        setenv("LISTEN_FDS", "\(high.count)", 1)
        setenv("LISTEN_FDNAMES", sockets.map(\.kind.rawValue).joined(separator: ":"), 1)
        setenv("SPOOL_UPGRADE_FROM", "\(masterPID)", 1)
        if let path = notifier?.socketPath { setenv("NOTIFY_SOCKET", path, 1) }
        var argv: [UnsafeMutablePointer<CChar>?] = ([binary] + CommandLine.arguments.dropFirst()).map { strdup($0) }
        argv.append(nil)
        execv(binary, argv)
        let message = "spoold: upgrade: cannot execute \(binary): \(SystemError.last("execv"))\n"
        _ = message.withCString { write(2, $0, strlen($0)) }
        _exit(127)
    }

    func restorePidFile() {
        guard let pidFile, pidFile.path.hasSuffix(".oldbin") else { return }
        let path = String(pidFile.path.dropLast(".oldbin".count))
        do {
            try Files.rename(pidFile.path, path)
            self.pidFile = PidFile(path: path, fd: pidFile.fd)
        } catch {
            logger.error("upgrade: cannot rename the pid file back", metadata: ["error": "\(error)"])
        }
    }

    /// Reaped: the new master exited. Before it took over, that is a failed upgrade.
    func upgradeChildExited(status: Int32) {
        upgrade.child = nil
        let how = Self.describe(status: status)
        if upgrade.handedOver {
            logger.warning("the new master exited after taking over", metadata: ["status": "\(how)"])
            return
        }
        logger.error("upgrade failed: the new master exited before it was ready; this master keeps serving",
                     metadata: ["status": "\(how)"])
        restorePidFile()
    }

    /// In a new master, once per turn: QUIT to the old master once every worker
    /// accepts; giving up (exit 1) if that takes longer than --timeout.
    func advanceUpgradeHandOver() {
        guard let old = upgrade.from, case .running = phase else { return }
        if readyWorkers() >= wantedWorkers {
            kill(old, SIGQUIT)
            upgrade.from = nil
            upgrade.ownsPortsFile = true
            logger.info("upgrade: every worker accepts; the old master drains and exits", metadata: ["old_master": "\(old)"])
        } else if UTCTime.monotonic() >= upgrade.deadline {
            upgrade.from = nil
            logger.error("upgrade: workers not ready within --timeout; exiting, the old master keeps serving",
                         metadata: ["timeout": "\(config.timeout)"])
            exitCode = 1
            stop(graceful: false)
        }
    }

    /// Workers that are not retiring and have beaten at least once (they accept).
    func readyWorkers() -> Int {
        guard let board = scoreboard else { return 0 }
        return workers.values.filter { !$0.retiring && board.board($0.boardIndex).heartbeat > 0 }.count
    }
}
