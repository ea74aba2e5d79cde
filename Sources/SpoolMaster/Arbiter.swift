import CSpoolSys
import Logging
import SpoolStore
import SpoolSystem
import SpoolWorker

#if canImport(Glibc)
import Glibc
#endif

public enum MasterError: Error, CustomStringConvertible {
    case startup(String)

    public var description: String {
        switch self {
        case .startup(let message): message
        }
    }
}

/// The master process, in the manner of unicorn's and gunicorn's arbiters.
///
/// It binds the socket, migrates the database and forks the workers, then sits
/// in one loop: signal handlers only write a byte to a self-pipe; the loop reads
/// those bytes into a queue and handles each in `handle(signal:)` (one switch,
/// mirrored in docs/SIGNALS.md), reaps and replaces workers, and watches their
/// heartbeats. It never accepts a connection and never starts a thread.
public final class Arbiter {
    struct Worker {
        let slot: Int
        let boardIndex: Int
        let startedAt: Double
        /// Sent QUIT: finishing its uploads, not to be counted or replaced.
        var retiring = false
        /// When the watchdog sent ABRT.
        var abortedAt: Double?
    }

    enum Phase: Equatable {
        case running
        /// WINCH: no workers until HUP.
        case idle
        /// `termAt`: when the remaining workers get TERM; `killAt`: when they get KILL.
        case stopping(termAt: Double, killAt: Double)
    }

    static let abortGrace = 5.0
    /// A worker that dies sooner than this after starting counts as a boot failure.
    static let minimumLifetime = 2.0

    private var config: MasterConfiguration
    private var logger = Logger(label: "master")
    private var workers: [Int32: Worker] = [:]
    private var wantedWorkers: Int
    private var phase = Phase.running
    private var exitCode = MasterExit.stopped
    private var socket: ListenSocket?
    private var pidFile: PidFile?
    private var scoreboard: Scoreboard?
    private var selfPipe: (read: Int32, write: Int32) = (-1, -1)
    private var signalQueue: [Int32] = []
    private var masterPID: Int32 = 0

    /// Early deaths in a row, and when the next worker may start after one.
    private var bootFailures = 0
    private var nextSpawnAt = 0.0
    /// HUP: workers still to be replaced, and the new worker being waited for.
    private var toReplace: [Int32] = []
    private var replacement: (new: Int32, old: Int32)?
    /// When abandoned partial uploads are next looked for.
    private var nextExpiry = 0.0

    public init(config: MasterConfiguration) {
        self.config = config
        self.wantedWorkers = max(1, config.workers)
    }

    /// Runs until the server stops; returns the process exit code.
    public func run() throws(MasterError) -> Int32 {
        masterPID = getpid()
        try start()
        defer { cleanUp() }
        return loop()
    }

    // MARK: - Start-up

    private func start() throws(MasterError) {
        let directory = config.directory
        if let logFile = config.logFile {
            do { try LogFile.redirectStandardError(to: logFile) } catch { throw .startup("log file: \(error)") }
        }
        do { try directory.prepare() } catch { throw .startup("cannot create data directory: \(error)") }
        do { pidFile = try PidFile.lock(directory.pidFilePath) } catch { throw .startup(error.description) }

        // Migrate and recover before any worker exists, then close the database:
        // workers never race to migrate, and no SQLite connection crosses a fork.
        do {
            let (store, applied) = try Store.openMigrating(directory: directory, actor: "master:\(masterPID)")
            for migration in applied {
                logger.info("migration applied", metadata: ["version": "\(migration.version)", "name": "\(migration.name)"])
            }
            for (id, received) in try store.interruptReceiving(workerPID: nil, reason: "server restarted") {
                logger.warning("upload left receiving by an earlier run marked interrupted",
                               metadata: ["id": "\(id)", "received": "\(received)"])
            }
            for name in try store.removeStrayTempFiles() {
                logger.warning("removed a temporary file no upload owns", metadata: ["file": "\(name)"])
            }
            let tokensExist = try store.hasActiveTokens()
            if !config.limits.loopback && !config.limits.allowAnonymous && !tokensExist {
                throw MasterError.startup(
                    "refusing to serve \(config.host) without authentication: no upload token exists. "
                        + "Create one with `spoold admin token create --name NAME` (clients then pass --token), "
                        + "or start with --allow-anonymous to accept anyone who can reach this address")
            }
        } catch let error as MasterError {
            throw error
        } catch {
            throw .startup("database: \(error)")
        }

        let socket: ListenSocket
        do { socket = try ListenSocket.bind(host: config.host, port: config.port) } catch {
            throw .startup("cannot listen: \(error)")
        }
        self.socket = socket

        do { scoreboard = try Scoreboard.create() } catch { throw .startup("scoreboard: \(error)") }
        do { try pidFile?.write(pid: masterPID) } catch { throw .startup("pid file: \(error)") }

        var fds: [Int32] = [0, 0]
        guard spool_pipe_nonblocking(&fds) == 0 else { throw .startup("self-pipe: \(SystemError.last("pipe"))") }
        selfPipe = (fds[0], fds[1])
        guard spool_signals_install_self_pipe(selfPipe.write) == 0 else {
            throw .startup("signals: \(SystemError.last("sigaction"))")
        }
        logger.info("listening", metadata: [
            "address": "\(socket.address)", "workers": "\(wantedWorkers)", "data_dir": "\(directory.root)",
            "pid": "\(masterPID)",
        ])
    }

