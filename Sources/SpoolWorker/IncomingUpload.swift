import Crypto
import Logging
import NIOCore
import NIOPosix
import SpoolProtocol
import SpoolStore
import SpoolSystem

/// One upload being received, whatever protocol carries it: from its opening
/// (admission, row, temporary file and its lock, or a resume's reopening) through
/// the streaming write and hash of its body, its progress on the scoreboard, to its
/// end: verified and made durable, failed, or interrupted. Every front end drives
/// this one type and maps its outcomes to its own replies; none of them repeats a
/// durability step.
///
/// Bound to the event loop of the connection that receives it: every method is
/// called there, and the futures it returns complete there.
final class IncomingUpload {
    /// How opening an upload ended.
    enum Opening {
        case opened(IncomingUpload)
        /// Admission said no: over the size limit or a quota, or (for now) no space.
        case refused(Refusal)
        /// A resume of an upload that is already complete: nothing to send.
        case alreadyComplete(UploadRecord)
        /// Another connection, on any worker, is writing it (a resume).
        case busy(id: String)
        /// No such upload to resume for this checksum and token, or no longer resumable.
        case notResumable(reason: String)
        /// The store could not open an upload at all.
        case cannotOpen(any Error)
    }

    /// How an upload whose body is all in ended.
    enum Outcome {
        case stored(sha256: String)
        case checksumMismatch(declared: String, actual: String)
        /// A body of unknown length outgrew a limit; the upload has failed.
        case refused(Refusal)
        case failed(any Error)
    }

    /// Who sends an upload: recorded on its row, and checked against (quota, owner).
    struct Sender: Sendable {
        var ip: String
        var port: Int
        var token: TokenRecord?
        /// Which front end it came through: the `protocol` label of the metrics.
        var door: UploadDoor
    }

    private let services: WorkerServices
    private let eventLoop: EventLoop
    private var open: OpenUpload
    /// Its length was not known when it began (an HTTP body sent chunked, a tus
    /// upload created without one): the reservation grows as bytes arrive, and its
    /// size is settled at the end of the body.
    private(set) var lengthDeferred: Bool
    /// A tus upload: resumable even while its length is deferred (its client has its URL).
    private let tus: Bool
    /// The front end it came through, for the metrics.
    private let door: UploadDoor
    /// The hash of the bytes before this body: what a discarded body goes back to.
    private let start: PrefixHash
    private let quota: TokenQuota?
    /// A reservation step on its way; reading waits for it.
    private var growing: EventLoopFuture<Void>?
    /// Why the upload stopped growing: over a limit, a quota, or the free space.
    /// It has failed by the time this is set.
    private(set) var refusal: Refusal?
    /// A large body is hashed on the pool (`pipelined`), a small one inline.
    private var hasher: ResumableSHA256
    private var pipelined: PipelinedDigest?
    /// Bytes written, counting those already there when a resume opened it.
    private(set) var received: Int64
    /// Bytes up to here have been handed to the disk (`Store.startWriteBack`).
    private var writebackMark: Int64
    /// This upload's progress slot on the scoreboard, and the window its rate is measured over.
    private var progressSlot: Int?
    private var rateMark: (milliseconds: UInt64, bytes: Int64) = (0, 0)
    private var rate: Int64 = 0
    /// When the progress was last written to a catalog other hosts share (they have no scoreboard of ours).
    private var catalogProgressAt: UInt64 = 0
    /// Set once the upload has reached an end (finished, failed, interrupted): later calls do nothing.
    private var ended = false
    /// When it was opened (begun or resumed), for the duration histogram.
    private let openedAt = UTCTime.monotonic()

    static let pipelineThreshold: Int64 = 1 << 20
    static let writebackChunk: Int64 = 8 << 20
    static let reservationStep: Int64 = 16 << 20

    var id: String { open.id }
    var size: Int64 { open.size }
    /// Where the body starts: 0 for a new upload, what is already on disk for a resume.
    var offset: Int64 { open.offset }
    /// The checksum declared when it was opened ("" when it is to come after the body).
    var declaredSHA256: String { open.sha256 }

