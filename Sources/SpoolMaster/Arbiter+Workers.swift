import CSpoolSys
import Logging
import SpoolStore
import SpoolSystem
import SpoolWorker

#if canImport(Glibc)
import Glibc
#endif

/// Spawning, reaping, replacing and watching workers: what the loop does between signals.
extension Arbiter {
    func reap() {
        while true {
            var status: Int32 = 0
            let pid = waitpid(-1, &status, WNOHANG)
            guard pid > 0 else { return }
            if pid == chore?.pid {
                choreEnded(status: status)
                continue
            }
            if pid == dispatcher?.pid {
                dispatcherEnded(status: status)
                continue
            }
            if pid == upgrade.child {
                upgradeChildExited(status: status)
                continue
            }
            guard let worker = workers.removeValue(forKey: pid) else { continue }
            scoreboard?.retireMetrics(ofBoard: worker.boardIndex)
            scoreboard?.board(worker.boardIndex).reset()
            let how = Self.describe(status: status)
            let metadata: Logger.Metadata = ["pid": "\(pid)", "slot": "\(worker.slot)", "status": "\(how)"]
            if worker.retiring || phase != .running {
                logger.info("worker exited", metadata: metadata)
            } else {
                logger.warning("worker exited", metadata: metadata)
            }
            recoverUploads(of: pid, how: how)
            if !worker.retiring && phase == .running { scoreboard?.master.count(.workerDeaths) }
            if replacement?.new == pid { replacement = nil }
            if replacement?.old == pid { replacement = nil }
            guard phase == .running, !worker.retiring else { continue }

            let lived = UTCTime.monotonic() - worker.startedAt
            let bootFailure = Self.exitCode(status) == WorkerExit.bootFailure || lived < Self.minimumLifetime
            if bootFailure { registerBootFailure(slot: worker.slot) }
        }
    }

    /// The master, not the dead worker, has what its uploads had on disk recorded:
    /// by a chore (Arbiter+Chores.swift), so a slow or locked database never holds
    /// up the loop that reaps, respawns and answers signals.
    func recoverUploads(of pid: Int32, how: String) {
        pendingRecoveries.append((pid, how))
    }

    func registerBootFailure(slot: Int) {
        bootFailures += 1
        if bootFailures >= config.maxBootFailures {
            logger.critical("workers keep dying at start; giving up", metadata: ["failures": "\(bootFailures)"])
            exitCode = MasterExit.workersFailing
            stop(graceful: false)
            return
        }
        let delay = Backoff.delay(afterFailures: bootFailures)
        nextSpawnAt = UTCTime.monotonic() + delay
        logger.warning("worker died early; backing off", metadata: [
            "slot": "\(slot)", "failures": "\(bootFailures)", "delay": "\(delay)",
        ])
    }

    /// A worker that has stayed up past the minimum lifetime ends a run of failures.
    func forgiveBootFailures() {
        guard bootFailures > 0, let board = scoreboard else { return }
        let now = UTCTime.monotonic()
        if workers.values.contains(where: { board.board($0.boardIndex).heartbeat > 0 && now - $0.startedAt >= Self.minimumLifetime }) {
            bootFailures = 0
        }
    }

    func maintainWorkerCount() {
        guard UTCTime.monotonic() >= nextSpawnAt else { return }
        let used = Set(workers.values.filter { !$0.retiring }.map(\.slot))
        for slot in 0..<wantedWorkers where !used.contains(slot) {
            spawn(slot: slot)
        }
    }

    /// How many workers this master wants, for every worker's readiness check
    /// (GET /readyz, HEALTH): none while idle (WINCH) or stopping.
    func publishWantedWorkers() {
        if case .running = phase { scoreboard?.wantedWorkers = wantedWorkers } else { scoreboard?.wantedWorkers = 0 }
    }

    /// HUP: start a new worker for the next old one, and QUIT the old one once the new one is ready.
    func advanceReplacement() {
        guard let board = scoreboard else { return }
        if let (new, old) = replacement {
            guard let worker = workers[new] else {
                replacement = nil
                return
            }
            if board.board(worker.boardIndex).heartbeat > 0 {
                if workers[old] != nil {
                    workers[old]?.retiring = true
                    kill(old, SIGQUIT)
                }
                logger.info("worker replaced", metadata: ["old": "\(old)", "new": "\(new)"])
                replacement = nil
            }
            return
        }
        while let old = toReplace.first {
            toReplace.removeFirst()
            guard let worker = workers[old], !worker.retiring, UTCTime.monotonic() >= nextSpawnAt else { continue }
            if let new = spawn(slot: worker.slot, alongside: true) { replacement = (new, old) }
            return
        }
    }

    /// Has partial uploads nobody resumed within --partial-ttl deleted (by a chore);
    /// looks a few times per TTL, at most once a minute.
    func expirePartials() {
        let now = UTCTime.monotonic()
        guard now >= nextExpiry else { return }
        nextExpiry = now + min(60, max(0.5, config.partialTTL / 4))
        expiryDue = true
    }

    /// QUITs the workers whose slots are `first` and above (TTOU, WINCH).
    func retire(slotsFrom first: Int) {
        for (pid, worker) in workers where worker.slot >= first && !worker.retiring {
            workers[pid]?.retiring = true
            kill(pid, SIGQUIT)
        }
    }

