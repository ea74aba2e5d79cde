import NIOCore


/// The server side of one connection as a pure state machine: bytes and results
/// go in, actions come out. No I/O happens here, so every path is testable
/// without a socket; `ConnectionHandler` only performs the actions.
///
/// The handler feeds bytes with `receive(_:)`, then calls `next()` until it
/// returns nil. While an upload is being opened or finished, `next()` returns
/// nil and buffered bytes wait; the matching `upload…` call resumes the session.
public struct Session {
    public enum Action: Equatable {
        case reply(Reply)
        /// Open the upload (database row, temporary file), then call `uploadOpened` or `uploadRefused`.
        case beginUpload(UploadRequest)
        /// Protocol 2: the whole body arrived with its UPLOAD line. Open, write, verify
        /// and make durable in one step, then call `wholeUploadFinished`.
        case storeUpload(UploadRequest, body: ByteBuffer)
        /// Reopen an interrupted upload, then call `uploadOpened` (with its offset) or `uploadRefused`.
        case resumeUpload(id: String, sha256: String)
        /// Append these body bytes to the open upload.
        case writeBody(ByteBuffer)
        /// All declared bytes arrived: verify them against `declared` (nil: the checksum
        /// given when the upload was opened) and make them durable, then call `uploadFinished`.
        case finishUpload(declared: String?)
        /// The body arrived but its checksum did not (`DIGEST` missing or malformed):
        /// drop the upload's bytes, then call `uploadFinished` with a reply built from `reason`.
        case abandonUpload(reason: String)
        /// Answer a question (STATUS, FIND, LIST, STATS) from the store, then call `answered`.
        case query(Command)
        /// Check this token, then call `authenticated` or `authenticationFailed`.
        case authenticate(secret: String)
        /// Push status lines for this upload until it ends (then call `watchEnded`).
        case startWatch(id: String)
        /// The client spoke while watching: send the final status line now, then call `watchEnded`.
        case stopWatch
        case close
    }

    enum State: Equatable {
        case commands
        /// Waiting for the handler to open an upload. `bodyOnItsWay`: protocol 2's
        /// body of that many bytes is already coming, to be dropped if the upload is refused.
        case opening(bodyOnItsWay: Int64?)
        /// `failure` is set when writing failed: the rest of the body is read and dropped, then the failure is sent.
        case body(remaining: Int64, failure: Reply?)
        /// An upload was refused (the refusal already sent) while its body was on its
        /// way: `remaining` bytes of it, then its DIGEST line if one follows, are read and dropped.
        case discarding(remaining: Int64, digestFollows: Bool)
        /// The body is in; waiting for its `DIGEST <sha256>` line. `failure` as for `body`.
        case digest(failure: Reply?)
        case finishing
        /// Small uploads that arrived whole are being stored: `count` of them, with
        /// `bytes` of bodies, whose replies are still to come, in order. More such
        /// uploads are taken meanwhile (a client may send them back to back); any
        /// other line waits until every one of them has its reply.
        case storing(count: Int, bytes: Int64)
        case querying
        case watching
        case closed
    }

    private(set) var state: State = .commands
    private var framer = LineFramer()
    private var pending: [Action] = []
    /// The protocol version agreed by HELLO (1 until then).
    public private(set) var protocolVersion = 1
    /// The worker is shutting down: finish the upload in progress, then close.
    public private(set) var isDraining = false
    /// Who the client proved to be with AUTH; nil until then.
    public private(set) var identity: Identity?
    /// Whether a client that has not authenticated may touch uploads (the handler keeps this current).
    public var anonymousAllowed = true
    private var failedAuthentications = 0
    private var receivedAny = false
    static let tlsHandshakeRecord: UInt8 = 0x16
    /// The upload being received sends its checksum after the body.
    private var digestFollows = false
    /// Whether this UPLOAD's body follows its line at once instead of waiting for
    /// `150` (one round trip per upload instead of two): in protocol 2 always, and
    /// otherwise when the line says so (`--at-once`, protocol 3). The server must
    /// know, not guess: a refusal is answered at once either way, and the body is
    /// then dropped only if it is coming. A person typing into `nc` speaks version 1
    /// and is never asked to send bytes before being told to.
    public func bodyFollowsAtOnce(_ request: UploadRequest) -> Bool {
        request.bodyAtOnce || protocolVersion == 2
    }
    /// A body of up to this many bytes that arrived with its UPLOAD line is stored in
    /// one step (`storeUpload`) instead of being opened, written and finished apart.
    public static let wholeBodyLimit: Int64 = 1 << 20
    public static let maxFailedAuthentications = 3