    private init(
        _ open: OpenUpload, prefix: PrefixHash?, lengthDeferred: Bool = false, tus: Bool = false, door: UploadDoor,
        quota: TokenQuota? = nil, services: WorkerServices, eventLoop: EventLoop
    ) {
        self.open = open
        self.lengthDeferred = lengthDeferred
        self.tus = tus
        self.door = door
        start = prefix ?? PrefixHash(hasher: ResumableSHA256(), offset: open.offset)
        self.quota = quota
        self.services = services
        self.eventLoop = eventLoop
        hasher = prefix?.hasher ?? ResumableSHA256()
        received = open.offset
        writebackMark = open.offset
        if open.size - open.offset >= Self.pipelineThreshold {
            pipelined = PipelinedDigest(continuing: hasher, pool: services.pool)
        }
        claimProgressSlot()
    }

    // MARK: - Opening

    /// A new upload: admitted against the limits and the sender's quota, its row
    /// recorded `receiving`, its temporary file opened and locked.
    /// `lengthDeferred`: the size is not known yet (`request.size` is ignored); the
    /// upload reserves space as its bytes arrive, under the same limits.
    /// `tusMetadata`: a tus creation, whose `Upload-Metadata` is kept for its HEADs.
    static func begin(
        _ request: UploadRequest, lengthDeferred: Bool = false, tusMetadata: String? = nil, from sender: Sender,
        services: WorkerServices, on eventLoop: EventLoop
    ) -> EventLoopFuture<Opening> {
        var request = request
        if lengthDeferred { request.size = 0 }
        let (made, id) = newUpload(request, from: sender, services: services)
        var row = made
        row.tusMetadata = tusMetadata
        row.lengthDeferred = lengthDeferred && tusMetadata != nil
        let (store, limits, quota, new) = (services.store, services.limits.admission, sender.token?.quota, row)
        let admitted = services.preCreate?.check(new, lengthDeferred: lengthDeferred, door: sender.door, on: eventLoop)
        return opening(
            services: services, lengthDeferred: lengthDeferred, tus: tusMetadata != nil, door: sender.door, quota: quota,
            admitted: admitted, on: eventLoop
        ) {
            do {
                return .opened(try store.begin(new, id: id, limits: limits, quota: quota), nil)
            } catch StoreError.refused(let refusal) {
                return .refused(refusal)
            }
        }
    }

    /// An interrupted upload, reopened where its bytes on disk end, for the sender
    /// who started it (same checksum, same token). `sha256` nil: a tus PATCH, for
    /// which the upload's URL is the credential; `lengthDeferred`: a tus upload whose
    /// length is still to come. The hash of the bytes already there comes from this
    /// worker's cache where it can, else from reading them back.
    static func resume(
        id: String, sha256: String?, lengthDeferred: Bool = false, from sender: Sender, services: WorkerServices,
        on eventLoop: EventLoop
    ) -> EventLoopFuture<Opening> {
        let (store, pid, cached) = (services.store, services.pid, services.prefixes.get(id))
        let tus = sha256 == nil
        return opening(services: services, lengthDeferred: lengthDeferred, tus: tus, door: sender.door, quota: sender.token?.quota, on: eventLoop) {
            switch try store.resume(
                id: id, sha256: sha256, token: sender.token?.name, clientIP: sender.ip, clientPort: sender.port, workerPID: pid,
                cached: cached)
            {
            case .opened(let upload, let prefix): .opened(upload, prefix)
            case .alreadyComplete(let row): .alreadyComplete(row)
            case .busy: .busy(id: id)
            case .notResumable(let reason): .notResumable(reason: reason)
            }
        }
    }

    /// The row a new upload starts as, and its id.
    static func newUpload(_ request: UploadRequest, from sender: Sender, services: WorkerServices) -> (NewUpload, id: String) {
        let new = NewUpload(
            name: request.name, size: request.size, sha256: request.sha256 ?? "",
            clientIP: sender.ip, clientPort: sender.port, workerPID: services.pid, token: sender.token?.name
        )
        var rng = SystemRandomNumberGenerator()
        return (new, UploadID.generate(milliseconds: UInt64(UTCTime.epochMilliseconds()), using: &rng))
    }