    /// Seconds since a heartbeat. The clock is read before the board, so a worker
    /// that beat in between is ahead of `now`: that is no silence at all (computed
    /// with wrapping subtraction, it was 584 million years, and an abort: a 4 GiB
    /// upload beating on every chunk met it in a test).
    static func silence(lastBeat: UInt64, now: UInt64) -> Double {
        lastBeat >= now ? 0 : Double(now - lastBeat) / 1000
    }

    /// Aborts a worker whose heartbeat is older than the timeout, then kills it if ABRT did not.
    func watchdog() {
        guard let board = scoreboard else { return }
        let now = UTCTime.monotonic()
        let nowMs = Scoreboard.nowMilliseconds()
        for (pid, worker) in workers {
            if let abortedAt = worker.abortedAt {
                if now - abortedAt > Self.abortGrace {
                    logger.error("worker ignored ABRT; killing", metadata: ["pid": "\(pid)"])
                    kill(pid, SIGKILL)
                }
                continue
            }
            let last = board.board(worker.boardIndex).heartbeat
            let silentFor = last > 0 ? Self.silence(lastBeat: last, now: nowMs) : now - worker.startedAt
            guard silentFor > config.timeout else { continue }
            // A thread in uninterruptible sleep is the kernel making it wait for the disk
            // (writeback throttling of a full page cache, a slow device): that worker is
            // not hung, and aborting it would cut every upload it serves. Up to five
            // times the timeout it is waited for.
            if silentFor < config.timeout * 5, Self.waitingOnDisk(pid) {
                if now - (worker.diskWaitLoggedAt ?? 0) >= 10 {
                    logger.warning("worker silent but waiting on the disk; not aborting it", metadata: [
                        "pid": "\(pid)", "silent": "\(Int(silentFor))s", "timeout": "\(Int(config.timeout))s",
                    ])
                    workers[pid]?.diskWaitLoggedAt = now
                }
                continue
            }
            logger.error("worker timed out; aborting it", metadata: [
                "pid": "\(pid)", "silent": "\(Int(silentFor))s", "timeout": "\(Int(config.timeout))s",
                "phase": "\(last > 0 ? "serving" : "booting")",
            ])
            workers[pid]?.abortedAt = now
            kill(pid, SIGABRT)
            scoreboard?.master.count(.watchdogAborts)
        }
    }

    /// Whether any thread of `pid` is in uninterruptible sleep (`D` in /proc), as a
    /// thread waiting for the disk is.
    static func waitingOnDisk(_ pid: Int32) -> Bool {
        guard let threads = try? Files.list("/proc/\(pid)/task") else { return false }
        return threads.contains { tid in
            guard let stat = try? Files.readSmall("/proc/\(pid)/task/\(tid)/stat") else { return false }
            return ProcessStat.state(of: stat) == "D"
        }
    }

    /// Forks; in the child (0 returned) everything that belongs to the master is
    /// dropped: its signal handling, its self-pipe and its pid file's lock.
    func forkChild() -> Int32 {
        fflush(nil)  // or the child would print the parent's buffered output again
        let pid = fork()
        if pid == 0 {
            _ = spool_signals_reset()
            close(selfPipe.read)
            close(selfPipe.write)
            if let pidFile { close(pidFile.fd) }
            if let notifier { close(notifier.descriptor) }
        }
        return pid
    }

    @discardableResult
    func spawn(slot: Int, alongside: Bool = false) -> Int32? {
        guard let line = sockets.first(where: { $0.kind == .line })?.socket, let board = scoreboard else { return nil }
        let used = Set(workers.values.map(\.boardIndex))
        guard let index = (0..<Scoreboard.capacity).first(where: { !used.contains($0) }) else { return nil }
        board.board(index).reset()
        let pid = forkChild()
        if pid == 0 {
            WorkerProcess.run(WorkerConfiguration(
                listenFD: line.fd, httpFD: sockets.first(where: { $0.kind == .http })?.socket.fd,
                metricsFD: sockets.first(where: { $0.kind == .metrics })?.socket.fd, directory: config.directory, masterPID: masterPID, slot: slot,
                scoreboard: board, board: board.board(index), logFile: config.logFile,
                limits: config.limits, tls: tls, hooks: config.hooks, backends: config.backends))
        }
        if pid < 0 {
            logger.error("cannot fork a worker", metadata: ["error": "\(SystemError.last("fork"))"])
            registerBootFailure(slot: slot)
            return nil
        }
        workers[pid] = Worker(slot: slot, boardIndex: index, startedAt: UTCTime.monotonic())
        logger.info("worker spawned", metadata: ["pid": "\(pid)", "slot": "\(slot)"])
        return pid
    }

    func signalWorkers(_ signal: Int32) {
        for pid in workers.keys { kill(pid, signal) }
    }

    func reopenLog() {
        guard let path = config.logFile else { return }
        do {
            try LogFile.redirectStandardError(to: path)
            logger.info("log file reopened", metadata: ["path": "\(path)"])
        } catch {
            logger.error("cannot reopen the log file", metadata: ["error": "\(error)"])
        }
    }

    func cleanUp() {
        for (_, socket) in sockets { close(socket.fd) }
        if upgrade.ownsPortsFile { try? Files.unlink(config.directory.portsFilePath) }
        pidFile?.remove()
    }
}