    public struct Identity: Equatable, Sendable {
        public var token: String
        public var admin: Bool

        public init(token: String, admin: Bool) {
            self.token = token
            self.admin = admin
        }
    }

    public init() {}

    /// True while an upload is open (between `beginUpload` and its final reply).
    public var isUploading: Bool {
        switch state {
        case .opening, .body, .digest, .finishing, .storing: true
        case .commands, .discarding, .querying, .watching, .closed: false
        }
    }

    public mutating func receive(_ bytes: ByteBuffer) {
        guard state != .closed else { return }
        if !receivedAny, let first = bytes.getInteger(at: bytes.readerIndex, as: UInt8.self) {
            receivedAny = true
            // A TLS client's first record is a handshake (content type 22): it would
            // wait for a ServerHello forever. Say what is wrong, in the one reply it
            // may show, and close.
            if first == Self.tlsHandshakeRecord {
                state = .closed
                pending = [.reply(Reply(.badLine, "this port speaks plain text, not TLS; connect without TLS, or to the TLS port")), .close]
                return
            }
        }
        framer.append(bytes)
    }

    public mutating func next() -> Action? {
        if !pending.isEmpty { return pending.removeFirst() }
        switch state {
        case .commands:
            return nextCommand()
        case .body(let remaining, let failure):
            return nextBody(remaining: remaining, failure: failure)
        case .digest(let failure):
            return nextDigest(failure: failure)
        case .discarding(let remaining, let digestFollows):
            return nextDiscarded(remaining: remaining, digestFollows: digestFollows)
        case .watching:
            // Any complete line from the client ends the watch; the line is then read as a command.
            guard framer.hasLine else { return nil }
            state = .querying
            return .stopWatch
        case .storing(let count, let bytes):
            return nextWhole(storing: count, bytes: bytes)
        case .opening, .finishing, .querying, .closed:
            return nil
        }
    }

    /// At most this many small uploads, and this many bytes of them, stored at
    /// once for one connection: past that the session reads nothing more until
    /// replies go out, and the handler stops reading from the socket.
    public static let storingLimit = 64
    public static let storingBytesLimit: Int64 = 2 << 20

    /// While small uploads are being stored: the next line too, if it is another
    /// small upload whose whole body is here. Anything else is left unread.
    private mutating func nextWhole(storing count: Int, bytes: Int64) -> Action? {
        guard count < Self.storingLimit, !isDraining else { return nil }
        var probe = framer
        guard case .success(let text)? = probe.nextLine(), let command = try? CommandParser.parse(text),
            case .upload(let request) = command, authorized(command),
            let size = wholeBodySize(request, buffered: probe.bufferedBytes), bytes + size <= Self.storingBytesLimit
        else { return nil }
        framer = probe
        digestFollows = false
        state = .storing(count: count + 1, bytes: bytes + size)
        return .storeUpload(request, body: framer.nextBytes(max: Int(size)) ?? ByteBuffer())
    }

    /// The size of an upload that can be stored in one step: its checksum declared
    /// up front, small, and its whole body already buffered behind its line.
    private func wholeBodySize(_ request: UploadRequest, buffered: Int) -> Int64? {
        guard bodyFollowsAtOnce(request), request.sha256 != nil, request.size <= Self.wholeBodyLimit,
            Int64(buffered) >= request.size
        else { return nil }
        return request.size
    }

    private mutating func nextCommand() -> Action? {
        while true {
            guard let line = framer.nextLine() else { return nil }
            switch line {
            case .failure(let failure):
                return .reply(failure.reply)
            case .success(let text):
                if text.allSatisfy({ $0 == " " || $0 == "\t" }) { continue }  // a stray Enter from a person
                do {
                    return handle(try CommandParser.parse(text))
                } catch {
                    // A body sent at once behind a malformed UPLOAD must not be read as
                    // commands: drop as many bytes as the line announced, if it said.
                    if let body = Self.announcedBody(text), body.atOnce || protocolVersion == 2 {
                        refuse(bodyOf: body.size, digestFollows: body.digestFollows, with: error.reply)
                        return next()
                    }
                    return .reply(error.reply)
                }
            }
        }
    }

