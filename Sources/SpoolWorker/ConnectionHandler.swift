import Crypto
import Logging
import NIOCore
import NIOPosix
import SpoolProtocol
import SpoolStore
import SpoolSystem

#if canImport(Glibc)
import Glibc
#endif

/// What every connection in a worker shares.
struct WorkerServices: Sendable {
    let store: Store
    /// Runs the blocking work (SQLite statements, fsync, rename) off the event loop.
    let pool: NIOThreadPool
    let pid: Int
    let logger: Logger
    /// This worker's board: beaten on every body chunk too, so a worker busy with a
    /// long upload is never taken for hung; upload progress is published there.
    let board: WorkerBoard
    /// Every worker's board, read to answer questions about any upload.
    let scoreboard: Scoreboard
    /// Which of this worker's progress slots are free. Event loop only.
    let slots: UploadSlots
    let limits: ServerLimits
    let policy: AccessPolicy
    /// Small uploads that arrived whole, stored in batches.
    let wholeUploads: WholeUploads
    /// The pre-create hook, when the server has one.
    var preCreate: PreCreateGate? = nil
    /// Notification hooks are configured: /metrics shows the dispatcher's lag.
    var hooksNotify = false
    /// The hash states tus PATCHes ended with.
    let prefixes = PrefixCache()
    /// How often "too many connections from one address" has been logged, per address.
    let refusals = RefusalLog()
}

extension WorkerServices {
    /// Logs a connection refused by the per-address limit, sparingly (`RefusalCounter`).
    func logRefusal(_ clientIP: String) {
        guard let count = refusals.refused(clientIP) else { return }
        logger.warning("too many connections from one address", metadata: ["client": "\(clientIP)", "refused": "\(count)"])
    }
}

/// The free progress slots of this worker's board. Used only on its one event loop.
final class UploadSlots: @unchecked Sendable {
    var free = Array((0..<WorkerBoard.uploadSlots).reversed())

    /// nil when every slot is taken: that upload's progress is then only in the database.
    func take() -> Int? { free.popLast() }
    func give(_ slot: Int) { free.append(slot) }
}

/// Performs a `Session`'s actions on a NIO channel. Holds no protocol logic itself:
/// bytes go into the session, actions come out, results go back in.
final class ConnectionHandler: ChannelInboundHandler, DrainableConnection {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    var session = Session()
    let services: WorkerServices
    var clientIP = "unknown"
    var clientPort = 0
    var isActive = false
    let registry: ConnectionRegistry
    /// Kept so that a drain, which starts outside any channel event, can act on this channel.
    var context: ChannelHandlerContext?
    /// A later turn of `drive` is already scheduled.
    var driveScheduled = false
    var lastActivity = UTCTime.monotonic()
    /// WATCH: the upload watched, and the timer pushing its lines.
    var watched: String?
    var watchTimer: RepeatedTask?
    /// A status query for WATCH is running; a stop asked meanwhile ends the watch when it returns.
    var watchInFlight = false
    /// The last status line pushed, and when it last changed: a watch of nothing
    /// moving ends after the idle time, as an idle connection does.
    var watchLastText = ""
    var watchLastChange = 0.0
    var watchStopRequested = false
    var drainCheck: RepeatedTask?
    static let drainQuietTime = 1.0

    var limitTimer: RepeatedTask?
    /// Since when an unfinished command line has been waiting (slowloris).
    var partialLineSince: Double?
    /// The token this client authenticated with: its name goes on uploads, its quota is checked.
    var token: TokenRecord?
    var counted = false
    /// Reading paused by the work in progress (pool work, a hash behind).
    var workPaused = false
    var readGate = ReadGate()

    /// The upload being received, if any.
    var incoming: IncomingUpload?
    /// The last small upload's reply, delivered: the next waits for it (the session
    /// wants them in order, and a pre-create hook may answer them out of order).
    var lastWhole: EventLoopFuture<Void>?
    /// Reading stopped because the upload's hash fell behind.
    var pausedForDigest = false

