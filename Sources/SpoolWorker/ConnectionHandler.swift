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
}

/// The free progress slots of this worker's board. Used only on its one event loop.
final class UploadSlots: @unchecked Sendable {
    private var free = Array((0..<WorkerBoard.uploadSlots).reversed())

    /// nil when every slot is taken: that upload's progress is then only in the database.
    func take() -> Int? { free.popLast() }
    func give(_ slot: Int) { free.append(slot) }
}

/// Performs a `Session`'s actions on a NIO channel. Holds no protocol logic itself:
/// bytes go into the session, actions come out, results go back in.
final class ConnectionHandler: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    private var session = Session()
    private let services: WorkerServices
    private var clientIP = "unknown"
    private var clientPort = 0
    private var isActive = false
    private let registry: ConnectionRegistry
    /// Kept so that a drain, which starts outside any channel event, can act on this channel.
    private var context: ChannelHandlerContext?
    private var lastActivity = UTCTime.monotonic()
    /// This upload's progress slot on the scoreboard, and the window its rate is measured over.
    private var progressSlot: Int?
    private var rateMark: (milliseconds: UInt64, bytes: Int64) = (0, 0)
    private var rate: Int64 = 0
    /// WATCH: the upload watched, and the timer pushing its lines.
    private var watched: String?
    private var watchTimer: RepeatedTask?
    private var drainCheck: RepeatedTask?
    static let drainQuietTime = 1.0

    private var limitTimer: RepeatedTask?
    /// Since when an unfinished command line has been waiting (slowloris).
    private var partialLineSince: Double?
    /// The token this client authenticated with: its name goes on uploads, its quota is checked.
    private var token: TokenRecord?
    private var counted = false

    /// The upload being received, with the hash and count of the bytes written so far.
    private var upload: OpenUpload?
    private var hasher = SHA256()
    private var received: Int64 = 0

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

    private func closeIfQuiet() {
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
            services.logger.warning("too many connections from one address", metadata: ["client": "\(clientIP)"])
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

    private func checkTimeouts() {
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
        if let upload {
            self.upload = nil
            releaseProgressSlot()
            interrupt(upload, received: received, reason: "client disconnected")
        }
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        services.logger.debug("connection error", metadata: ["client": "\(clientIP):\(clientPort)", "error": "\(error)"])
        context.close(promise: nil)
    }

    /// Performs every action the session has ready, then flushes once.
    private func drive(_ context: ChannelHandlerContext) {
        while let action = session.next() {
            switch action {
            case .reply(let reply):
                send(reply, context)
            case .beginUpload(let request):
                begin(request, context)
            case .resumeUpload(let id, let sha256):
                resume(id: id, sha256: sha256, context)
            case .writeBody(let bytes):
                write(bytes)
            case .finishUpload:
                finish(context)
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
        if session.hasPartialLine {
            if partialLineSince == nil { partialLineSince = UTCTime.monotonic() }
        } else {
            partialLineSince = nil
        }
        context.flush()
    }

    private func send(_ reply: Reply, _ context: ChannelHandlerContext) {
        context.write(wrapOutboundOut(context.channel.allocator.buffer(string: reply.line)), promise: nil)
    }

    // MARK: - Upload steps

    /// What opening (or reopening) an upload came to.
    enum Opening: Sendable {
        case opened(OpenUpload, PrefixHash?)
        case refused(Reply)
    }

    private func begin(_ request: UploadRequest, _ context: ChannelHandlerContext) {
        let new = NewUpload(
            name: request.name, size: request.size, sha256: request.sha256,
            clientIP: clientIP, clientPort: clientPort, workerPID: services.pid, token: token?.name
        )
        var rng = SystemRandomNumberGenerator()
        let id = UploadID.generate(milliseconds: UInt64(UTCTime.epochMilliseconds()), using: &rng)
        let (store, limits, quota) = (services.store, services.limits.admission, token?.quota)
        open(context) {
            do {
                return .opened(try store.begin(new, id: id, limits: limits, quota: quota), nil)
            } catch StoreError.refused(let refusal) {
                return .refused(Reply(refusal.isTransient ? .insufficientStorage : .exceedsLimit, refusal.description))
            }
        }
    }

    private func resume(id: String, sha256: String, _ context: ChannelHandlerContext) {
        let store = services.store
        let (ip, port, pid, owner) = (clientIP, clientPort, services.pid, token?.name)
        open(context) {
            switch try store.resume(id: id, sha256: sha256, token: owner, clientIP: ip, clientPort: port, workerPID: pid) {
            case .opened(let upload, let prefix):
                return .opened(upload, prefix)
            case .alreadyComplete(let row):
                return .refused(Self.storedReply(id: row.id, size: row.size, sha256: row.sha256))
            case .busy:
                return .refused(Reply(.busy, "upload \(id) is being received on another connection; try again later"))
            case .notResumable(let reason):
                return .refused(Reply(.notFound, reason))
            }
        }
    }

    /// Runs the blocking part of opening on the pool, then resumes the session with its result.
    private func open(_ context: ChannelHandlerContext, _ work: @escaping @Sendable () throws -> Opening) {
        pauseReading(context)
        services.pool.runIfActive(eventLoop: context.eventLoop, work).assumeIsolated().whenComplete { result in
            switch result {
            case .success(.opened(let opened, let prefix)):
                guard self.isActive else {
                    self.interrupt(opened, received: opened.offset, reason: "client disconnected")
                    return
                }
                self.upload = opened
                self.hasher = prefix?.hasher ?? SHA256()
                self.received = opened.offset
                self.claimProgressSlot(opened)
                if opened.offset > 0 {
                    self.services.logger.info("upload resumed", metadata: ["id": "\(opened.id)", "offset": "\(opened.offset)"])
                }
                self.session.uploadOpened(id: opened.id, size: opened.size, offset: opened.offset)
            case .success(.refused(let reply)):
                self.session.uploadRefused(reply)
            case .failure(let error):
                self.services.logger.error("cannot open upload", metadata: ["error": "\(error)"])
                self.session.uploadRefused(Reply(.storageError, "cannot accept uploads right now: \(error)"))
            }
            self.resumeReading(context)
            self.drive(context)
        }
    }

    static func storedReply(id: String, size: Int64, sha256: String) -> Reply {
        Reply(.stored, "id=\(id) size=\(size) sha256=\(sha256) stored")
    }

    private func write(_ bytes: ByteBuffer) {
        guard let upload else { return }
        do {
            try bytes.withUnsafeReadableBytes { raw throws(SystemError) in
                try Files.writeAll(upload.fd, raw, path: upload.tempPath)
                hasher.update(bufferPointer: raw)
            }
            received += Int64(bytes.readableBytes)
            services.board.beat()
            publishProgress()
        } catch {
            self.upload = nil
            releaseProgressSlot()
            services.logger.error("write failed", metadata: ["id": "\(upload.id)", "error": "\(error)"])
            session.bodyFailed(Reply(.storageError, "id=\(upload.id) could not store the upload: \(error)"))
            let store = services.store
            let received = self.received
            services.pool.submit { _ in
                try? store.fail(upload, received: received, reason: error.description)
            }
        }
    }

    private func finish(_ context: ChannelHandlerContext) {
        guard let upload else { return }
        self.upload = nil
        pauseReading(context)
        let digest = Checksum.hex(hasher.finalize())
        let received = self.received
        let store = services.store
        let logger = services.logger
        services.pool.runIfActive(eventLoop: context.eventLoop) { () -> Reply in
            do {
                switch try store.complete(upload, received: received, sha256: digest) {
                case .stored:
                    logger.info("upload stored", metadata: ["id": "\(upload.id)", "size": "\(received)"])
                    return Self.storedReply(id: upload.id, size: received, sha256: digest)
                case .checksumMismatch(let actual):
                    logger.info("upload rejected", metadata: ["id": "\(upload.id)", "reason": "checksum mismatch"])
                    return Reply(
                        .checksumMismatch,
                        "id=\(upload.id) checksum mismatch: declared \(upload.sha256), received \(actual); nothing stored"
                    )
                }
            } catch {
                logger.error("cannot complete upload", metadata: ["id": "\(upload.id)", "error": "\(error)"])
                return Reply(.storageError, "id=\(upload.id) could not store the upload: \(error)")
            }
        }.assumeIsolated().whenComplete { result in
            let reply: Reply
            switch result {
            case .success(let r): reply = r
            case .failure(let error): reply = Reply(.storageError, "id=\(upload.id) could not store the upload: \(error)")
            }
            self.releaseProgressSlot()
            self.session.uploadFinished(reply)
            self.resumeReading(context)
            self.drive(context)
        }
    }

    private func interrupt(_ upload: OpenUpload, received: Int64, reason: String) {
        let store = services.store
        let logger = services.logger
        services.pool.submit { _ in
            do {
                try store.interrupt(upload, received: received, reason: reason)
                logger.info("upload interrupted", metadata: ["id": "\(upload.id)", "received": "\(received)"])
            } catch {
                logger.error("cannot record interruption", metadata: ["id": "\(upload.id)", "error": "\(error)"])
            }
        }
    }

    // MARK: - Progress on the scoreboard

    private func claimProgressSlot(_ upload: OpenUpload) {
        guard let slot = services.slots.take() else { return }
        progressSlot = slot
        rateMark = (Scoreboard.nowMilliseconds(), received)
        rate = 0
        services.board.claim(slot: slot, id: upload.id, received: received, size: upload.size)
    }

    /// A few stores to shared memory per chunk: cheap enough for every chunk.
    private func publishProgress() {
        guard let slot = progressSlot else { return }
        let now = Scoreboard.nowMilliseconds()
        let elapsed = now &- rateMark.milliseconds
        if elapsed >= 500 {
            rate = (received - rateMark.bytes) * 1000 / Int64(elapsed)
            rateMark = (now, received)
        }
        services.board.publish(slot: slot, received: received, rate: rate)
    }

    private func releaseProgressSlot() {
        guard let slot = progressSlot else { return }
        progressSlot = nil
        services.board.release(slot: slot)
        services.slots.give(slot)
    }

    // MARK: - Authentication

    private func authenticate(_ secret: String, _ context: ChannelHandlerContext) {
        let store = services.store
        pauseReading(context)
        services.pool.runIfActive(eventLoop: context.eventLoop) { try store.authenticate(secret: secret) }
            .assumeIsolated().whenComplete { result in
                if case .success(let record?) = result {
                    self.token = record
                    self.session.authenticated(as: Session.Identity(token: record.name, admin: record.admin))
                    self.services.logger.info("authenticated", metadata: ["client": "\(self.clientIP):\(self.clientPort)", "token": "\(record.name)"])
                    self.resumeReading(context)
                    self.drive(context)
                    return
                }
                self.services.logger.warning("authentication failed", metadata: ["client": "\(self.clientIP):\(self.clientPort)"])
                // Answer slowly: a guess per second per connection, and three per connection.
                context.eventLoop.assumeIsolated().scheduleTask(in: .milliseconds(Int64(self.services.limits.failedAuthenticationDelay * 1000))) {
                    self.session.authenticationFailed()
                    self.resumeReading(context)
                    self.drive(context)
                }
            }
    }

    // MARK: - Chat

    private var queries: ChatQueries {
        ChatQueries(store: services.store, scoreboard: services.scoreboard, viewer: session.identity)
    }

    private func query(_ command: Command, _ context: ChannelHandlerContext) {
        let queries = self.queries
        pauseReading(context)
        services.pool.runIfActive(eventLoop: context.eventLoop) { () -> [Reply] in
            do { return try queries.answer(command) } catch {
                return [Reply(.storageError, "cannot read the database right now: \(error)")]
            }
        }.assumeIsolated().whenComplete { result in
            switch result {
            case .success(let replies): self.session.answered(replies)
            case .failure(let error): self.session.answered([Reply(.storageError, "\(error)")])
            }
            self.resumeReading(context)
            self.drive(context)
        }
    }

    /// Pushes a status line now and every 500 ms, until the upload ends or the client speaks.
    private func startWatch(_ id: String, _ context: ChannelHandlerContext) {
        watched = id
        let handler = NIOLoopBound(self, eventLoop: context.eventLoop)
        watchTimer = context.eventLoop.scheduleRepeatedTask(initialDelay: .zero, delay: .milliseconds(500)) { _ in
            handler.value.pushWatchLine(final: false)
        }
    }

    private func stopWatch(_ context: ChannelHandlerContext) {
        pushWatchLine(final: true)
    }

    private var watchInFlight = false

    private func pushWatchLine(final forced: Bool) {
        guard let id = watched, let context, !watchInFlight else {
            if forced { watchStopRequested = true }
            return
        }
        watchInFlight = true
        let queries = self.queries
        services.pool.runIfActive(eventLoop: context.eventLoop) { () -> Reply in
            do {
                guard let (text, isFinal) = try queries.status(id) else { return Reply(.notFound, "no upload \(id)") }
                return Reply(.uploadStatus, text, isLast: isFinal || forced)
            } catch {
                return Reply(.storageError, "cannot read the database right now: \(error)")
            }
        }.assumeIsolated().whenComplete { result in
            self.watchInFlight = false
            let reply: Reply
            switch result {
            case .success(let r): reply = r
            case .failure(let error): reply = Reply(.storageError, "\(error)")
            }
            if reply.isLast || self.watchStopRequested {
                self.watchTimer?.cancel()
                self.watchTimer = nil
                self.watched = nil
                self.watchStopRequested = false
                var last = reply
                last.isLast = true
                self.session.answered([last])
                self.drive(context)
            } else {
                self.send(reply, context)
                context.flush()
            }
        }
    }

    private var watchStopRequested = false

    // While the pool works, stop reading: the client waits for our reply anyway,
    // and a client that does not must not make us buffer without bound.
    private func pauseReading(_ context: ChannelHandlerContext) {
        try? context.channel.syncOptions?.setOption(ChannelOptions.autoRead, value: false)
    }

    private func resumeReading(_ context: ChannelHandlerContext) {
        guard isActive else { return }
        try? context.channel.syncOptions?.setOption(ChannelOptions.autoRead, value: true)
    }
}
