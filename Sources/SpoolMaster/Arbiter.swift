import CSpoolSys
import Logging
import SpoolStore
import SpoolSystem
import SpoolWorker

#if canImport(Glibc)
import Glibc
#endif

public struct MasterConfiguration: Sendable {
    public var host: String
    public var port: Int
    public var directory: DataDirectory
    public var workers: Int

    public init(host: String, port: Int, directory: DataDirectory, workers: Int) {
        self.host = host
        self.port = port
        self.directory = directory
        self.workers = workers
    }
}

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
/// in one loop: signal handlers only write a byte to a self-pipe, the loop reads
/// those bytes into a queue and handles each in `handle(signal:)` (one switch,
/// mirrored in docs/SIGNALS.md), reaps children and keeps the worker count.
/// It never accepts a connection and never starts a thread, so fork is safe.
public final class Arbiter {
    struct Worker {
        let slot: Int
        let startedAt: Double
    }

    private let config: MasterConfiguration
    private var logger = Logger(label: "master")
    private var workers: [Int32: Worker] = [:]
    private var wantedWorkers: Int
    private var socket: ListenSocket?
    private var pidFile: PidFile?
    private var selfPipe: (read: Int32, write: Int32) = (-1, -1)
    private var signalQueue: [Int32] = []
    /// Set when a stop was asked for: the time by which workers must be gone.
    private var stopDeadline: Double?
    /// Per slot, when a respawn may happen (a worker that dies right after starting waits a little).
    private var respawnAfter: [Int: Double] = [:]
    private var masterPID: Int32 = 0

    public init(config: MasterConfiguration) {
        self.config = config
        self.wantedWorkers = max(1, config.workers)
    }

    /// Runs until the server stops; returns the process exit code.
    public func run() throws(MasterError) -> Int32 {
        masterPID = getpid()
        try start()
        defer { cleanUp() }
        for slot in 0..<wantedWorkers { spawn(slot: slot) }
        return loop()
    }

    private func start() throws(MasterError) {
        let directory = config.directory
        do { try directory.prepare() } catch { throw .startup("cannot create data directory: \(error)") }
        do { pidFile = try PidFile.lock(directory.pidFilePath) } catch { throw .startup(error.description) }

        let socket: ListenSocket
        do { socket = try ListenSocket.bind(host: config.host, port: config.port) } catch {
            throw .startup("cannot listen: \(error)")
        }
        self.socket = socket

        // Migrate before any worker exists, so workers never race to do it; then
        // close the database: a SQLite connection must not cross a fork.
        do {
            let (store, applied) = try Store.openMigrating(directory: directory)
            for migration in applied {
                logger.info("migration applied", metadata: ["version": "\(migration.version)", "name": "\(migration.name)"])
            }
            let orphans = try store.interruptOrphans()
            if orphans > 0 { logger.warning("uploads left receiving by a previous run marked interrupted", metadata: ["count": "\(orphans)"]) }
        } catch {
            throw .startup("database: \(error)")
        }

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

    private func loop() -> Int32 {
        while true {
            reap()
            if let deadline = stopDeadline {
                if workers.isEmpty {
                    logger.info("stopped")
                    return 0
                }
                if UTCTime.monotonic() > deadline {
                    for pid in workers.keys {
                        logger.warning("worker did not stop in time; killing", metadata: ["pid": "\(pid)"])
                        kill(pid, SIGKILL)
                    }
                    stopDeadline = UTCTime.monotonic() + 5
                }
            } else {
                maintainWorkerCount()
            }
            waitForSignals(timeoutMilliseconds: 500)
            while !signalQueue.isEmpty {
                handle(signal: signalQueue.removeFirst())
            }
        }
    }

    /// The whole signal table (docs/SIGNALS.md).
    private func handle(signal: Int32) {
        switch signal {
        case SIGCHLD:
            break  // reaped at the top of the loop
        case SIGTERM, SIGINT, SIGQUIT:
            if stopDeadline == nil {
                logger.info("stopping", metadata: ["signal": "\(Self.name(signal))"])
                stopDeadline = UTCTime.monotonic() + 10
            }
            signalWorkers(SIGTERM)
        case SIGTTIN:
            wantedWorkers += 1
            logger.info("one worker more", metadata: ["workers": "\(wantedWorkers)"])
        case SIGTTOU:
            guard wantedWorkers > 1 else {
                logger.info("already at one worker")
                break
            }
            wantedWorkers -= 1
            logger.info("one worker fewer", metadata: ["workers": "\(wantedWorkers)"])
            if let (pid, _) = workers.max(by: { $0.value.slot < $1.value.slot }) { kill(pid, SIGTERM) }
        default:
            logger.info("signal ignored", metadata: ["signal": "\(Self.name(signal))"])
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

    private func reap() {
        while true {
            var status: Int32 = 0
            let pid = waitpid(-1, &status, WNOHANG)
            guard pid > 0 else { return }
            guard let worker = workers.removeValue(forKey: pid) else { continue }
            let lived = UTCTime.monotonic() - worker.startedAt
            let how = Self.describe(status: status)
            if stopDeadline == nil {
                logger.warning("worker exited", metadata: ["pid": "\(pid)", "slot": "\(worker.slot)", "status": "\(how)"])
            } else {
                logger.info("worker exited", metadata: ["pid": "\(pid)", "slot": "\(worker.slot)", "status": "\(how)"])
            }
            // A worker that dies at once is likely to die again: do not spin.
            respawnAfter[worker.slot] = lived < 1 ? UTCTime.monotonic() + 1 : 0
        }
    }

    private func maintainWorkerCount() {
        let used = Set(workers.values.map(\.slot))
        let now = UTCTime.monotonic()
        for slot in 0..<wantedWorkers where !used.contains(slot) && (respawnAfter[slot] ?? 0) <= now {
            spawn(slot: slot)
        }
    }

    private func spawn(slot: Int) {
        guard let socket else { return }
        fflush(nil)  // or the child would print the parent's buffered output again
        let pid = fork()
        if pid == 0 {
            // In the child: drop everything that belongs to the master.
            _ = spool_signals_reset()
            close(selfPipe.read)
            close(selfPipe.write)
            if let pidFile { close(pidFile.fd) }
            WorkerProcess.run(WorkerConfiguration(
                listenFD: socket.fd, directory: config.directory, masterPID: masterPID, slot: slot))
        }
        if pid < 0 {
            logger.error("cannot fork a worker", metadata: ["error": "\(SystemError.last("fork"))"])
            respawnAfter[slot] = UTCTime.monotonic() + 1
            return
        }
        workers[pid] = Worker(slot: slot, startedAt: UTCTime.monotonic())
        logger.info("worker spawned", metadata: ["pid": "\(pid)", "slot": "\(slot)"])
    }

    private func signalWorkers(_ signal: Int32) {
        for pid in workers.keys { kill(pid, signal) }
    }

    private func cleanUp() {
        if let socket { close(socket.fd) }
        pidFile?.remove()
    }

    static func describe(status: Int32) -> String {
        let signal = status & 0x7f
        if signal == 0 { return "exit \((status >> 8) & 0xff)" }
        return "killed by \(name(signal))"
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
        default: "signal \(signal)"
        }
    }
}