    /// What the store's side of opening came to, before it becomes an `IncomingUpload` on the loop.
    private enum Opened: Sendable {
        case opened(OpenUpload, PrefixHash?)
        case refused(Refusal)
        case alreadyComplete(UploadRecord)
        case busy(id: String)
        case notResumable(reason: String)
    }

    private static func opening(
        services: WorkerServices, lengthDeferred: Bool = false, tus: Bool = false, door: UploadDoor, quota: TokenQuota? = nil,
        admitted: EventLoopFuture<Refusal?>? = nil, on eventLoop: EventLoop, _ work: @escaping @Sendable () throws -> Opened
    ) -> EventLoopFuture<Opening> {
        // `admitted`: the pre-create hook's answer, asked before the store is.
        let opened = admitted.map { answer in
            answer.flatMap { refusal -> EventLoopFuture<Opened> in
                if let refusal { return eventLoop.makeSucceededFuture(.refused(refusal)) }
                return services.pool.runIfActive(eventLoop: eventLoop, work)
            }
        } ?? services.pool.runIfActive(eventLoop: eventLoop, work)
        return opened.assumeIsolated().map { opened -> Opening in
            switch opened {
            case .opened(let upload, let prefix):
                if let prefix {
                    // `reread`: bytes read back and hashed again (0 when this worker's cache had them).
                    services.logger.info("upload resumed", metadata: [
                        "id": "\(upload.id)", "offset": "\(upload.offset)", "reread": "\(prefix.reread)",
                    ])
                }
                if prefix == nil { services.board.count(.uploadsStarted, door: door) }
                return .opened(IncomingUpload(
                    upload, prefix: prefix, lengthDeferred: lengthDeferred, tus: tus, door: door, quota: quota, services: services,
                    eventLoop: eventLoop))
            case .refused(let refusal):
                services.board.count(.uploadsRefused)
                return .refused(refusal)
            case .alreadyComplete(let row): return .alreadyComplete(row)
            case .busy(let id): return .busy(id: id)
            case .notResumable(let reason): return .notResumable(reason: reason)
            }
        }.recover { error in
            services.logger.error("cannot open upload", metadata: ["error": "\(error)"])
            return .cannotOpen(error)
        }.nonisolated()
    }

    // MARK: - The body

    /// Writes body bytes and hashes them. Returns true when the hash has fallen
    /// behind and the caller should stop reading until `whenCaughtUp` calls back.
    /// A failed write fails the upload (its row says why) before it is thrown.
    func append(_ bytes: ByteBuffer) throws(SystemError) -> Bool {
        guard !ended else { return false }
        let limit = services.limits.admission.maxFileSize
        if lengthDeferred, received + Int64(bytes.readableBytes) > limit {
            // Known without asking the store, and before the bytes take any room.
            let size = received + Int64(bytes.readableBytes)
            growing = refuse(.tooLarge(size: size, limit: limit), reason: "\(size) bytes is over the limit of \(limit) per file")
                .assumeIsolated().map { self.growing = nil }.nonisolated()
            return true
        }
        do {
            try bytes.withUnsafeReadableBytes { raw throws(SystemError) in
                try services.store.append(open, raw)
                if pipelined == nil { hasher.update(bufferPointer: raw) }
            }
        } catch {
            services.logger.error("write failed", metadata: ["id": "\(open.id)", "error": "\(error)"])
            end()
            let (store, upload, received) = (services.store, open, received)
            services.pool.submit { _ in try? store.fail(upload, received: received, reason: error.description) }
            throw error
        }
        var behind = false
        received += Int64(bytes.readableBytes)
        services.board.count(.bytesReceived, door: door, by: UInt64(bytes.readableBytes))
        if let pipelined {
            behind = pipelined.add(bytes)
        } else if lengthDeferred, received >= Self.pipelineThreshold {
            // Long enough now to hash off the event loop, as a declared large size is.
            pipelined = PipelinedDigest(continuing: hasher, pool: services.pool)
        }
        if lengthDeferred, received > open.size, growing == nil {
            growReservation()
            behind = true
        }
        if received - writebackMark >= Self.writebackChunk {
            // Hand the last chunk to the disk now: the fsync at the end then waits
            // for a few megabytes, not for the whole file.
            services.store.startWriteBack(open, from: writebackMark, count: received - writebackMark)
            writebackMark = received
        }
        // One clock read per chunk: the heartbeat, the progress and its rate share it.
        let now = Scoreboard.nowMilliseconds()
        services.board.beat(at: now)
        publishProgress(at: now)
        return behind
    }

