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
        /// When the watchdog last found it silent but waiting on the disk (logged at most every 10 s).
        var diskWaitLoggedAt: Double?
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

    var config: MasterConfiguration
    var logger = Logger(label: "master")
    var workers: [Int32: Worker] = [:]
    var wantedWorkers: Int
    var phase = Phase.running
    var exitCode = MasterExit.stopped
    /// The bound listeners, in the order of `config.listeners`.
    var sockets: [(kind: ListenerSpec.Kind, socket: ListenSocket)] = []
    var pidFile: PidFile?
    var scoreboard: Scoreboard?
    var selfPipe: (read: Int32, write: Int32) = (-1, -1)
    var signalQueue: [Int32] = []
    var masterPID: Int32 = 0

    /// Early deaths in a row, and when the next worker may start after one.
    var bootFailures = 0
    var nextSpawnAt = 0.0
    /// HUP: workers still to be replaced, and the new worker being waited for.
    var toReplace: [Int32] = []
    var replacement: (new: Int32, old: Int32)?
    /// When abandoned partial uploads are next looked for.
    var nextExpiry = 0.0
    /// Database work handed to a short-lived child (Arbiter+Chores.swift), and what waits for the next one.
    var chore: Chore?
    var dispatcher: Dispatcher?
    var nextDispatcherAt = 0.0
    var pendingRecoveries: [(pid: Int32, how: String)] = []
    var expiryDue = false
    var nextChoreAt = 0.0
    /// The certificate and key workers serve: checked at start, replaced on HUP only by ones that pass the same checks.
    var tls: TLSCredentials?
    /// systemd's notification socket (Arbiter+Systemd.swift), when started by it.
    var notifier: SystemdNotifier?
    var systemd = SystemdReport()
    /// The listening sockets came from systemd rather than from bind().
    var activated: Bool { systemd.activated }
    /// USR2 (Arbiter+Upgrade.swift), and the binary it executes.
    var upgrade = Upgrade()
    var executable: String?

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

    func start() throws(MasterError) {
        let directory = config.directory
        if let logFile = config.logFile {
            do { try LogFile.redirectStandardError(to: logFile) } catch { throw .startup("log file: \(error)") }
        }
        executable = Self.executablePath()
        takeUpgradeRole()
        notifier = SystemdNotifier.fromEnvironment()
        setUpSystemdWatchdog()
        // Sockets systemd bound stand for --listen and --http, before any check of where we listen.
        if let inherited = try SocketActivation.take() {
            sockets = inherited
            systemd.activated = true
            config.listeners = inherited.map { ListenerSpec($0.kind, host: $0.socket.host, port: $0.socket.port) }
            config.limits.loopback = config.listeners.allSatisfy(\.isLoopback)
        }
        try loadTLS()
        do { try directory.prepare() } catch { throw .startup("cannot create data directory: \(error)") }
        do { pidFile = try PidFile.lock(directory.pidFilePath) } catch { throw .startup(error.description) }
        // Only now, holding the lock: objects must never move under a running server
        // (which the old master still is, during an upgrade).
        if upgrade.from == nil {
            do {
                let moved = try directory.upgradeLayout()
                if moved > 0 { logger.notice("objects moved to the one-level layout", metadata: ["objects": "\(moved)"]) }
            } catch {
                throw .startup("cannot upgrade the objects layout: \(error)")
            }
        }

        // Migrate and recover before any worker exists, then close the database:
        // workers never race to migrate, and no SQLite connection crosses a fork.
        do {
            let (store, applied) = try Store.openMigrating(directory: directory, actor: "master:\(masterPID)", backends: config.backends)
            for migration in applied {
                logger.info("migration applied", metadata: ["version": "\(migration.version)", "name": "\(migration.name)"])
            }
            // During an upgrade the old master's workers are still receiving: their
            // uploads and temporary files are theirs, and the old master recovers them.
            if upgrade.from == nil {
                for (id, received) in try store.interruptReceiving(workerPID: nil, reason: "server restarted") {
                    logger.warning("upload left receiving by an earlier run marked interrupted",
                                   metadata: ["id": "\(id)", "received": "\(received)"])
                }
                for name in try store.removeStrayTempFiles() {
                    logger.warning("removed a temporary file no upload owns", metadata: ["file": "\(name)"])
                }
            }
            let tokensExist = try store.hasActiveTokens()
            if !config.limits.loopback && !config.limits.allowAnonymous && !tokensExist {
                throw MasterError.startup(
                    "refusing to serve \(config.listeners.filter { !$0.isLoopback }.map(\.host).joined(separator: ", ")) without authentication: no upload token exists. "
                        + "Create one with `spoold admin token create --name NAME` (clients then pass --token), "
                        + "or start with --allow-anonymous to accept anyone who can reach this address")
            }
        } catch let error as MasterError {
            throw error
        } catch {
            throw .startup("database: \(error)")
        }

        for listener in config.listeners where !activated {
            do {
                sockets.append((listener.kind, try ListenSocket.bind(host: listener.host, port: listener.port)))
            } catch {
                throw .startup("cannot listen (\(listener.kind.rawValue)): \(error)")
            }
        }
        do { try writePortsFile() } catch { throw .startup("ports file: \(error)") }

        do { scoreboard = try Scoreboard.create() } catch { throw .startup("scoreboard: \(error)") }
        do { try pidFile?.write(pid: masterPID) } catch { throw .startup("pid file: \(error)") }

        var fds: [Int32] = [0, 0]
        guard spool_pipe_nonblocking(&fds) == 0 else { throw .startup("self-pipe: \(SystemError.last("pipe"))") }
        selfPipe = (fds[0], fds[1])
        guard spool_signals_install_self_pipe(selfPipe.write) == 0 else {
            throw .startup("signals: \(SystemError.last("sigaction"))")
        }
        for (kind, socket) in sockets {
            logger.info("listening", metadata: [
                "kind": "\(kind.rawValue)", "address": "\(socket.address)", "workers": "\(wantedWorkers)",
                "data_dir": "\(directory.root)", "pid": "\(masterPID)", "from": "\(activated ? "systemd" : "bind")",
            ])
        }
    }

    /// `run/spoold.ports`: one `KIND HOST:PORT` line per listener, for scripts and
    /// tests to find the ports (port 0 picks one), written whole or not at all.
    func writePortsFile() throws(SystemError) {
        let text = sockets.map { "\($0.kind.rawValue) \($0.socket.address)\n" }.joined()
        let path = config.directory.portsFilePath
        let fd = try Files.open(path + ".tmp", flags: O_WRONLY | O_CREAT | O_TRUNC, mode: 0o644)
        defer { Files.close(fd) }
        let bytes = Array(text.utf8)
        let written = bytes.withUnsafeBytes { raw in write(fd, raw.baseAddress, raw.count) }
        guard written == bytes.count else { throw .last("write", path) }
        try Files.rename(path + ".tmp", path)
    }

    // MARK: - The loop

    func loop() -> Int32 {
        while true {
            reap()
            watchdog()
            switch phase {
            case .running:
                advanceUpgradeHandOver()
                expirePartials()
                startChore()
                forgiveBootFailures()
                advanceReplacement()
                maintainWorkerCount()
                maintainDispatcher()
            case .idle:
                maintainDispatcher()
            case .stopping(let termAt, let killAt):
                if workers.isEmpty && dispatcher == nil {
                    finishChoresBeforeExit()
                    logger.info("stopped", metadata: ["exit": "\(exitCode)"])
                    return exitCode
                }
                let now = UTCTime.monotonic()
                if now >= killAt {
                    for pid in workers.keys {
                        logger.warning("worker still running; killing", metadata: ["pid": "\(pid)"])
                        kill(pid, SIGKILL)
                    }
                    stopDispatcher(SIGKILL)
                    phase = .stopping(termAt: .infinity, killAt: now + 5)
                } else if now >= termAt {
                    logger.warning("graceful stop timed out; stopping workers now", metadata: ["workers": "\(workers.count)"])
                    signalWorkers(SIGTERM)
                    phase = .stopping(termAt: .infinity, killAt: killAt)
                }
            }
            publishWantedWorkers()
            reportToSystemd()
            waitForSignals(timeoutMilliseconds: 200)
            while !signalQueue.isEmpty {
                handle(signal: signalQueue.removeFirst())
            }
        }
    }

    /// The whole signal table (docs/SIGNALS.md).
    func handle(signal: Int32) {
        logger.debug("signal", metadata: ["signal": "\(Self.name(signal))"])
        switch signal {
        case SIGCHLD:
            break  // reaped at the top of the loop
        case SIGTERM, SIGINT:
            logger.info("fast stop", metadata: ["signal": "\(Self.name(signal))"])
            stop(graceful: false)
        case SIGQUIT:
            logger.info("graceful stop", metadata: ["timeout": "\(config.gracefulTimeout)"])
            if upgrade.child != nil {
                // The new master is ready: it serves from now on, and owns the ports file.
                upgrade.handedOver = true
                upgrade.ownsPortsFile = false
            }
            stop(graceful: true)
        case SIGHUP:
            guard isAcceptingChanges else { break }
            reportReloading()
            rereadSettings()
            reloadTLS()
            stopDispatcher()  // the next one runs with the settings just read
            logger.info("reload: replacing every worker, one at a time")
            phase = .running
            toReplace = workers.filter { !$0.value.retiring }.keys.sorted()
        case SIGUSR1:
            reopenLog()
            signalWorkers(SIGUSR1)
        case SIGUSR2:
            guard isAcceptingChanges else { break }
            startUpgrade()
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

    var isAcceptingChanges: Bool {
        if case .stopping = phase { return false }
        return true
    }

    func stop(graceful: Bool) {
        let now = UTCTime.monotonic()
        if case .stopping(let termAt, _) = phase {
            // A second, faster request overrides a graceful stop in progress.
            if !graceful && termAt.isFinite {
                signalWorkers(SIGTERM)
                phase = .stopping(termAt: .infinity, killAt: now + 5)
            }
            return
        }
        if !upgrade.handedOver { reportStopping() }
        stopDispatcher()
        // Stop accepting here too: once the workers close theirs, the socket is gone.
        for (_, socket) in sockets { close(socket.fd) }
        sockets = []
        if graceful {
            for pid in workers.keys { workers[pid]?.retiring = true }
            signalWorkers(SIGQUIT)
            phase = .stopping(termAt: now + config.gracefulTimeout, killAt: now + config.gracefulTimeout + 5)
        } else {
            signalWorkers(SIGTERM)
            phase = .stopping(termAt: .infinity, killAt: now + 5)
        }
    }

    func waitForSignals(timeoutMilliseconds: Int32) {
        var pfd = pollfd(fd: selfPipe.read, events: Int16(POLLIN), revents: 0)
        _ = poll(&pfd, 1, timeoutMilliseconds)
        var buffer = [UInt8](repeating: 0, count: 64)
        while true {
            let n = read(selfPipe.read, &buffer, buffer.count)
            guard n > 0 else { break }
            signalQueue.append(contentsOf: buffer.prefix(n).map { Int32($0) })
        }
    }
}