    // MARK: - The loop

    private func loop() -> Int32 {
        while true {
            reap()
            watchdog()
            switch phase {
            case .running:
                expirePartials()
                forgiveBootFailures()
                advanceReplacement()
                maintainWorkerCount()
            case .idle:
                break
            case .stopping(let termAt, let killAt):
                if workers.isEmpty {
                    logger.info("stopped", metadata: ["exit": "\(exitCode)"])
                    return exitCode
                }
                let now = UTCTime.monotonic()
                if now >= killAt {
                    for pid in workers.keys {
                        logger.warning("worker still running; killing", metadata: ["pid": "\(pid)"])
                        kill(pid, SIGKILL)
                    }
                    phase = .stopping(termAt: .infinity, killAt: now + 5)
                } else if now >= termAt {
                    logger.warning("graceful stop timed out; stopping workers now", metadata: ["workers": "\(workers.count)"])
                    signalWorkers(SIGTERM)
                    phase = .stopping(termAt: .infinity, killAt: killAt)
                }
            }
            waitForSignals(timeoutMilliseconds: 200)
            while !signalQueue.isEmpty {
                handle(signal: signalQueue.removeFirst())
            }
        }
    }

    /// The whole signal table (docs/SIGNALS.md).
    private func handle(signal: Int32) {
        logger.debug("signal", metadata: ["signal": "\(Self.name(signal))"])
        switch signal {
        case SIGCHLD:
            break  // reaped at the top of the loop
        case SIGTERM, SIGINT:
            logger.info("fast stop", metadata: ["signal": "\(Self.name(signal))"])
            stop(graceful: false)
        case SIGQUIT:
            logger.info("graceful stop", metadata: ["timeout": "\(config.gracefulTimeout)"])
            stop(graceful: true)
        case SIGHUP:
            guard isAcceptingChanges else { break }
            logger.info("reload: replacing every worker, one at a time")
            phase = .running
            toReplace = workers.filter { !$0.value.retiring }.keys.sorted()
        case SIGUSR1:
            reopenLog()
            signalWorkers(SIGUSR1)
        case SIGTTIN:
            guard isAcceptingChanges else { break }
            wantedWorkers += 1
            logger.info("one worker more", metadata: ["workers": "\(wantedWorkers)"])
        case SIGTTOU:
            guard isAcceptingChanges else { break }
            guard wantedWorkers > 1 else {
                logger.info("already at one worker")
                break
            }
            wantedWorkers -= 1
            logger.info("one worker fewer", metadata: ["workers": "\(wantedWorkers)"])
            retire(slotsFrom: wantedWorkers)
        case SIGWINCH:
            guard isAcceptingChanges else { break }
            logger.info("stopping every worker gracefully; the master stays (HUP starts them again)")
            phase = .idle
            toReplace = []
            retire(slotsFrom: 0)
        default:
            logger.info("signal ignored", metadata: ["signal": "\(Self.name(signal))"])
        }
    }