    init(services: WorkerServices, registry: ConnectionRegistry) {
        self.services = services
        self.registry = registry
    }

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        self.context = nil
    }

    /// The worker is stopping: finish the upload in progress (if any), then close
    /// once the client has been quiet for `drainQuietTime`.
    func drain() {
        guard let context, !session.isDraining else { return }
        session.drain()
        let handler = NIOLoopBound(self, eventLoop: context.eventLoop)
        drainCheck = context.eventLoop.scheduleRepeatedTask(initialDelay: .milliseconds(100), delay: .milliseconds(100)) { _ in
            handler.value.closeIfQuiet()
        }
    }

    func closeIfQuiet() {
        guard UTCTime.monotonic() - lastActivity >= Self.drainQuietTime, let context else { return }
        session.closeIfIdle()
        drive(context)
    }

    func channelActive(context: ChannelHandlerContext) {
        isActive = true
        if let remote = context.channel.remoteAddress {
            clientIP = remote.ipAddress ?? "unknown"
            clientPort = remote.port ?? 0
        }
        if services.scoreboard.connections(from: clientIP) >= services.limits.maxConnectionsPerClient {
            services.logRefusal(clientIP)
            context.writeAndFlush(wrapOutboundOut(context.channel.allocator.buffer(string: Reply(
                .unavailable, "too many connections from \(clientIP); try again later").line))).assumeIsolated().whenComplete { _ in
                context.close(promise: nil)
            }
            return
        }
        services.board.clientConnected(from: clientIP)
        counted = true
        session.anonymousAllowed = services.policy.anonymousAllowed
        send(Reply(.ready, "\(ProtocolInfo.product) ready proto=\(ProtocolInfo.version) worker=\(services.pid)"), context)
        context.flush()
        registry.add(self)  // after the greeting: a draining worker then says goodbye
        let handler = NIOLoopBound(self, eventLoop: context.eventLoop)
        limitTimer = context.eventLoop.scheduleRepeatedTask(initialDelay: .seconds(1), delay: .seconds(1)) { _ in
            handler.value.checkTimeouts()
        }
    }

    func checkTimeouts() {
        guard let context else { return }
        let now = UTCTime.monotonic()
        session.checkTimeouts(
            services.limits.timeouts, quietFor: now - lastActivity, partialLineFor: partialLineSince.map { now - $0 })
        drive(context)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        lastActivity = UTCTime.monotonic()
        session.anonymousAllowed = services.policy.anonymousAllowed
        session.receive(unwrapInboundIn(data))
        drive(context)
    }

    func channelInactive(context: ChannelHandlerContext) {
        isActive = false
        registry.remove(self)
        services.board.connectionEnded()  // counted up by the accept thread
        if counted { services.board.clientDisconnected(from: clientIP) }
        drainCheck?.cancel()
        limitTimer?.cancel()
        watchTimer?.cancel()
        if let incoming {
            self.incoming = nil
            incoming.interrupt(reason: "client disconnected")
        }
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        services.logger.debug("connection error", metadata: ["client": "\(clientIP):\(clientPort)", "error": "\(error)"])
        context.close(promise: nil)
    }

    /// Performs every action the session has ready, then flushes once. Stops early
    /// while the client leaves our replies unread (the outbound buffer past its high
    /// water mark): what is left waits in the session until the channel is writable again.
    ///
    /// Replies are gathered into one buffer and written as one: a client that sends
    /// many short lines costs a write per turn, not one per reply. A turn ends after
    /// `turnBytes` of replies and the rest is driven in a later turn of the event
    /// loop, so that one connection cannot hold the loop for as long as the kernel
    /// keeps taking its replies while other connections wait to be greeted.
    func drive(_ context: ChannelHandlerContext) {
        var replies = context.channel.allocator.buffer(capacity: 0)
        var turnEnded = false
        actions: while context.channel.isWritable, let action = session.next() {
            if case .reply(let reply) = action {
                replies.writeString(reply.line)
                if replies.readableBytes >= Self.turnBytes {
                    turnEnded = true
                    break actions
                }
                continue
            }
            // Whatever else happens next, the replies before it go out first.
            writeReplies(&replies, context)
            switch action {
            case .reply:
                break
            case .beginUpload(let request):
                begin(request, context)
            case .storeUpload(let request, let body):
                storeWhole(request, body: body, context)
            case .resumeUpload(let id, let sha256):
                resume(id: id, sha256: sha256, context)
            case .writeBody(let bytes):
                write(bytes)
            case .finishUpload(let declared):
                finish(context, declared: declared)
            case .abandonUpload(let reason):
                abandon(reason: reason, context)
            case .query(let command):
                query(command, context)
            case .authenticate(let secret):
                authenticate(secret, context)
            case .startWatch(let id):
                startWatch(id, context)
            case .stopWatch:
                stopWatch(context)
            case .close:
                // The empty write completes after every earlier write, so the last reply is sent before closing.
                context.writeAndFlush(wrapOutboundOut(ByteBuffer())).assumeIsolated().whenComplete { _ in
                    context.close(promise: nil)
                }
                return
            }
        }
        writeReplies(&replies, context)
        if session.hasPartialLine {
            if partialLineSince == nil { partialLineSince = UTCTime.monotonic() }
        } else {
            partialLineSince = nil
        }
        context.flush()
        updateReading(context)
        if turnEnded { driveLater(context) }
    }

    /// Replies gathered in one turn of `drive`: at most about this many bytes.
    static let turnBytes = 64 << 10

    private func writeReplies(_ replies: inout ByteBuffer, _ context: ChannelHandlerContext) {
        guard replies.readableBytes > 0 else { return }
        context.write(wrapOutboundOut(replies), promise: nil)
        replies = context.channel.allocator.buffer(capacity: 0)
    }

    /// Drives the session again after the event loop has served everyone else. A
    /// task run at once would not do: the loop runs every task that is due, new ones
    /// included, before it looks at the sockets again, so a chain of turns would keep
    /// every other connection's input waiting. A timer a millisecond away lets the
    /// loop poll first; only a connection with more than `turnBytes` of replies ready
    /// ever waits for it.
    private func driveLater(_ context: ChannelHandlerContext) {
        guard !driveScheduled else { return }
        driveScheduled = true
        let handler = NIOLoopBound(self, eventLoop: context.eventLoop)
        context.eventLoop.scheduleTask(in: .milliseconds(1)) {
            let handler = handler.value
            handler.driveScheduled = false
            guard handler.isActive, let context = handler.context else { return }
            handler.drive(context)
        }
    }

    /// Writable again: drive in a later turn, not from inside the flush that made
    /// room (that would chain turn after turn for as long as the kernel takes replies).
    func channelWritabilityChanged(context: ChannelHandlerContext) {
        if context.channel.isWritable { driveLater(context) } else { updateReading(context) }
        context.fireChannelWritabilityChanged()
    }

    func send(_ reply: Reply, _ context: ChannelHandlerContext) {
        context.write(wrapOutboundOut(context.channel.allocator.buffer(string: reply.line)), promise: nil)
    }

    // While the pool works, stop reading: the client waits for our reply anyway,
    // and a client that does not must not make us buffer without bound.
    func pauseReading(_ context: ChannelHandlerContext) {
        workPaused = true
        updateReading(context)
    }

    func resumeReading(_ context: ChannelHandlerContext) {
        workPaused = false
        updateReading(context)
    }

    /// Reads from the socket unless the work in progress paused it, or the client
    /// leaves our replies unread (the channel's outbound buffer is past its high
    /// water mark), or the session has enough unread input. Without the second, a
    /// client that sends commands (or garbage, each line of which gets an error
    /// reply) and never reads would make the worker hold every reply: 788 MiB
    /// after 6 s of it, measured.
    func updateReading(_ context: ChannelHandlerContext) {
        guard isActive else { return }
        readGate.set(!workPaused && context.channel.isWritable && !session.hasEnoughUnread, context)
    }
}
