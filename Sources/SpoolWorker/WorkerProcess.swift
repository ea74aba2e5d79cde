import CSpoolSys
import Logging
import NIOCore
import NIOPosix
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
    /// Could not start (database unreadable, schema wrong): respawning will not help.
    public static let bootFailure: Int32 = 3
    /// The accept loop failed in a way it cannot recover from.
    public static let acceptFailure: Int32 = 4
}

public struct WorkerConfiguration: Sendable {
    public var listenFD: Int32
    public var directory: DataDirectory
    public var masterPID: Int32
    public var slot: Int

    public init(listenFD: Int32, directory: DataDirectory, masterPID: Int32, slot: Int) {
        self.listenFD = listenFD
        self.directory = directory
        self.masterPID = masterPID
        self.slot = slot
    }
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
    public static func run(_ config: WorkerConfiguration) -> Never {
        let pid = Int(getpid())
        var logger = Logger(label: "worker")
        logger[metadataKey: "slot"] = "\(config.slot)"

        // Leave with the master: the kernel signals us when it dies, and the
        // accept loop checks getppid() for the window before prctl took effect.
        _ = spool_set_parent_death_signal(SIGTERM)
        if getppid() != config.masterPID { exit(WorkerExit.normal) }
        _ = spool_ignore_sigpipe()

        let store: Store
        do {
            store = try Store(directory: config.directory)
        } catch {
            logger.critical("worker cannot start", metadata: ["error": "\(error)"])
            exit(WorkerExit.bootFailure)
        }

        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let pool = NIOThreadPool(numberOfThreads: 4)
        pool.start()
        let services = WorkerServices(store: store, pool: pool, pid: pid, logger: logger)
        let bootstrap = ClientBootstrap(group: group)
            .channelOption(ChannelOptions.recvAllocator, value: AdaptiveRecvByteBufferAllocator(
                minimum: 1024, initial: 64 * 1024, maximum: 1024 * 1024))
            .channelOption(ChannelOptions.allowRemoteHalfClosure, value: false)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(ConnectionHandler(services: services))
                }
            }

        logger.info("worker ready", metadata: ["pid": "\(pid)"])
        let code = acceptLoop(config, bootstrap: bootstrap, logger: logger)
        try? group.syncShutdownGracefully()
        try? pool.syncShutdownGracefully()
        exit(code)
    }

    /// Returns the exit code once the worker should stop.
    static func acceptLoop(_ config: WorkerConfiguration, bootstrap: ClientBootstrap, logger: Logger) -> Int32 {
        while true {
            // accept() wakes at least once a second (SO_RCVTIMEO on the listening
            // socket, set by the master) so a worker notices its master is gone.
            let fd = spool_accept_cloexec(config.listenFD)
            if fd >= 0 {
                bootstrap.withConnectedSocket(fd).whenFailure { error in
                    logger.warning("cannot serve connection", metadata: ["error": "\(error)"])
                }
                continue
            }
            let error = currentErrno()
            switch error {
            case EAGAIN, EWOULDBLOCK, EINTR:
                if getppid() != config.masterPID {
                    logger.warning("master is gone; worker exiting")
                    return WorkerExit.normal
                }
            case ECONNABORTED, EPROTO, EPERM:
                continue  // the client left before we got to it
            case EMFILE, ENFILE, ENOBUFS, ENOMEM:
                logger.error("accept is out of resources; pausing", metadata: ["error": "\(SystemError("accept", errno: error))"])
                usleep(100_000)
            default:
                logger.critical("accept failed", metadata: ["error": "\(SystemError("accept", errno: error))"])
                return WorkerExit.acceptFailure
            }
        }
    }
}