    private var isAcceptingChanges: Bool {
        if case .stopping = phase { return false }
        return true
    }

    private func stop(graceful: Bool) {
        let now = UTCTime.monotonic()
        if case .stopping(let termAt, _) = phase {
            // A second, faster request overrides a graceful stop in progress.
            if !graceful && termAt.isFinite {
                signalWorkers(SIGTERM)
                phase = .stopping(termAt: .infinity, killAt: now + 5)
            }
            return
        }
        // Stop accepting here too: once the workers close theirs, the socket is gone.
        if let socket { close(socket.fd) }
        socket = nil
        if graceful {
            for pid in workers.keys { workers[pid]?.retiring = true }
            signalWorkers(SIGQUIT)
            phase = .stopping(termAt: now + config.gracefulTimeout, killAt: now + config.gracefulTimeout + 5)
        } else {
            signalWorkers(SIGTERM)
            phase = .stopping(termAt: .infinity, killAt: now + 5)
        }
    }

    private func waitForSignals(timeoutMilliseconds: Int32) {
        var pfd = pollfd(fd: selfPipe.read, events: Int16(POLLIN), revents: 0)
        _ = poll(&pfd, 1, timeoutMilliseconds)
        var buffer = [UInt8](repeating: 0, count: 64)
        while true {
            let n = read(selfPipe.read, &buffer, buffer.count)
            guard n > 0 else { break }
            signalQueue.append(contentsOf: buffer.prefix(n).map { Int32($0) })
        }
    }

    // MARK: - Workers

    private func reap() {
        while true {
            var status: Int32 = 0
            let pid = waitpid(-1, &status, WNOHANG)
            guard pid > 0 else { return }
            guard let worker = workers.removeValue(forKey: pid) else { continue }
            scoreboard?.board(worker.boardIndex).reset()
            let how = Self.describe(status: status)
            let metadata: Logger.Metadata = ["pid": "\(pid)", "slot": "\(worker.slot)", "status": "\(how)"]
            if worker.retiring || phase != .running {
                logger.info("worker exited", metadata: metadata)
            } else {
                logger.warning("worker exited", metadata: metadata)
            }
            recoverUploads(of: pid, how: how)
            if replacement?.new == pid { replacement = nil }
            if replacement?.old == pid { replacement = nil }
            guard phase == .running, !worker.retiring else { continue }

            let lived = UTCTime.monotonic() - worker.startedAt
            let bootFailure = Self.exitCode(status) == WorkerExit.bootFailure || lived < Self.minimumLifetime
            if bootFailure { registerBootFailure(slot: worker.slot) }
        }
    }

    /// The master, not the dead worker, records what its uploads had on disk.
    private func recoverUploads(of pid: Int32, how: String) {
        do {
            let store = try Store(directory: config.directory, actor: "master:\(masterPID)")
            for (id, received) in try store.interruptReceiving(workerPID: Int(pid), reason: "worker \(pid) \(how)") {
                logger.warning("upload interrupted by its worker's exit",
                               metadata: ["id": "\(id)", "received": "\(received)", "worker": "\(pid)"])
            }
        } catch {
            logger.error("cannot record the uploads of a dead worker", metadata: ["pid": "\(pid)", "error": "\(error)"])
        }
    }

