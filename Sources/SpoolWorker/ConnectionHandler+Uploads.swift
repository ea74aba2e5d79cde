import CSpoolSys
import Crypto
import Logging
import NIOCore
import NIOPosix
import SpoolProtocol
import SpoolStore
import SpoolSystem

extension ConnectionHandler {

    // MARK: - Upload steps

    /// What opening (or reopening) an upload came to.
    enum Opening: Sendable {
        case opened(OpenUpload, PrefixHash?)
        case refused(Reply)
    }

    /// The row a new upload starts as, and its id.
    func newUpload(_ request: UploadRequest) -> (NewUpload, id: String) {
        let new = NewUpload(
            name: request.name, size: request.size, sha256: request.sha256 ?? "",
            clientIP: clientIP, clientPort: clientPort, workerPID: services.pid, token: token?.name
        )
        var rng = SystemRandomNumberGenerator()
        return (new, UploadID.generate(milliseconds: UInt64(UTCTime.epochMilliseconds()), using: &rng))
    }

    func begin(_ request: UploadRequest, _ context: ChannelHandlerContext) {
        let (new, id) = newUpload(request)
        let (store, limits, quota) = (services.store, services.limits.admission, token?.quota)
        open(context) {
            do {
                return .opened(try store.begin(new, id: id, limits: limits, quota: quota), nil)
            } catch StoreError.refused(let refusal) {
                return .refused(Self.refusedReply(refusal))
            }
        }
    }

    /// A small body that arrived whole with its UPLOAD line: stored in a batch with
    /// the others that arrived meanwhile (`WholeUploads`), with the steps and order
    /// of any upload, instead of a trip to the pool to open it and another to finish it.
    func storeWhole(_ request: UploadRequest, body: ByteBuffer, _ context: ChannelHandlerContext) {
        let (new, id) = newUpload(request)
        let logger = services.logger
        let whole = WholeUpload(new: new, id: id, limits: services.limits.admission, quota: token?.quota) {
            fd, path throws(SystemError) in
            var hasher = SHA256()
            try body.withUnsafeReadableBytes { raw throws(SystemError) in
                try Files.writeAll(fd, raw, path: path)
                hasher.update(bufferPointer: raw)
            }
            return Checksum.hex(hasher.finalize())
        }
        // Reading goes on: the client may send more small uploads behind this one (see updateReading).
        services.wholeUploads.store(whole, on: context.eventLoop).assumeIsolated().whenComplete { result in
            let (stored, reply): (String?, Reply)
            switch result {
            case .success(let outcome):
                (stored, reply) = Self.reply(to: outcome, id: id, request: request, logger: logger)
            case .failure(let error):
                (stored, reply) = (nil, Self.cannotOpen(error, logger: logger))
            }
            self.session.wholeUploadFinished(id: stored, size: request.size, reply: reply)
            self.services.board.beat()
            self.drive(context)
        }
    }

    /// The reply to a small upload stored in a batch, and its id if a row was kept.
    static func reply(to outcome: WholeOutcome, id: String, request: UploadRequest, logger: Logger) -> (String?, Reply) {
        switch outcome {
        case .stored:
            logger.info("upload stored", metadata: ["id": "\(id)", "size": "\(request.size)"])
            return (id, storedReply(id: id, size: request.size, sha256: request.sha256 ?? ""))
        case .refused(let refusal):
            return (nil, refusedReply(refusal))
        case .cannotOpen(let error):
            return (nil, cannotOpen(error, logger: logger))
        case .checksumMismatch(let actual):
            logger.info("upload rejected", metadata: ["id": "\(id)", "reason": "checksum mismatch"])
            return (id, mismatchReply(id: id, declared: request.sha256 ?? "", actual: actual))
        case .failed(let error):
            logger.error("cannot store upload", metadata: ["id": "\(id)", "error": "\(error)"])
            return (id, storageFailure(id, error))
        }
    }