    /// Calls `callback` on the event loop once the pipelined hash has caught up and
    /// the reservation has grown (or been refused: see `refusal`).
    func whenCaughtUp(_ callback: @escaping () -> Void) {
        if let growing {
            growing.assumeIsolated().whenComplete { _ in
                if self.refusal != nil { return callback() }
                self.whenCaughtUp(callback)
            }
            return
        }
        guard let pipelined else { return callback() }
        let loopBound = NIOLoopBound((self, callback), eventLoop: eventLoop)
        let eventLoop = self.eventLoop
        pipelined.whenDrained {
            eventLoop.execute {
                let (upload, callback) = loopBound.value
                // A reservation step that began meanwhile holds reading too.
                if upload.growing == nil { callback() } else { upload.whenCaughtUp(callback) }
            }
        }
    }

    /// Reserves room for the bytes written past the reservation and, where the
    /// limits leave it, a step more (a quarter of what came so far, at least
    /// 16 MiB), so a 4 GiB body asks about 20 times. Over a limit, the upload fails.
    private func growReservation() {
        let (store, limits, quota, received) = (services.store, services.limits.admission, quota, received)
        let wanted = received + max(Self.reservationStep, received / 4)
        let open = self.open
        let step = services.pool.runIfActive(eventLoop: eventLoop) { () throws -> OpenUpload in
            var upload = open
            try store.grow(&upload, received: received, needed: received, wanted: wanted, limits: limits, quota: quota)
            return upload
        }
        growing = step.assumeIsolated().flatMap { grown -> EventLoopFuture<Void> in
            self.growing = nil
            guard !self.ended else { return self.eventLoop.makeSucceededVoidFuture() }
            self.open.size = grown.size
            if self.received > self.open.size { self.growReservation() }
            return self.eventLoop.makeSucceededVoidFuture()
        }.flatMapError { error -> EventLoopFuture<Void> in
            guard !self.ended else {
                self.growing = nil
                return self.eventLoop.makeSucceededVoidFuture()
            }
            if case StoreError.refused(let refusal) = error {
                return self.refuse(refusal, reason: "\(refusal)").assumeIsolated().map { self.growing = nil }.nonisolated()
            }
            let refusal = Refusal.insufficientStorage(free: 0, reserved: 0, size: received, minimum: limits.minFreeBytes)
            return self.refuse(refusal, reason: "cannot reserve space: \(error)").assumeIsolated().map { self.growing = nil }.nonisolated()
        }.nonisolated()
    }

    /// The body outgrew a limit: the upload fails, its row recorded before the
    /// returned future completes, so the refusal a client sees is already true.
    private func refuse(_ refusal: Refusal, reason: String) -> EventLoopFuture<Void> {
        self.refusal = refusal
        services.board.count(.uploadsFailedLimit)
        services.logger.info("upload refused while growing", metadata: ["id": "\(open.id)", "reason": "\(reason)"])
        return abandon(reason: reason)
    }

    // MARK: - Ends