    /// The size an UPLOAD line announced, whether a DIGEST line follows its body, and
    /// whether it was marked `--at-once`, read as leniently as possible from a line
    /// the parser refused.
    static func announcedBody(_ text: String) -> (size: Int64, digestFollows: Bool, atOnce: Bool)? {
        let tokens = text.split(whereSeparator: { $0 == " " || $0 == "\t" })
        guard tokens.count >= 2, tokens[0].uppercased() == "UPLOAD", let size = Int64(tokens[1]), size >= 0 else { return nil }
        let atOnce = tokens.count >= 5 && tokens[tokens.count - 1].lowercased() == UploadRequest.atOnceMark
        return (size, tokens.count >= 3 && tokens[2] == "-", atOnce)
    }

    /// Refuses an upload at once. When its body of `size` bytes (and its DIGEST line,
    /// if one follows) is on its way, it is then read and dropped, so that the client,
    /// whether it reads the refusal now or only after sending, stays in step.
    private mutating func refuse(bodyOf size: Int64, digestFollows: Bool, with reply: Reply) {
        pending.append(.reply(reply))
        if size > 0 || digestFollows {
            state = .discarding(remaining: size, digestFollows: digestFollows)
        } else {
            returnToCommands()
        }
    }

    /// Drops what is left of a refused upload's body, then its DIGEST line.
    private mutating func nextDiscarded(remaining: Int64, digestFollows: Bool) -> Action? {
        if remaining > 0 {
            guard let chunk = framer.nextBytes(max: Int(clamping: remaining)) else { return nil }
            state = .discarding(remaining: remaining - Int64(chunk.readableBytes), digestFollows: digestFollows)
            return next()
        }
        if digestFollows, framer.nextLine() == nil { return nil }
        returnToCommands()
        return next()
    }

    /// Whether this connection may run `command` now.
    private func authorized(_ command: Command) -> Bool {
        !command.needsAuthorization || identity != nil || anonymousAllowed
    }

    private mutating func handle(_ command: Command) -> Action? {
        if !authorized(command) {
            let refusal = Reply(.authenticationRequired, "authenticate first: AUTH <token>")
            if case .upload(let request) = command, bodyFollowsAtOnce(request) {
                refuse(bodyOf: request.size, digestFollows: request.sha256 == nil, with: refusal)
                return next()
            }
            return .reply(refusal)
        }
        switch command {
        case .auth(let secret):
            state = .querying
            return .authenticate(secret: secret)
        case .hello(let version):
            protocolVersion = min(version, ProtocolInfo.version)
            return .reply(Reply(
                .ok, "proto=\(protocolVersion) server=\(ProtocolInfo.product) features=upload,resume,auth,chat,digest-after,body-at-once"))
        case .upload(let request):
            digestFollows = request.sha256 == nil
            if let size = wholeBodySize(request, buffered: framer.bufferedBytes) {
                state = .storing(count: 1, bytes: size)
                return .storeUpload(request, body: framer.nextBytes(max: Int(size)) ?? ByteBuffer())
            }
            state = .opening(bodyOnItsWay: bodyFollowsAtOnce(request) ? request.size : nil)
            return .beginUpload(request)
        case .resume(let id, let sha256):
            state = .opening(bodyOnItsWay: nil)  // the client waits for the offset before sending
            digestFollows = false
            return .resumeUpload(id: id, sha256: sha256)
        case .status, .find, .list, .stats, .health:
            state = .querying
            return .query(command)
        case .watch(let id):
            state = .watching
            return .startWatch(id: id)
        case .help(let topic):
            let lines = Help.reply(topic: topic)
            pending.append(contentsOf: lines.dropFirst().map { .reply($0) })
            return .reply(lines[0])
        case .ping:
            return .reply(Reply(.ok, "pong"))
        case .quit:
            state = .closed
            pending.append(.close)
            return .reply(Reply(.closing, "bye"))
        }
    }

