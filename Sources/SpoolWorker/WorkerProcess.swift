import CSpoolSys
import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOHTTP1
import NIOPosix
import NIOSSL
import SpoolHooks
import SpoolProtocol
import SpoolStore
import SpoolSystem

#if canImport(Glibc)
import Glibc
#endif

/// How a worker tells the master why it exited (docs/SIGNALS.md lists them).
public enum WorkerExit {
    /// Stopped because it was asked to, or because the master is gone.
    public static let normal: Int32 = 0
    /// Could not start (database unreadable, schema wrong): respawning is unlikely to help.
    public static let bootFailure: Int32 = 3
    /// The accept loop failed in a way it cannot recover from.
    public static let acceptFailure: Int32 = 4
}

public struct WorkerConfiguration: Sendable {
    /// The line protocol's listening socket.
    public var listenFD: Int32
    /// HTTP's listening socket, if the server speaks HTTP.
    public var httpFD: Int32?
    /// The listener for /metrics, /healthz and /readyz alone (plain text, loopback), if any.
    public var metricsFD: Int32?
    public var directory: DataDirectory
    public var masterPID: Int32
    public var slot: Int
    /// Every worker's board, for answering STATUS, WATCH and STATS about any upload.
    public var scoreboard: Scoreboard
    /// This worker's own board: heartbeat, connections, upload progress.
    public var board: WorkerBoard
    public var logFile: String?
    public var limits: ServerLimits
    /// The certificate and key both listeners serve, checked by the master; nil: plain text.
    public var tls: TLSCredentials?
    /// The pre-create hook, if any (the notification hooks are the dispatcher's).
    public var hooks = HookConfiguration()
    /// Where the catalog and the bytes are; by default SQLite and the spool directory.
    public var backends: StoreBackends

    public init(
        listenFD: Int32, httpFD: Int32?, metricsFD: Int32? = nil, directory: DataDirectory, masterPID: Int32, slot: Int, scoreboard: Scoreboard,
        board: WorkerBoard, logFile: String?, limits: ServerLimits, tls: TLSCredentials? = nil, hooks: HookConfiguration = HookConfiguration(),
        backends: StoreBackends = StoreBackends()
    ) {
        self.backends = backends
        self.hooks = hooks
        self.limits = limits
        self.tls = tls
        self.listenFD = listenFD
        self.httpFD = httpFD
        self.metricsFD = metricsFD
        self.directory = directory
        self.masterPID = masterPID
        self.slot = slot
        self.scoreboard = scoreboard
        self.board = board
        self.logFile = logFile
    }
}

/// An HTTP listener of a worker: the HTTP door, or the metrics listener, which
/// answers only what operators' tools ask (HTTPHandler's `operationsOnly`).
struct HTTPDoor: Sendable {
    let fd: Int32
    let operationsOnly: Bool
}

/// A worker process, entered in the child right after fork.
///
/// Its main thread blocks in accept() on the socket inherited from the master.
/// The kernel wakes one blocked acceptor per connection, so connections spread
/// across workers without a thundering herd, and a worker that stops accepting
/// simply stops getting connections. Each accepted descriptor is handed to NIO
/// (one event loop) with `ClientBootstrap.withConnectedSocket`. docs/DESIGN.md
/// says why this is used rather than NIO's own accept or SO_REUSEPORT.
public enum WorkerProcess {
    enum Stop {
        case drain
        case now(Int32)
    }