    private func registerBootFailure(slot: Int) {
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
    private func forgiveBootFailures() {
        guard bootFailures > 0, let board = scoreboard else { return }
        let now = UTCTime.monotonic()
        if workers.values.contains(where: { board.board($0.boardIndex).heartbeat > 0 && now - $0.startedAt >= Self.minimumLifetime }) {
            bootFailures = 0
        }
    }

    private func maintainWorkerCount() {
        guard UTCTime.monotonic() >= nextSpawnAt else { return }
        let used = Set(workers.values.filter { !$0.retiring }.map(\.slot))
        for slot in 0..<wantedWorkers where !used.contains(slot) {
            spawn(slot: slot)
        }
    }

    /// HUP: start a new worker for the next old one, and QUIT the old one once the new one is ready.
    private func advanceReplacement() {
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

    /// Deletes partial uploads nobody resumed within --partial-ttl; looks a few times per TTL, at most once a minute.
    private func expirePartials() {
        let now = UTCTime.monotonic()
        guard now >= nextExpiry else { return }
        nextExpiry = now + min(60, max(0.5, config.partialTTL / 4))
        let cutoff = UTCTime.epochMilliseconds() - Int64(config.partialTTL * 1000)
        let cutoffText = UTCTime.format(seconds: Int(cutoff / 1000), milliseconds: Int(cutoff % 1000))
        do {
            for id in try Store(directory: config.directory, actor: "master:\(masterPID)").expireInterrupted(before: cutoffText) {
                logger.info("partial upload expired", metadata: ["id": "\(id)", "ttl": "\(config.partialTTL)s"])
            }
        } catch {
            logger.error("cannot expire partial uploads", metadata: ["error": "\(error)"])
        }
    }

    /// QUITs the workers whose slots are `first` and above (TTOU, WINCH).
    private func retire(slotsFrom first: Int) {
        for (pid, worker) in workers where worker.slot >= first && !worker.retiring {
            workers[pid]?.retiring = true
            kill(pid, SIGQUIT)
        }
    }

    /// Aborts a worker whose heartbeat is older than the timeout, then kills it if ABRT did not.
    private func watchdog() {
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
            let silentFor = last > 0 ? Double(nowMs &- last) / 1000 : now - worker.startedAt
            guard silentFor > config.timeout else { continue }
            logger.error("worker timed out; aborting it", metadata: [
                "pid": "\(pid)", "silent": "\(Int(silentFor))s", "timeout": "\(Int(config.timeout))s",
                "phase": "\(last > 0 ? "serving" : "booting")",
            ])
            workers[pid]?.abortedAt = now
            kill(pid, SIGABRT)
        }
    }

    @discardableResult
    private func spawn(slot: Int, alongside: Bool = false) -> Int32? {
        guard let socket, let board = scoreboard else { return nil }
        let used = Set(workers.values.map(\.boardIndex))
        guard let index = (0..<Scoreboard.capacity).first(where: { !used.contains($0) }) else { return nil }
        board.board(index).reset()
        fflush(nil)  // or the child would print the parent's buffered output again
        let pid = fork()
        if pid == 0 {
            // In the child: drop everything that belongs to the master.
            _ = spool_signals_reset()
            close(selfPipe.read)
            close(selfPipe.write)
            if let pidFile { close(pidFile.fd) }
            WorkerProcess.run(WorkerConfiguration(
                listenFD: socket.fd, directory: config.directory, masterPID: masterPID, slot: slot,
                scoreboard: board, board: board.board(index), logFile: config.logFile,
                limits: config.limits))
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

    private func signalWorkers(_ signal: Int32) {
        for pid in workers.keys { kill(pid, signal) }
    }

    private func reopenLog() {
        guard let path = config.logFile else { return }
        do {
            try LogFile.redirectStandardError(to: path)
            logger.info("log file reopened", metadata: ["path": "\(path)"])
        } catch {
            logger.error("cannot reopen the log file", metadata: ["error": "\(error)"])
        }
    }

    private func cleanUp() {
        if let socket { close(socket.fd) }
        pidFile?.remove()
    }

    // MARK: - Wait statuses and signal names

    static func exitCode(_ status: Int32) -> Int32? {
        status & 0x7f == 0 ? (status >> 8) & 0xff : nil
    }

    static func describe(status: Int32) -> String {
        if let code = exitCode(status) { return "exit \(code)" }
        return "killed by \(name(status & 0x7f))"
    }

    static func name(_ signal: Int32) -> String {
        switch signal {
        case SIGHUP: "HUP"
        case SIGINT: "INT"
        case SIGQUIT: "QUIT"
        case SIGKILL: "KILL"
        case SIGABRT: "ABRT"
        case SIGSEGV: "SEGV"
        case SIGTERM: "TERM"
        case SIGUSR1: "USR1"
        case SIGUSR2: "USR2"
        case SIGCHLD: "CHLD"
        case SIGTTIN: "TTIN"
        case SIGTTOU: "TTOU"
        case SIGWINCH: "WINCH"
        case SIGTRAP: "TRAP"
        case SIGILL: "ILL"
        case SIGBUS: "BUS"
        case SIGSTOP: "STOP"
        default: "signal \(signal)"
        }
    }
}