    private mutating func nextBody(remaining: Int64, failure: Reply?) -> Action? {
        guard let chunk = framer.nextBytes(max: Int(clamping: remaining)) else { return nil }
        let left = remaining - Int64(chunk.readableBytes)
        if let failure {
            if left > 0 {
                state = .body(remaining: left, failure: failure)
                return nextBody(remaining: left, failure: failure)
            }
            if digestFollows {
                // The client will still send its DIGEST line: read it before the failure, to stay in step.
                state = .digest(failure: failure)
                return nextDigest(failure: failure)
            }
            returnToCommands()
            return .reply(failure)
        }
        if left == 0 {
            bodyComplete()
        } else {
            state = .body(remaining: left, failure: nil)
        }
        return .writeBody(chunk)
    }

    /// Every declared byte is in: verify now, or first wait for the checksum.
    private mutating func bodyComplete() {
        if digestFollows {
            state = .digest(failure: nil)
        } else {
            state = .finishing
            pending.append(.finishUpload(declared: nil))
        }
    }

    /// The line after a body sent without its checksum must be `DIGEST <sha256>`.
    private mutating func nextDigest(failure: Reply?) -> Action? {
        guard let line = framer.nextLine() else { return nil }
        if let failure {
            returnToCommands()
            return .reply(failure)
        }
        state = .finishing
        if case .success(let text) = line {
            let tokens = text.split(whereSeparator: { $0 == " " || $0 == "\t" })
            if tokens.count == 2, tokens[0].uppercased() == "DIGEST", let sha256 = Checksum.normalize(tokens[1]) {
                return .finishUpload(declared: sha256)
            }
        }
        return .abandonUpload(reason: "expected DIGEST <sha256> after the body")
    }

    // MARK: - Results of the handler's work

    /// The worker is stopping gracefully. A connection in the middle of an upload is
    /// closed after that upload's final reply; an idle one when `closeIfIdle()` says
    /// so (the handler calls it once the client has been quiet for a moment, so a
    /// client that connected just before the drain still gets its upload served).
    public mutating func drain() {
        isDraining = true
    }

    /// While draining: closes the connection unless a command or upload is under way.
    public mutating func closeIfIdle() {
        guard isDraining, state == .commands, framer.bufferedBytes == 0 else { return }
        returnToCommands()
    }

    /// Every path back to reading commands goes through here, so a draining session closes instead.
    private mutating func returnToCommands() {
        if isDraining {
            state = .closed
            pending.append(.reply(Reply(.unavailable, "server is shutting down; try again later")))
            pending.append(.close)
        } else {
            state = .commands
        }
    }

    /// The upload is open; the client may send `size - offset` bytes.
    public mutating func uploadOpened(id: String, size: Int64, offset: Int64) {
        guard case .opening = state else { return }
        let remaining = size - offset
        pending.append(.reply(Self.sendBody(id: id, size: size, offset: offset)))
        if remaining == 0 {
            bodyComplete()
        } else {
            state = .body(remaining: remaining, failure: nil)
        }
    }

    /// The upload was not opened, and no body will follow: refused, or (for a
    /// resume) already complete; `reply` says which.
    public mutating func uploadRefused(_ reply: Reply) {
        guard case .opening(let bodyOnItsWay) = state else { return }
        // The handler's next call to next() reads (and drops) a body already coming.
        refuse(bodyOf: bodyOnItsWay ?? 0, digestFollows: bodyOnItsWay != nil && digestFollows, with: reply)
    }

    static func sendBody(id: String, size: Int64, offset: Int64) -> Reply {
        Reply(.sendBody, "id=\(id) offset=\(offset) size=\(size) send \(size - offset) bytes")
    }

    /// An upload stored in one step (`storeUpload`) reached its final state; `reply`
    /// says which. `id` is nil when it was refused before it had one. Accepted
    /// uploads get their `150` first, as any upload does, so that the client reads
    /// the same replies whichever way the server took.
    /// Several may be under way (`storing`); they must be reported in the order
    /// their `storeUpload` actions were given.
    public mutating func wholeUploadFinished(id: String?, size: Int64, reply: Reply) {
        guard case .storing(let count, let bytes) = state else { return }
        if let id { pending.append(.reply(Self.sendBody(id: id, size: size, offset: 0))) }
        pending.append(.reply(reply))
        if count > 1 {
            state = .storing(count: count - 1, bytes: bytes - size)
        } else {
            returnToCommands()
        }
    }