    func resume(id: String, sha256: String, _ context: ChannelHandlerContext) {
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
    func open(_ context: ChannelHandlerContext, _ work: @escaping @Sendable () throws -> Opening) {
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
                if opened.size - opened.offset >= Self.pipelineThreshold {
                    self.pipelined = PipelinedDigest(continuing: self.hasher, pool: self.services.pool)
                }
                self.received = opened.offset
                self.writebackMark = opened.offset
                self.claimProgressSlot(opened)
                if opened.offset > 0 {
                    self.services.logger.info("upload resumed", metadata: ["id": "\(opened.id)", "offset": "\(opened.offset)"])
                }
                self.session.uploadOpened(id: opened.id, size: opened.size, offset: opened.offset)
            case .success(.refused(let reply)):
                self.session.uploadRefused(reply)
            case .failure(let error):
                self.session.uploadRefused(Self.cannotOpen(error, logger: self.services.logger))
            }
            self.resumeReading(context)
            self.drive(context)
        }
    }

    /// Admission said no: `452` while it may pass later (space), `552` for good (size, quota).
    static func refusedReply(_ refusal: Refusal) -> Reply {
        Reply(refusal.isTransient ? .insufficientStorage : .exceedsLimit, refusal.description)
    }

    /// The store could not open an upload at all.
    static func cannotOpen(_ error: any Error, logger: Logger) -> Reply {
        logger.error("cannot open upload", metadata: ["error": "\(error)"])
        return Reply(.storageError, "cannot accept uploads right now: \(error)")
    }

    static func storageFailure(_ id: String, _ error: any Error) -> Reply {
        Reply(.storageError, "id=\(id) could not store the upload: \(error)")
    }

    static func mismatchReply(id: String, declared: String, actual: String) -> Reply {
        Reply(.checksumMismatch, "id=\(id) checksum mismatch: declared \(declared), received \(actual); nothing stored")
    }

    static func storedReply(id: String, size: Int64, sha256: String) -> Reply {
        Reply(.stored, "id=\(id) size=\(size) sha256=\(sha256) stored")
    }

    func write(_ bytes: ByteBuffer) {
        guard let upload else { return }
        do {
            try bytes.withUnsafeReadableBytes { raw throws(SystemError) in
                try Files.writeAll(upload.fd, raw, path: upload.tempPath)
                if pipelined == nil { hasher.update(bufferPointer: raw) }
            }
            if let pipelined, pipelined.add(bytes), !pausedForDigest, let context {
                pauseForDigest(pipelined, context)
            }
            received += Int64(bytes.readableBytes)
            if received - writebackMark >= Self.writebackChunk {
                // Hand the last chunk to the disk now: the fsync at the end then waits
                // for a few megabytes, not for the whole file.
                _ = spool_start_writeback(upload.fd, writebackMark, received - writebackMark)
                writebackMark = received
            }
            // One clock read per chunk: the heartbeat, the progress and its rate share it.
            let now = Scoreboard.nowMilliseconds()
            services.board.beat(at: now)
            publishProgress(at: now)
        } catch {
            self.upload = nil
            dropDigest()
            releaseProgressSlot()
            services.logger.error("write failed", metadata: ["id": "\(upload.id)", "error": "\(error)"])
            session.bodyFailed(Self.storageFailure(upload.id, error))
            let store = services.store
            let received = self.received
            services.pool.submit { _ in
                try? store.fail(upload, received: received, reason: error.description)
            }
        }
    }

    /// `declared`: the checksum sent after the body, if it was not given up front.
    func finish(_ context: ChannelHandlerContext, declared: String?) {
        guard let upload else { return }
        self.upload = nil
        pauseReading(context)
        pausedForDigest = false
        let digest: EventLoopFuture<String>
        if let pipelined {
            self.pipelined = nil
            let promise = context.eventLoop.makePromise(of: String.self)
            pipelined.finish(promise)
            digest = promise.futureResult
        } else {
            digest = context.eventLoop.makeSucceededFuture(Checksum.hex(hasher.finalize()))
        }
        let received = self.received
        let store = services.store
        let logger = services.logger
        let pool = services.pool
        let eventLoop = context.eventLoop
        digest.flatMap { digest in
            pool.runIfActive(eventLoop: eventLoop) { () -> Reply in
                Self.complete(upload, received: received, sha256: digest, declared: declared, store: store, logger: logger)
            }
        }.assumeIsolated().whenComplete { result in
            let reply: Reply
            switch result {
            case .success(let r): reply = r
            case .failure(let error): reply = Self.storageFailure(upload.id, error)
            }
            self.releaseProgressSlot()
            self.session.uploadFinished(reply)
            self.resumeReading(context)
            self.drive(context)
        }
    }

    /// The blocking end of an upload, on the pool: verify, make durable, record.
    static func complete(
        _ upload: OpenUpload, received: Int64, sha256 digest: String, declared: String?, store: Store, logger: Logger
    ) -> Reply {
        do {
            switch try store.complete(upload, received: received, sha256: digest, declared: declared) {
            case .stored:
                logger.info("upload stored", metadata: ["id": "\(upload.id)", "size": "\(received)"])
                return storedReply(id: upload.id, size: received, sha256: digest)
            case .checksumMismatch(let actual):
                logger.info("upload rejected", metadata: ["id": "\(upload.id)", "reason": "checksum mismatch"])
                return mismatchReply(id: upload.id, declared: declared ?? upload.sha256, actual: actual)
            }
        } catch {
            logger.error("cannot complete upload", metadata: ["id": "\(upload.id)", "error": "\(error)"])
            return storageFailure(upload.id, error)
        }
    }

    /// The body arrived without its checksum: drop the bytes, mark the upload failed, say why.
    func abandon(reason: String, _ context: ChannelHandlerContext) {
        guard let upload else { return }
        self.upload = nil
        dropDigest()
        pauseReading(context)
        let (store, received) = (services.store, self.received)
        services.pool.runIfActive(eventLoop: context.eventLoop) {
            try store.fail(upload, received: received, reason: reason)
        }.assumeIsolated().whenComplete { _ in
            self.releaseProgressSlot()
            self.session.uploadFinished(Reply(.checksumMismatch, "id=\(upload.id) \(reason); nothing stored"))
            self.resumeReading(context)
            self.drive(context)
        }
    }

    /// The pipelined hash is behind: stop reading until it catches up.
    func pauseForDigest(_ pipelined: PipelinedDigest, _ context: ChannelHandlerContext) {
        pausedForDigest = true
        pauseReading(context)
        let handler = NIOLoopBound(self, eventLoop: context.eventLoop)
        let eventLoop = context.eventLoop
        pipelined.whenDrained {
            eventLoop.execute {
                let handler = handler.value
                guard handler.pausedForDigest, let context = handler.context else { return }
                handler.pausedForDigest = false
                handler.resumeReading(context)
            }
        }
    }

    func dropDigest() {
        pipelined?.cancel()
        pipelined = nil
        pausedForDigest = false
    }

    func interrupt(_ upload: OpenUpload, received: Int64, reason: String) {
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

    func claimProgressSlot(_ upload: OpenUpload) {
        guard let slot = services.slots.take() else { return }
        progressSlot = slot
        rateMark = (Scoreboard.nowMilliseconds(), received)
        rate = 0
        services.board.claim(slot: slot, id: upload.id, received: received, size: upload.size)
    }

    /// A few stores to shared memory per chunk: cheap enough for every chunk.
    func publishProgress(at now: UInt64) {
        guard let slot = progressSlot else { return }
        let elapsed = now &- rateMark.milliseconds
        if elapsed >= 500 {
            rate = (received - rateMark.bytes) * 1000 / Int64(elapsed)
            rateMark = (now, received)
        }
        services.board.publish(slot: slot, received: received, rate: rate, at: now)
    }

    func releaseProgressSlot() {
        guard let slot = progressSlot else { return }
        progressSlot = nil
        services.board.release(slot: slot)
        services.slots.give(slot)
    }
}