    /// Every byte is in: verify against `declared` (nil: the checksum given when it
    /// was opened), make durable and record, in that order, then say how it ended.
    /// `unchecked`: no checksum was declared at all (an HTTP PUT without a digest
    /// header); the server's own is recorded and returned for the client to compare.
    func finish(declared: String?, unchecked: Bool = false) -> EventLoopFuture<Outcome> {
        if let growing {  // the last step of a reservation first: it may refuse the body
            return growing.assumeIsolated().flatMap { self.finish(declared: declared, unchecked: unchecked) }.nonisolated()
        }
        if let refusal { return eventLoop.makeSucceededFuture(.refused(refusal)) }
        guard !ended else { return eventLoop.makeSucceededFuture(.failed(SystemError("finish", open.id, errno: EINVAL))) }
        // Ended for writing, but the progress slot stays until the end is recorded:
        // a STATUS meanwhile still sees every byte received.
        ended = true
        let digest: EventLoopFuture<String>
        if let pipelined {
            self.pipelined = nil
            let promise = eventLoop.makePromise(of: String.self)
            pipelined.finish(promise)
            digest = promise.futureResult
        } else {
            digest = eventLoop.makeSucceededFuture(Checksum.hex(hasher.finalize()))
        }
        let (upload, received, store, logger, pool, eventLoop) = (open, received, services.store, services.logger, services.pool, eventLoop)
        let (lengthDeferred, board, openedAt, door) = (self.lengthDeferred, services.board, openedAt, door)
        return digest.flatMap { digest in
            pool.runIfActive(eventLoop: eventLoop) { () -> Outcome in
                do {
                    let declared = unchecked ? digest : declared
                    var upload = upload
                    if lengthDeferred { try store.settle(&upload, received: received) }
                    switch try store.complete(upload, received: received, sha256: digest, declared: declared) {
                    case .stored:
                        logger.info("upload stored", metadata: ["id": "\(upload.id)", "size": "\(received)"])
                        board.count(.uploadsCompleted, door: door)
                        board.observe(.uploadDuration, UTCTime.monotonic() - openedAt)
                        return .stored(sha256: digest)
                    case .checksumMismatch(let actual):
                        logger.info("upload rejected", metadata: ["id": "\(upload.id)", "reason": "checksum mismatch"])
                        board.count(.uploadsFailedChecksum)
                        return .checksumMismatch(declared: declared ?? upload.sha256, actual: actual)
                    }
                } catch {
                    board.count(.uploadsFailedStorage)
                    logger.error("cannot complete upload", metadata: ["id": "\(upload.id)", "error": "\(error)"])
                    return .failed(error)
                }
            }
        }.recover { .failed($0) }.assumeIsolated().map { outcome in
            self.releaseProgressSlot()
            return outcome
        }.nonisolated()
    }

    /// The body is in but cannot be verified (its checksum never came): drop its
    /// bytes and mark it failed with `reason`.
    func abandon(reason: String) -> EventLoopFuture<Void> {
        guard !ended else { return eventLoop.makeSucceededVoidFuture() }
        end()
        services.board.count(.uploadsAbandoned)
        let (store, upload, received, lengthDeferred) = (services.store, open, received, lengthDeferred)
        return services.pool.runIfActive(eventLoop: eventLoop) {
            var upload = upload
            // Recorded at the bytes that came, not at the space it had reserved.
            if lengthDeferred { try? store.settle(&upload, received: received) }
            try store.fail(upload, received: received, reason: reason)
        }.recover { _ in }
    }

    /// The connection went away mid-body: keep (and fsync) what arrived, for a resume.
    func interrupt(reason: String) {
        guard !ended else { return }
        guard !lengthDeferred || tus else {
            // Nothing could resume it: its length was never known, and its client has no id.
            _ = abandon(reason: "\(reason); a body of unknown length cannot be resumed")
            return
        }
        end()
        services.board.count(.uploadsInterrupted)
        let (store, upload, received, logger, lengthDeferred) = (services.store, open, received, services.logger, lengthDeferred)
        services.pool.submit { _ in
            do {
                var upload = upload
                if lengthDeferred { try store.settle(&upload, received: received) }
                try store.interrupt(upload, received: received, reason: reason)
                logger.info("upload interrupted", metadata: ["id": "\(upload.id)", "received": "\(received)"])
            } catch {
                logger.error("cannot record interruption", metadata: ["id": "\(upload.id)", "error": "\(error)"])
            }
        }
    }