    /// Whether the session waits for small uploads being stored before it reads further.
    public var isStoring: Bool {
        if case .storing = state { return true }
        return false
    }

    /// The session holds as much unread input as it should: while small uploads
    /// are being stored the client may send more behind them, but what the session
    /// cannot take yet is held only up to `storingReadAhead` bytes.
    public var hasEnoughUnread: Bool { isStoring && framer.bufferedBytes >= Self.storingReadAhead }
    public static let storingReadAhead = 1 << 20

    /// Writing the body failed: read and drop the rest of it, then send `reply`.
    public mutating func bodyFailed(_ reply: Reply) {
        switch state {
        case .body(let remaining, nil):
            state = .body(remaining: remaining, failure: reply)
        case .finishing:
            pending.removeAll { $0 == .finishUpload(declared: nil) }
            pending.append(.reply(reply))
            returnToCommands()
        case .digest(nil):
            state = .digest(failure: reply)
        default:
            return
        }
    }

    public mutating func authenticated(as identity: Identity) {
        guard state == .querying else { return }
        self.identity = identity
        failedAuthentications = 0
        answered([Reply(.authenticated, "authenticated as \(identity.token)\(identity.admin ? " (admin)" : "")")])
    }

    /// After too many failures the connection is closed: guessing costs a reconnect each time.
    public mutating func authenticationFailed() {
        guard state == .querying else { return }
        failedAuthentications += 1
        answered([Reply(.authenticationFailed, "authentication failed")])
        if failedAuthentications >= Self.maxFailedAuthentications {
            state = .closed
            pending.append(.reply(Reply(.unavailable, "too many failed attempts; closing")))
            pending.append(.close)
        }
    }

    // MARK: - Time limits

    /// The limits a connection lives under; times in seconds.
    public struct Timeouts: Sendable, Equatable {
        /// No command for this long: closed.
        public var idle: Double
        /// A command line not finished within this long (slowloris): closed.
        public var line: Double
        /// No body byte for this long in the middle of an upload: closed, the upload left resumable.
        public var stall: Double

        public init(idle: Double, line: Double, stall: Double) {
            self.idle = idle
            self.line = line
            self.stall = stall
        }
    }

    /// Checks the connection against its time limits: `quietFor` is the time since
    /// the client last sent anything, `partialLineFor` how long an unfinished line
    /// has been waiting. Closes the session (and says why) when a limit is passed.
    public mutating func checkTimeouts(_ limits: Timeouts, quietFor: Double, partialLineFor: Double?) {
        let reason: String
        switch state {
        case .commands:
            if let waiting = partialLineFor, waiting > limits.line {
                reason = "command line not finished within \(Int(limits.line)) s"
            } else if partialLineFor == nil, quietFor > limits.idle {
                reason = "idle for \(Int(limits.idle)) s"
            } else {
                return
            }
        case .body, .digest:
            guard quietFor > limits.stall else { return }
            reason = "upload stalled: no bytes for \(Int(limits.stall)) s; resume it later"
        case .discarding:
            guard quietFor > limits.stall else { return }
            reason = "the body of a refused upload stopped for \(Int(limits.stall)) s"
        case .opening, .finishing, .storing, .querying, .watching, .closed:
            return
        }
        state = .closed
        pending.append(.reply(Reply(.unavailable, "closing: \(reason)")))
        pending.append(.close)
    }

    /// Whether an unfinished command line is waiting (for the slowloris limit).
    public var hasPartialLine: Bool { state == .commands && framer.bufferedBytes > 0 && !framer.hasLine }

    /// A question was answered (or a watch ended): send `replies`, then read commands again.
    public mutating func answered(_ replies: [Reply]) {
        guard state == .querying || state == .watching else { return }
        pending.append(contentsOf: replies.map { .reply($0) })
        state = .commands
        if isDraining { closeIfIdle() }
    }

    /// The upload reached its final state; `reply` says which.
    public mutating func uploadFinished(_ reply: Reply) {
        guard state == .finishing else { return }
        pending.append(.reply(reply))
        returnToCommands()
    }
}
