import Crypto
import Logging
import NIOCore
import SpoolProtocol
import SpoolStore
import SpoolSystem

/// The line protocol's side of an upload: it drives an `IncomingUpload` (the one
/// pipeline every protocol shares) and turns how each step ended into the
/// session's replies.
extension ConnectionHandler {
    var sender: IncomingUpload.Sender { IncomingUpload.Sender(ip: clientIP, port: clientPort, token: token, door: .line) }

    func begin(_ request: UploadRequest, _ context: ChannelHandlerContext) {
        open(IncomingUpload.begin(request, from: sender, services: services, on: context.eventLoop), context)
    }

    func resume(id: String, sha256: String, _ context: ChannelHandlerContext) {
        open(IncomingUpload.resume(id: id, sha256: sha256, from: sender, services: services, on: context.eventLoop), context)
    }

    /// Reading stops while the upload is opened on the pool, then the session hears how it went.
    private func open(_ opening: EventLoopFuture<IncomingUpload.Opening>, _ context: ChannelHandlerContext) {
        pauseReading(context)
        opening.assumeIsolated().whenSuccess { opening in
            switch opening {
            case .opened(let upload):
                guard self.isActive else {
                    upload.interrupt(reason: "client disconnected")
                    return
                }
                self.incoming = upload
                self.session.uploadOpened(id: upload.id, size: upload.size, offset: upload.offset)
            case .refused(let refusal):
                self.session.uploadRefused(Self.refusedReply(refusal))
            case .alreadyComplete(let row):
                self.session.uploadRefused(Self.storedReply(id: row.id, size: row.size, sha256: row.sha256))
            case .busy(let id):
                self.session.uploadRefused(Reply(.busy, "upload \(id) is being received on another connection; try again later"))
            case .notResumable(let reason):
                self.session.uploadRefused(Reply(.notFound, reason))
            case .cannotOpen(let error):
                self.session.uploadRefused(Self.cannotOpen(error))
            }
            self.resumeReading(context)
            self.drive(context)
        }
    }

    /// A small body that arrived whole with its UPLOAD line: stored in a batch with
    /// the others that arrived meanwhile (`WholeUploads`), with the steps and order
    /// of any upload, instead of a trip to the pool to open it and another to finish it.
    func storeWhole(_ request: UploadRequest, body: ByteBuffer, _ context: ChannelHandlerContext) {
        let (new, id) = IncomingUpload.newUpload(request, from: sender, services: services)
        let logger = services.logger
        let whole = WholeUpload(new: new, id: id, limits: services.limits.admission, quota: token?.quota) {
            staging throws(SystemError) in
            var hasher = SHA256()
            try body.withUnsafeReadableBytes { raw throws(SystemError) in
                try staging.write(raw)
                hasher.update(bufferPointer: raw)
            }
            return Checksum.hex(hasher.finalize())
        }
        // Reading goes on: the client may send more small uploads behind this one (see updateReading).
        let stored = services.wholeUploads.store(whole, door: .line, on: context.eventLoop)
        let delivered = context.eventLoop.makePromise(of: Void.self)
        let previous = lastWhole ?? context.eventLoop.makeSucceededVoidFuture()
        lastWhole = delivered.futureResult
        previous.and(stored).map(\.1).assumeIsolated().whenComplete { result in
            defer { delivered.succeed() }
            let (stored, reply): (String?, Reply)
            switch result {
            case .success(let outcome):
                (stored, reply) = Self.reply(to: outcome, id: id, request: request, logger: logger)
            case .failure(let error):
                logger.error("cannot open upload", metadata: ["error": "\(error)"])
                (stored, reply) = (nil, Self.cannotOpen(error))
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
            logger.error("cannot open upload", metadata: ["error": "\(error)"])
            return (nil, cannotOpen(error))
        case .checksumMismatch(let actual):
            logger.info("upload rejected", metadata: ["id": "\(id)", "reason": "checksum mismatch"])
            return (id, mismatchReply(id: id, declared: request.sha256 ?? "", actual: actual))
        case .failed(let error):
            logger.error("cannot store upload", metadata: ["id": "\(id)", "error": "\(error)"])
            return (id, storageFailure(id, error))
        }
    }

    /// Body bytes: written and hashed; a hash that falls behind pauses reading.
    func write(_ bytes: ByteBuffer) {
        guard let incoming, let context else { return }
        do {
            if try incoming.append(bytes), !pausedForDigest {
                pausedForDigest = true
                pauseReading(context)
                incoming.whenCaughtUp { [self] in
                    guard pausedForDigest, let context = self.context else { return }
                    pausedForDigest = false
                    resumeReading(context)
                }
            }
        } catch {
            self.incoming = nil
            pausedForDigest = false
            session.bodyFailed(Self.storageFailure(incoming.id, error))
        }
    }

    /// `declared`: the checksum sent after the body, if it was not given up front.
    func finish(_ context: ChannelHandlerContext, declared: String?) {
        guard let incoming else { return }
        self.incoming = nil
        pauseReading(context)
        pausedForDigest = false
        let (id, size) = (incoming.id, incoming.received)
        incoming.finish(declared: declared).assumeIsolated().whenSuccess { outcome in
            switch outcome {
            case .stored(let sha256):
                self.session.uploadFinished(Self.storedReply(id: id, size: size, sha256: sha256))
            case .checksumMismatch(let declared, let actual):
                self.session.uploadFinished(Self.mismatchReply(id: id, declared: declared, actual: actual))
            case .refused(let refusal):  // only a body of unknown length, which this protocol never has
                self.session.uploadFinished(Self.refusedReply(refusal))
            case .failed(let error):
                self.session.uploadFinished(Self.storageFailure(id, error))
            }
            self.resumeReading(context)
            self.drive(context)
        }
    }

    /// The body arrived without its checksum: drop the bytes, mark the upload failed, say why.
    func abandon(reason: String, _ context: ChannelHandlerContext) {
        guard let incoming else { return }
        self.incoming = nil
        pausedForDigest = false
        pauseReading(context)
        incoming.abandon(reason: reason).assumeIsolated().whenComplete { _ in
            self.session.uploadFinished(Reply(.checksumMismatch, "id=\(incoming.id) \(reason); nothing stored"))
            self.resumeReading(context)
            self.drive(context)
        }
    }

    // MARK: - Replies

    /// Admission said no: `452` while it may pass later (space), `552` for good
    /// (size, quota), `553` when the pre-create hook refused it.
    static func refusedReply(_ refusal: Refusal) -> Reply {
        if case .byPolicy = refusal { return Reply(.notAllowed, refusal.description) }
        return Reply(refusal.isTransient ? .insufficientStorage : .exceedsLimit, refusal.description)
    }

    /// The store could not open an upload at all.
    static func cannotOpen(_ error: any Error) -> Reply {
        Reply(.storageError, "cannot accept uploads right now: \(error)")
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
}