    /// One request's body has ended before the upload has (a tus PATCH): its bytes
    /// are kept and fsynced and the row says how many, as for an interruption, and
    /// the hash state goes to this worker's cache for the next request. The future
    /// succeeds once that is recorded, so the offset a client is then told is durable.
    /// `discarding`: the body failed its own checksum; the file is cut back to where
    /// the body began, as if it had never come.
    func pause(discarding: Bool = false) -> EventLoopFuture<Void> {
        if let growing {  // a reservation step first: it may have refused the body
            return growing.assumeIsolated().flatMap { self.pause(discarding: discarding) }.nonisolated()
        }
        guard !ended else { return eventLoop.makeFailedFuture(SystemError("pause", open.id, errno: EINVAL)) }
        ended = true
        let state: EventLoopFuture<PrefixHash>
        if discarding {
            pipelined?.cancel()
            state = eventLoop.makeSucceededFuture(start)
        } else if let pipelined {
            let promise = eventLoop.makePromise(of: PrefixHash.self)
            pipelined.state(offset: received, promise)
            state = promise.futureResult
        } else {
            state = eventLoop.makeSucceededFuture(PrefixHash(hasher: hasher, offset: received))
        }
        pipelined = nil
        releaseProgressSlot()
        let (store, upload, pool, prefixes, lengthDeferred) = (services.store, open, services.pool, services.prefixes, lengthDeferred)
        let kept = discarding ? start.offset : received
        let eventLoop = self.eventLoop
        return state.flatMap { prefix in
            pool.runIfActive(eventLoop: eventLoop) {
                var upload = upload
                if discarding {
                    do throws(SystemError) {
                        try store.truncate(upload, to: kept)
                    } catch {
                        try? store.fail(upload, received: kept, reason: error.description)
                        throw error
                    }
                }
                if lengthDeferred { try store.settle(&upload, received: kept) }
                try store.interrupt(upload, received: kept, reason: "waiting for the rest (tus)")
                prefixes.put(upload.id, prefix)
            }
        }
    }

    /// tus creation-defer-length: the upload's length, declared by a PATCH. Admitted
    /// as a new upload's size would be; nil when it is, else why not.
    func declareLength(_ length: Int64) -> EventLoopFuture<Refusal?> {
        let (store, limits, quota, received, open) = (services.store, services.limits.admission, quota, received, open)
        return services.pool.runIfActive(eventLoop: eventLoop) { () throws -> OpenUpload in
            var upload = open
            try store.declareLength(&upload, length: length, received: received, limits: limits, quota: quota)
            return upload
        }.assumeIsolated().map { upload -> Refusal? in
            self.open.size = upload.size
            self.lengthDeferred = false
            if self.pipelined == nil, upload.size - self.received >= Self.pipelineThreshold {
                self.pipelined = PipelinedDigest(continuing: self.hasher, pool: self.services.pool)
            }
            return nil
        }.flatMapErrorThrowing { error -> Refusal? in
            if case StoreError.refused(let refusal) = error { return refusal }
            throw error
        }.nonisolated()
    }

    /// Nothing more is written: the progress slot goes back, a hash still queued is dropped.
    private func end(keepingDigest: Bool = false) {
        ended = true
        if !keepingDigest {
            pipelined?.cancel()
            pipelined = nil
        }
        releaseProgressSlot()
    }

    // MARK: - Progress on the scoreboard

    private func claimProgressSlot() {
        guard let slot = services.slots.take() else { return }
        progressSlot = slot
        rateMark = (Scoreboard.nowMilliseconds(), received)
        rate = 0
        services.board.claim(slot: slot, id: open.id, received: received, size: open.size)
    }

    /// A few stores to shared memory per chunk: cheap enough for every chunk.
    private func publishProgress(at now: UInt64) {
        guard let slot = progressSlot else { return }
        let elapsed = now &- rateMark.milliseconds
        if elapsed >= 500 {
            rate = (received - rateMark.bytes) * 1000 / Int64(elapsed)
            rateMark = (now, received)
        }
        services.board.publish(slot: slot, received: received, rate: rate, at: now)
        if services.store.catalog.isShared, now &- catalogProgressAt >= 1000 {
            catalogProgressAt = now
            let (store, id, received) = (services.store, open.id, received)
            _ = services.pool.runIfActive(eventLoop: eventLoop) { try? store.catalog.recordProgress(id: id, received: received) }
        }
    }

    private func releaseProgressSlot() {
        guard let slot = progressSlot else { return }
        progressSlot = nil
        services.board.release(slot: slot)
        services.slots.give(slot)
    }
}