    public static func run(_ config: WorkerConfiguration) -> Never {
        let pid = Int(getpid())
        var logger = Logger(label: "worker")
        logger[metadataKey: "slot"] = "\(config.slot)"

        // Leave with the master: the kernel signals us when it dies, and the
        // accept loop checks getppid() for the window before prctl took effect.
        _ = spool_set_parent_death_signal(SIGTERM)
        if getppid() != config.masterPID { exit(WorkerExit.normal) }
        _ = spool_ignore_sigpipe()
        _ = spool_ignore_sigxfsz()  // a write past the file-size limit must fail, not kill the worker
        Fault.arm()  // test builds: an injected failure (SPOOL_FAULT) fires here, not in the master
        _ = spool_worker_signals_install()

        let store: Store
        let tls: (line: NIOSSLContext, http: NIOSSLContext)?
        do {
            store = try Store(
                directory: config.directory, actor: "worker:\(pid)", queueWriters: true, backends: config.backends)
            // Each worker its own contexts, made after fork (BoringSSL's state never crosses one).
            tls = try config.tls.map { credentials throws(TLSSetupError) in
                (try credentials.makeContext(alpn: []), try credentials.makeContext(alpn: ["http/1.1"]))
            }
        } catch {
            logger.critical("worker cannot start", metadata: ["error": "\(error)"])
            exit(WorkerExit.bootFailure)
        }
        let handshakeLimit = TimeAmount.milliseconds(Int64(config.limits.timeouts.line * 1000))

        // NIO's threads must never take QUIT or USR1: those must interrupt accept() here.
        _ = spool_worker_signals_mask(1)
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let pool = NIOThreadPool(numberOfThreads: 16)
        pool.start()
        // Each HTTP listener gets a blocking accept thread of its own, as the line
        // protocol's has the main thread: the kernel still wakes one acceptor per connection.
        let httpDoors = (config.httpFD.map { [HTTPDoor(fd: $0, operationsOnly: false)] } ?? [])
            + (config.metricsFD.map { [HTTPDoor(fd: $0, operationsOnly: true)] } ?? [])
        let acceptors = httpDoors.map { _ in NIOThreadPool(numberOfThreads: 1) }
        acceptors.forEach { $0.start() }
        _ = spool_worker_signals_mask(0)

        let loop = group.next()
        let registry = ConnectionRegistry()
        let board = config.board
        // The event loop beats once a second; body chunks beat too (ConnectionHandler).
        loop.scheduleRepeatedTask(initialDelay: .zero, delay: .seconds(1)) { _ in board.beat() }

        // The store's durability steps, timed into this worker's metrics.
        StoreTimings.shared.observe { step, seconds, batch in
            switch step {
            case .commit:
                board.observe(.commit, seconds)
                board.observe(.commitBatch, Double(batch))
            case .logSync:
                board.observe(.logSync, seconds)
            case .fileSync:
                board.observe(.fileSync, seconds)
            }
        }
        let policy = AccessPolicy(limits: config.limits, tokensExist: (try? store.hasActiveTokens()) ?? true)
        loop.scheduleRepeatedTask(initialDelay: .seconds(2), delay: .seconds(2)) { _ in
            pool.submit { _ in policy.refresh(from: store) }
        }
        let gate = config.hooks.hasPreCreate ? PreCreateGate(hooks: config.hooks, logger: logger) : nil
        let services = WorkerServices(
            store: store, pool: pool, pid: pid, logger: logger, board: board, scoreboard: config.scoreboard,
            slots: UploadSlots(), limits: config.limits, policy: policy,
            wholeUploads: WholeUploads(store: store, pool: pool, board: board, gate: gate), preCreate: gate,
            hooksNotify: config.hooks.hasNotifications)
        let bootstrap = ClientBootstrap(group: group)
            .channelOption(ChannelOptions.recvAllocator, value: AdaptiveRecvByteBufferAllocator(
                minimum: 1024, initial: 64 * 1024, maximum: 1024 * 1024))
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    if let tls {
                        try channel.pipeline.syncOperations.addHandler(NIOSSLServerHandler(context: tls.line))
                        try channel.pipeline.syncOperations.addHandler(TLSHandshakeDeadline(limit: handshakeLimit))
                    }
                    try channel.pipeline.syncOperations.addHandler(
                        ConnectionHandler(services: services, registry: registry))
                }
            }

        let acceptorsStopped = NIOLockedValueBox(false)
        for (door, acceptor) in zip(httpDoors, acceptors) {
            let logger = logger
            // The metrics listener is loopback only, and plain text.
            let tls = door.operationsOnly ? nil : tls
            // Made on the accept thread, which alone uses it (a bootstrap is not Sendable).
            acceptor.submit { _ in
                let http = ClientBootstrap(group: group)
                    .channelOption(ChannelOptions.recvAllocator, value: AdaptiveRecvByteBufferAllocator(
                        minimum: 1024, initial: 64 * 1024, maximum: 1024 * 1024))
                    .channelInitializer { channel in
                        channel.eventLoop.makeCompletedFuture {
                            if let tls {
                                try channel.pipeline.syncOperations.addHandler(NIOSSLServerHandler(context: tls.http))
                                try channel.pipeline.syncOperations.addHandler(TLSHandshakeDeadline(limit: handshakeLimit))
                            }
                            let activity = ByteActivity()
                            try channel.pipeline.syncOperations.addHandler(activity)
                            try channel.pipeline.syncOperations.configureHTTPServerPipeline(withErrorHandling: false)
                            // sendfile cannot go through TLS: downloads are then read and encrypted in pieces.
                            try channel.pipeline.syncOperations.addHandler(HTTPHandler(
                                services: services, registry: registry, activity: activity, sendfile: tls == nil,
                                operationsOnly: door.operationsOnly))
                        }
                    }
                if case .now(let code) = acceptLoop(config, listenFD: door.fd, bootstrap: http, logger: logger, stopped: acceptorsStopped),
                    code != WorkerExit.normal
                {
                    exit(code)
                }
            }
        }

        board.beat()  // ready: the master starts counting from here
        logger.info("worker ready", metadata: ["pid": "\(pid)"])
        let stop = acceptLoop(config, listenFD: config.listenFD, bootstrap: bootstrap, logger: logger, stopped: nil)
        acceptorsStopped.withLockedValue { $0 = true }
        for acceptor in acceptors { try? acceptor.syncShutdownGracefully() }  // each accept() returns within a second
        close(config.listenFD)
        for door in httpDoors { close(door.fd) }

        var code = WorkerExit.normal
        switch stop {
        case .drain:
            drain(registry, on: loop, logger: logger)
        case .now(let exitCode):
            code = exitCode
        }
        try? group.syncShutdownGracefully()
        gate?.shutdown()
        try? pool.syncShutdownGracefully()  // runs the work already queued (interruptions to record)
        exit(code)
    }

    /// Accepts on `listenFD` until told to stop. The main thread's loop (`stopped`
    /// nil) takes the signals; another listener's loop stops when `stopped` says so.
    static func acceptLoop(
        _ config: WorkerConfiguration, listenFD: Int32, bootstrap: ClientBootstrap, logger: Logger,
        stopped: NIOLockedValueBox<Bool>?
    ) -> Stop {
        while true {
            if let stopped {
                if stopped.withLockedValue({ $0 }) { return .drain }
            } else if spool_worker_take_quit() != 0 {
                logger.info("draining: no new connections; finishing uploads in progress")
                return .drain
            }
            if stopped == nil, spool_worker_take_reopen() != 0, let path = config.logFile {
                try? LogFile.redirectStandardError(to: path)
            }
            // accept() also returns once a second (SO_RCVTIMEO on the listening
            // socket, set by the master) so a worker notices its master is gone.
            // At its connection cap a worker stops accepting: the kernel hands new
            // connections to the workers still waiting in accept().
            if config.board.connections >= config.limits.maxConnectionsPerWorker {
                usleep(10_000)
                if getppid() != config.masterPID { return .now(WorkerExit.normal) }
                continue
            }
            let fd = spool_accept_cloexec(listenFD)
            if fd >= 0 {
                let board = config.board
                board.connectionAccepted()
                bootstrap.withConnectedSocket(fd).whenFailure { error in
                    board.connectionEnded()
                    logger.warning("cannot serve connection", metadata: ["error": "\(error)"])
                }
                continue
            }
            let error = currentErrno()
            switch error {
            case EAGAIN, EWOULDBLOCK, EINTR:
                if getppid() != config.masterPID {
                    logger.warning("master is gone; worker exiting")
                    return .now(WorkerExit.normal)
                }
            case ECONNABORTED, EPROTO, EPERM:
                continue  // the client left before we got to it
            case EMFILE, ENFILE, ENOBUFS, ENOMEM:
                logger.error("accept is out of resources; pausing", metadata: ["error": "\(SystemError("accept", errno: error))"])
                usleep(100_000)
            default:
                logger.critical("accept failed", metadata: ["error": "\(SystemError("accept", errno: error))"])
                return .now(WorkerExit.acceptFailure)
            }
        }
    }

    /// Lets every connection finish its upload in progress, then returns. The master
    /// bounds how long this may take (--graceful-timeout) and stops us after that.
    static func drain(_ registry: ConnectionRegistry, on loop: EventLoop, logger: Logger) {
        loop.execute { registry.drainAll() }
        var last = -1
        while true {
            let open = (try? loop.submit { registry.count }.wait()) ?? 0
            if open == 0 { break }
            if open != last {
                logger.info("waiting for connections to finish", metadata: ["open": "\(open)"])
                last = open
            }
            usleep(50_000)
        }
        logger.info("drained; worker exiting")
    }
}

/// The connections of this worker. Used only on its single event loop.
/// A connection the worker can ask to finish up and close (QUIT, HUP).
protocol DrainableConnection: AnyObject {
    func drain()
}

final class ConnectionRegistry: @unchecked Sendable {
    private var handlers: [ObjectIdentifier: any DrainableConnection] = [:]
    private var draining = false

    var count: Int { handlers.count }

    func add(_ handler: any DrainableConnection) {
        handlers[ObjectIdentifier(handler)] = handler
        if draining { handler.drain() }
    }

    func remove(_ handler: any DrainableConnection) {
        handlers[ObjectIdentifier(handler)] = nil
    }

    func drainAll() {
        draining = true
        for handler in handlers.values { handler.drain() }
    }
}
