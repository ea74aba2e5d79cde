import Crypto
import Logging
import NIOCore
import NIOHTTP1
import NIOPosix
import SpoolProtocol
import SpoolStore
import SpoolSystem

#if canImport(Glibc)
import Glibc
#endif

/// HTTP/1.1 on the same upload pipeline as the line protocol (docs/HTTP.md):
/// `PUT /files/<name>` drives an `IncomingUpload` and maps how it ended to a status;
/// `GET|HEAD /uploads/<id>[/content]` reads the record or streams the object.
/// Requests on one connection are served one after another (keep-alive;
/// NIOHTTP1's pipeline handler holds pipelined ones until a response has ended).
final class HTTPHandler: ChannelInboundHandler, DrainableConnection {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    enum State {
        case idle
        /// Waiting for the token check or the upload's opening; body parts that came meanwhile wait here.
        case opening(parts: [ByteBuffer], ended: Bool)
        case receiving(IncomingUpload, declared: String?)
        /// Refused before its body: the body, if it comes, is dropped, and the connection closes after the response.
        case discarding
        /// A tus PATCH's (or POST's) body going to its upload.
        case tusReceiving(IncomingUpload, TusBody)
        /// A small body (`wholeBodyLimit`) being collected, to be stored in a batch.
        case collecting(UploadRequest, IncomingUpload.Sender, parts: [ByteBuffer])
        /// A response for a request whose body (if any) is in is being produced.
        case responding
        /// A refusal has been sent and the sending side shut: what the client still
        /// sends is read and dropped for a moment, so that closing does not reset
        /// the connection before the client has read the refusal.
        case lingering
    }

    /// How long a refused connection drains before it closes: the client has the
    /// refusal by then, or is not reading at all.
    static let lingerSeconds: Int64 = 2

    /// Bodies of a known length up to this are collected in memory and stored in a
    /// batch with the others arriving meanwhile (`WholeUploads`, as the line
    /// protocol's `--at-once` bodies): one sync and one commit for many files.
    static let wholeBodyLimit: Int64 = 64 << 10

    let services: WorkerServices
    let registry: ConnectionRegistry
    var state = State.idle
    /// The current request's `Origin`, for the CORS headers of its answer.
    var requestOrigin: String?
    var context: ChannelHandlerContext?
    var clientIP = "unknown"
    var clientPort = 0
    var keepAlive = true
    var draining = false
    var isActive = false
    /// Reading paused for the pool, or for a hash that is behind.
    var pausedForWork = false
    var pausedForDigest = false
    var readGate = ReadGate()
    /// When the last byte came, seen below the HTTP decoder (so a request head sent
    /// slowly counts as activity), and when the connection last became idle.
    let activity: ByteActivity
    var idleSince = UTCTime.monotonic()
    var limitTimer: RepeatedTask?
    /// Counted against its address's cap; over the cap, its first request gets `503`.
    var counted = false
    /// The request is a tus one: every answer but OPTIONS's carries `Tus-Resumable`.
    var tusResponse = false

    /// Whether downloads may go out with sendfile (not through TLS, which must see the bytes).
    let sendfile: Bool
    /// The metrics listener (`--metrics`): /metrics, /healthz and /readyz, without a
    /// token (it listens on loopback only); anything else is 404.
    let operationsOnly: Bool

    init(services: WorkerServices, registry: ConnectionRegistry, activity: ByteActivity, sendfile: Bool = true, operationsOnly: Bool = false) {
        self.services = services
        self.registry = registry
        self.activity = activity
        self.sendfile = sendfile
        self.operationsOnly = operationsOnly
    }

    func handlerAdded(context: ChannelHandlerContext) { self.context = context }
    func handlerRemoved(context: ChannelHandlerContext) { self.context = nil }

    func channelActive(context: ChannelHandlerContext) {
        isActive = true
        clientIP = context.channel.remoteAddress?.ipAddress ?? "unknown"
        clientPort = context.channel.remoteAddress?.port ?? 0
        if services.scoreboard.connections(from: clientIP) < services.limits.maxConnectionsPerClient {
            services.board.clientConnected(from: clientIP)
            counted = true
        } else {
            services.logRefusal(clientIP)
        }
        registry.add(self)
        let handler = NIOLoopBound(self, eventLoop: context.eventLoop)
        limitTimer = context.eventLoop.scheduleRepeatedTask(initialDelay: .seconds(1), delay: .seconds(1)) { _ in
            handler.value.checkTimeouts()
        }
        context.fireChannelActive()
    }

    /// The line protocol's limits, applied to HTTP: an idle kept-alive connection is
    /// closed after `idle`; a request head still unfinished after `line` gets `408`;
    /// a body that stops moving for `stall` closes the connection (the upload is
    /// left `interrupted`).
    func checkTimeouts() {
        guard let context, isActive else { return }
        let limits = services.limits.timeouts
        let now = UTCTime.monotonic()
        switch state {
        case .idle:
            if draining, activity.lastByte <= idleSince {
                closeIfQuietWhileDraining()
            } else if activity.lastByte > idleSince, now - idleSince > limits.line {
                keepAlive = false
                state = .discarding
                // No request head came, so NIO's pipeline handler has no request to pair a
                // response with (it traps on one): the 408 goes straight to the socket.
                let message = "request head not finished within \(Int(limits.line)) s\n"
                let response = "HTTP/1.1 408 Request Timeout\r\nContent-Type: text/plain; charset=utf-8\r\n"
                    + "Content-Length: \(message.utf8.count)\r\nConnection: close\r\n\r\n" + message
                activity.writeRaw(response, on: context.eventLoop).assumeIsolated().whenComplete { _ in self.linger(context) }
            } else if now - idleSince > limits.idle {
                context.close(promise: nil)
            }
        case .opening, .collecting, .receiving, .tusReceiving, .discarding:
            if now - activity.lastByte > limits.stall { context.close(promise: nil) }
        case .responding, .lingering:
            break
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        isActive = false
        registry.remove(self)
        limitTimer?.cancel()
        services.board.connectionEnded()
        if counted { services.board.clientDisconnected(from: clientIP) }
        cut()
        state = .idle
        context.fireChannelInactive()
    }

    /// The body being received stops here (the client left, or sent garbage): keep
    /// what came, for a resume. A tus body keeps its hash state too, unless it
    /// carried a checksum of its own, which can no longer be checked: then it is dropped.
    func cut() {
        switch state {
        case .receiving(let upload, _):
            upload.interrupt(reason: "client disconnected")
        case .tusReceiving(let upload, let body):
            _ = upload.pause(discarding: body.expected != nil)
        default:
            break
        }
    }

    /// The worker is stopping: a busy connection closes after its response, an idle
    /// one once the client has been quiet for `ConnectionHandler.drainQuietTime`. Not
    /// at once: a request may be on its way (a new connection's first one, just
    /// accepted), and closing on it would reset the connection under the client.
    func drain() {
        draining = true
        closeIfQuietWhileDraining()
    }

    /// Draining and idle, with no byte of a request since the last response (or
    /// since the connection opened) for the quiet time: closes.
    func closeIfQuietWhileDraining() {
        guard draining, case .idle = state, let context, activity.lastByte <= idleSince else { return }
        if UTCTime.monotonic() - idleSince >= ConnectionHandler.drainQuietTime { context.close(promise: nil) }
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let head):
            if case .lingering = state { return }
            begin(head, context)
        case .body(let bytes):
            switch state {
            case .opening(var parts, let ended):
                parts.append(bytes)
                state = .opening(parts: parts, ended: ended)
            case .collecting(let request, let sender, var parts):
                parts.append(bytes)
                state = .collecting(request, sender, parts: parts)
            case .receiving(let upload, _):
                append(bytes, to: upload, context)
            case .tusReceiving(let upload, var body):
                tusAppend(bytes, to: upload, &body, context)
            case .idle, .discarding, .responding, .lingering:
                break
            }
        case .end:
            switch state {
            case .opening(let parts, _):
                state = .opening(parts: parts, ended: true)
            case .collecting(let request, let sender, let parts):
                storeWhole(request, from: sender, parts: parts, context)
            case .receiving(let upload, let declared):
                finish(upload, declared: declared, context)
            case .tusReceiving(let upload, let body):
                tusEnd(upload, body, context)
            case .discarding, .idle:
                state = .responding  // a refusal already on its way closes the connection once written
            case .responding, .lingering:
                break
            }
        }
    }

    /// A request the decoder cannot read: `431` for a head over 80 KiB (NIOHTTP1's
    /// cap on header fields and on their total), `400` for anything else, then close.
    /// Where a response is already being produced, only the close.
    func errorCaught(context: ChannelHandlerContext, error: Error) {
        keepAlive = false
        // A body cut short (the client left mid-upload) ends up here too: keep what came, for a resume.
        cut()
        guard let parserError = error as? HTTPParserError, isActive else { return context.close(promise: nil) }
        switch state {
        case .lingering:
            break  // what follows a bad request is not parsed, only dropped until the close
        case .responding:
            context.close(promise: nil)
        case .idle, .opening, .collecting, .receiving, .tusReceiving, .discarding:
            state = .discarding
            let tooLarge = parserError == .headerOverflow
            respond(tooLarge ? .requestHeaderFieldsTooLarge : .badRequest,
                    message: tooLarge ? "the request head is over 80 KiB" : "malformed request: \(parserError)", context)
        }
    }

    // MARK: - Requests

    func begin(_ head: HTTPRequestHead, _ context: ChannelHandlerContext) {
        keepAlive = head.isKeepAlive && !draining
        state = .responding
        guard counted else {
            keepAlive = false
            return respond(.serviceUnavailable, ["Retry-After": "5"], message: "too many connections from \(clientIP); try again later", context)
        }
        requestOrigin = head.headers["Origin"].first
        var method = head.method.rawValue
        if method == "POST", let override = head.headers["X-HTTP-Method-Override"].first {
            method = override.uppercased()  // tus: for clients that can send only GET and POST
        }
        tusResponse = false
        let route = HTTPRoute.parse(method: method, target: head.uri)
        if operationsOnly {
            switch route {
            case .health(let ready, let headOnly): return health(ready: ready, headOnly: headOnly, context)
            case .metrics(let headOnly): return metrics(token: nil, headOnly: headOnly, context)
            default: return respond(.notFound, message: "this listener serves /metrics, /healthz and /readyz only", context)
            }
        }
        switch route {
        case .tusCreate:
            tusCreate(head, context)
        case .tus(let id, let tusMethod):
            tus(id: id, tusMethod, head, context)
        case .tusOptions(let allow):
            tusOptions(allow: allow, head, context)
        case .upload(let name):
            beginUpload(name: name, head, context)
        case .download(let id, let headOnly):
            authorized(head, context) { token in self.download(id: id, headOnly: headOnly, token: token, head, context) }
        case .record(let id, let headOnly):
            authorized(head, context) { token in self.record(id: id, headOnly: headOnly, token: token, context) }
        case .downloadByName(let name, let headOnly):
            authorized(head, context) { token in self.download(name: name, headOnly: headOnly, token: token, head, context) }
        case .list(let query):
            authorized(head, context) { token in self.list(query, token: token, context) }
        case .health(let ready, let headOnly):
            health(ready: ready, headOnly: headOnly, context)
        case .page(let path, let headOnly):
            page(path, headOnly: headOnly, head, context)
        case .metrics(let headOnly):
            authorized(head, context) { token in self.metrics(token: token, headOnly: headOnly, context) }
        case .options(let allow):
            options(["Allow": allow], head, context)
        case .targetTooLong:
            refuseBody(.uriTooLong, message: "the request target is over \(HTTPRoute.maxTargetBytes) bytes", context)
        case .methodNotAllowed(let allow):
            respond(.methodNotAllowed, ["Allow": allow], message: "use \(allow) here", context)
        case .badTarget(let reason):
            respond(.badRequest, message: reason, context)
        case .notFound:
            respond(.notFound, message: "no such resource; see docs/HTTP.md", context)
        }
    }

    /// Resolves the request's bearer token (if any) on the pool, then calls `next` with it,
    /// or answers `401` when it is wrong, or missing where one is needed.
    func authorized(_ head: HTTPRequestHead, _ context: ChannelHandlerContext, _ next: @escaping (TokenRecord?) -> Void) {
        let header = head.headers["Authorization"].first ?? ""
        let parts = header.split(separator: " ", maxSplits: 1)
        guard parts.count == 2, parts[0].lowercased() == "bearer" else {
            if services.policy.anonymousAllowed { return next(nil) }
            return respond(.unauthorized, ["WWW-Authenticate": "Bearer"], message: "authenticate first: Authorization: Bearer <token>", context)
        }
        let (store, secret) = (services.store, String(parts[1]))
        pause(context)
        services.pool.runIfActive(eventLoop: context.eventLoop) { try store.authenticate(secret: secret) }
            .assumeIsolated().whenComplete { result in
                self.unpause(context)
                if case .success(let record?) = result { return next(record) }
                self.services.logger.warning("authentication failed", metadata: ["client": "\(self.clientIP):\(self.clientPort)"])
                self.respond(.unauthorized, ["WWW-Authenticate": "Bearer error=\"invalid_token\""], message: "authentication failed", context)
            }
    }

    // MARK: - Uploads

    func beginUpload(name: String, _ head: HTTPRequestHead, _ context: ChannelHandlerContext) {
        let size: Int64?
        switch BodyFraming.parse(contentLength: head.headers["Content-Length"], transferEncoding: head.headers["Transfer-Encoding"]) {
        case .length(let length): size = length
        case .chunked: size = nil
        case .none: return refuseBody(.lengthRequired, message: "send Content-Length, or the body chunked", context)
        case .unsupported(let coding):
            return refuseBody(.notImplemented, message: "Transfer-Encoding \(coding) is not supported; send the body chunked or with Content-Length", context)
        case .ambiguous(let reason):
            // Read two ways, a request could hide another (request smuggling): never guess.
            return refuseBody(.badRequest, message: reason, context)
        }
        let declared: String?
        switch DigestHeader.parse(head.headers["Repr-Digest"] + head.headers["Content-Digest"]) {
        case .absent: declared = nil
        case .sha256(let hex): declared = hex
        case .malformed: return refuseBody(.badRequest, message: "Repr-Digest: sha-256 must be 32 bytes of base64, as :…:", context)
        }
        let expectsContinue = head.headers["Expect"].contains { $0.lowercased() == "100-continue" }
        state = .opening(parts: [], ended: false)
        if let size, size <= Self.wholeBodyLimit {
            // Its admission (quota, free space) is decided in its batch, after the body:
            // at most 64 KiB is sent for nothing.
            return authorized(head, context) { token in
                guard case .opening(let parts, let ended) = self.state else { return }
                let sender = IncomingUpload.Sender(ip: self.clientIP, port: self.clientPort, token: token, door: .http)
                let request = UploadRequest(name: name, size: size, sha256: declared)
                if ended { return self.storeWhole(request, from: sender, parts: parts, context) }
                self.state = .collecting(request, sender, parts: parts)
                if expectsContinue {
                    self.sendContinue(context)
                }
            }
        }
        authorized(head, context) { token in
            let sender = IncomingUpload.Sender(ip: self.clientIP, port: self.clientPort, token: token, door: .http)
            let request = UploadRequest(name: name, size: size ?? 0, sha256: declared)
            self.pause(context)
            IncomingUpload.begin(request, lengthDeferred: size == nil, from: sender, services: self.services, on: context.eventLoop)
                .assumeIsolated()
                .whenSuccess { opening in
                    self.unpause(context)
                    self.opened(opening, declared: declared, expectsContinue: expectsContinue, context)
                }
        }
    }

    func opened(_ opening: IncomingUpload.Opening, declared: String?, expectsContinue: Bool, _ context: ChannelHandlerContext) {
        guard case .opening(let parts, let ended) = state else {
            if case .opened(let upload) = opening { upload.interrupt(reason: "client disconnected") }
            return
        }
        let upload: IncomingUpload
        switch opening {
        case .opened(let opened):
            upload = opened
        case .refused(let refusal):
            return refuseBody(Self.status(for: refusal), message: refusal.description, context)
        case .cannotOpen(let error):
            return refuseBody(.serviceUnavailable, message: "cannot accept uploads right now: \(error)", context)
        case .alreadyComplete, .busy, .notResumable:
            return refuseBody(.internalServerError, message: "unexpected opening", context)
        }
        guard isActive else { return upload.interrupt(reason: "client disconnected") }
        state = .receiving(upload, declared: declared)
        if expectsContinue && parts.isEmpty && !ended {
            sendContinue(context)
        }
        for part in parts { append(part, to: upload, context) }
        if ended, case .receiving = state { finish(upload, declared: declared, context) }
    }

    func append(_ bytes: ByteBuffer, to upload: IncomingUpload, _ context: ChannelHandlerContext) {
        do {
            if try upload.append(bytes), !pausedForDigest {
                pausedForDigest = true
                updateReading(context)
                upload.whenCaughtUp { [self] in
                    pausedForDigest = false
                    guard let context = self.context else { return }
                    if let refusal = upload.refusal, receiving === upload {
                        // A body of unknown length outgrew a limit: the rest of it is not read.
                        return refuseBody(Self.status(for: refusal),
                                          message: "id=\(upload.id) \(refusal); nothing stored", context)
                    }
                    updateReading(context)
                }
            }
        } catch {
            state = .discarding
            keepAlive = false
            respond(.serviceUnavailable, message: "id=\(upload.id) could not store the upload: \(error)", context)
        }
    }

    /// A small body that is all in: stored in a batch (`WholeUploads`) with the same
    /// steps, checks and order as any upload, then answered as `finish` answers.
    func storeWhole(_ request: UploadRequest, from sender: IncomingUpload.Sender, parts: [ByteBuffer], _ context: ChannelHandlerContext) {
        state = .responding
        pause(context)
        var body = context.channel.allocator.buffer(capacity: Int(request.size))
        for var part in parts { body.writeBuffer(&part) }
        // Hashed here (64 KiB at most): without a digest header, the server's own is the one recorded.
        var hasher = SHA256()
        body.withUnsafeReadableBytes { hasher.update(bufferPointer: $0) }
        let sha256 = Checksum.hex(hasher.finalize())
        var request = request
        let declared = request.sha256
        request.sha256 = declared ?? sha256
        let (new, id) = IncomingUpload.newUpload(request, from: sender, services: services)
        let whole = WholeUpload(new: new, id: id, limits: services.limits.admission, quota: sender.token?.quota) {
            [body] staging throws(SystemError) in
            try body.withUnsafeReadableBytes { raw throws(SystemError) in try staging.write(raw) }
            return sha256
        }
        let (size, logger) = (request.size, services.logger)
        services.wholeUploads.store(whole, door: .http, on: context.eventLoop).assumeIsolated().whenComplete { result in
            self.unpause(context)
            switch result {
            case .success(.stored):
                logger.info("upload stored", metadata: ["id": "\(id)", "size": "\(size)"])
                self.created(id: id, size: size, sha256: sha256, context)
            case .success(.checksumMismatch(let actual)):
                self.respond(.badRequest, message: "id=\(id) checksum mismatch: declared \(declared ?? ""), received \(actual); nothing stored", context)
            case .success(.refused(let refusal)):
                self.respond(Self.status(for: refusal), message: "\(refusal); nothing stored", context)
            case .success(.cannotOpen(let error)), .success(.failed(let error)):
                logger.error("cannot store upload", metadata: ["id": "\(id)", "error": "\(error)"])
                self.respond(.serviceUnavailable, message: "could not store the upload: \(error)", context)
            case .failure(let error):
                self.respond(.serviceUnavailable, message: "could not store the upload: \(error)", context)
            }
        }
    }

    /// An admission refusal's status: `507` for a lack of space (try later), `413`
    /// for a limit or a quota, `403` when the pre-create hook refused it.
    static func status(for refusal: Refusal) -> HTTPResponseStatus {
        if case .byPolicy = refusal { return .forbidden }
        return refusal.isTransient ? .insufficientStorage : .payloadTooLarge
    }

    /// `100 Continue`: NIOHTTP1 does not send it; curl waits a second for it before sending a body.
    func sendContinue(_ context: ChannelHandlerContext) {
        context.writeAndFlush(wrapOutboundOut(.head(HTTPResponseHead(version: .http1_1, status: .continue))), promise: nil)
    }

    /// `201` for a stored upload: where it is, what was stored, and the same as JSON.
    func created(id: String, size: Int64, sha256: String, _ context: ChannelHandlerContext) {
        let json = #"{"id":"\#(id)","size":\#(size),"sha256":"\#(sha256)"}"# + "\n"
        respond(.created, [
            "Location": "/uploads/\(id)", "Repr-Digest": DigestHeader.header(sha256: sha256), "Content-Type": "application/json",
        ], body: json, context)
    }

    func finish(_ upload: IncomingUpload, declared: String?, _ context: ChannelHandlerContext) {
        state = .responding
        pause(context)
        let (id, size) = (upload.id, upload.received)
        upload.finish(declared: declared, unchecked: declared == nil).assumeIsolated().whenSuccess { outcome in
            self.unpause(context)
            switch outcome {
            case .stored(let sha256):
                self.created(id: id, size: size, sha256: sha256, context)
            case .checksumMismatch(let declared, let actual):
                self.respond(.badRequest, message: "id=\(id) checksum mismatch: declared \(declared), received \(actual); nothing stored", context)
            case .refused(let refusal):
                self.respond(Self.status(for: refusal), message: "id=\(id) \(refusal); nothing stored", context)
            case .failed(let error):
                self.respond(.serviceUnavailable, message: "id=\(id) could not store the upload: \(error)", context)
            }
        }
    }

    /// A refusal before the body: the client may be sending it (no Expect), so the
    /// connection closes after the response instead of reading a body nobody wants.
    func refuseBody(_ status: HTTPResponseStatus, _ headers: [String: String] = [:], message: String, _ context: ChannelHandlerContext) {
        state = .discarding
        keepAlive = false
        respond(status, headers, message: message, context)
    }

    /// `OPTIONS`: `204` with what the path allows (`headers`), and, from a browser on
    /// another origin, the answer to its CORS preflight.
    func options(_ headers: [String: String], _ head: HTTPRequestHead, _ context: ChannelHandlerContext) {
        switch services.limits.cors.preflight(origin: requestOrigin, requestMethod: head.headers["Access-Control-Request-Method"].first) {
        case .notPreflight: respond(.noContent, headers, body: nil, context)
        case .allowed(let cors): respond(.noContent, cors.merging(headers) { $1 }, body: nil, context)
        case .refused(let reason): respond(.forbidden, message: reason, context)
        }
    }

    /// The upload whose body this connection is receiving, whichever protocol sends it.
    var receiving: IncomingUpload? {
        switch state {
        case .receiving(let upload, _), .tusReceiving(let upload, _): upload
        default: nil
        }
    }

    // MARK: - Reading records and files

    /// The upload, if this token may see it: its own, or any for an admin or when there are no tokens.
    func lookUp(_ id: String, token: TokenRecord?, _ context: ChannelHandlerContext, _ next: @escaping (UploadRecord) -> Void) {
        let store = services.store
        pause(context)
        services.pool.runIfActive(eventLoop: context.eventLoop) { try store.upload(id: id) }.assumeIsolated().whenComplete { result in
            self.unpause(context)
            switch result {
            case .success(let row?) where token == nil || token?.admin == true || row.token == token?.name:
                next(row)
            case .success:
                self.respond(.notFound, message: "no upload \(id)", context)
            case .failure(let error):
                self.respond(.serviceUnavailable, message: "cannot read uploads right now: \(error)", context)
            }
        }
    }

    func record(id: String, headOnly: Bool, token: TokenRecord?, _ context: ChannelHandlerContext) {
        lookUp(id, token: token, context) { row in
            self.respond(.ok, ["Content-Type": "application/json"], body: ChatReplies.jsonLine(row) + "\n", headOnly: headOnly, context)
        }
    }

    func download(id: String, headOnly: Bool, token: TokenRecord?, _ head: HTTPRequestHead, _ context: ChannelHandlerContext) {
        lookUp(id, token: token, context) { row in self.serve(row, headOnly: headOnly, head, context) }
    }

    /// The newest complete upload with exactly this name that the token may see.
    func download(name: String, headOnly: Bool, token: TokenRecord?, _ head: HTTPRequestHead, _ context: ChannelHandlerContext) {
        var filter = UploadFilter()
        filter.states = [.complete]
        filter.nameGlob = Self.globLiteral(name)
        filter.token = token?.admin == true ? nil : token?.name
        filter.limit = 1
        let store = services.store
        pause(context)
        services.pool.runIfActive(eventLoop: context.eventLoop) { [filter] in try store.uploads(matching: filter) }.assumeIsolated().whenComplete { result in
            self.unpause(context)
            switch result {
            case .success(let rows):
                guard let row = rows.first else { return self.respond(.notFound, message: "no complete upload named \(name)", context) }
                self.serve(row, headOnly: headOnly, head, context)
            case .failure(let error):
                self.respond(.serviceUnavailable, message: "cannot read uploads right now: \(error)", context)
            }
        }
    }

    /// A GLOB pattern that matches `name` and nothing else.
    static func globLiteral(_ name: String) -> String {
        var out = ""
        for character in name {
            switch character {
            case "*", "?", "[": out += "[\(character)]"
            default: out.append(character)
            }
        }
        return out
    }

    /// `GET /uploads`: newest first, `limit` (1 to 1,000, default 100) at a time; `state`
    /// (comma-separated), `name` (a GLOB pattern) and `since`/`until` (ISO times of
    /// creation) as in `spoold admin list`. A full page links to the next with `until`.
    func list(_ query: [String: String], token: TokenRecord?, _ context: ChannelHandlerContext) {
        var filter = UploadFilter()
        filter.limit = 100
        if let text = query["limit"] {
            guard let limit = Int(text), (1...1000).contains(limit) else {
                return respond(.badRequest, message: "limit must be from 1 to 1000", context)
            }
            filter.limit = limit
        }
        if let text = query["state"] {
            let states = text.split(separator: ",").map { UploadState(rawValue: String($0)) }
            guard !states.contains(where: { $0 == nil }) else {
                return respond(.badRequest, message: "state must be among \(UploadState.allCases.map(\.rawValue).joined(separator: ","))", context)
            }
            filter.states = states.compactMap { $0 }
        }
        filter.nameGlob = query["name"]
        filter.since = query["since"]
        filter.until = query["until"]
        filter.token = token?.admin == true ? nil : token?.name
        let (store, limit, scoreboard) = (services.store, filter.limit ?? 100, services.scoreboard)
        pause(context)
        services.pool.runIfActive(eventLoop: context.eventLoop) { [filter] in
            // An upload being received: its bytes so far from the scoreboard, live, whichever worker has it.
            try store.uploads(matching: filter).map { row in
                guard row.state == .receiving, let live = scoreboard.progress(of: row.id) else { return row }
                var row = row
                row.received = live.received
                return row
            }
        }.assumeIsolated().whenComplete { result in
            self.unpause(context)
            switch result {
            case .success(let rows):
                var headers = ["Content-Type": "application/json"]
                if rows.count == limit, let last = rows.last {
                    var next = query
                    next["until"] = last.createdAt
                    let text = next.sorted { $0.key < $1.key }.map { "\(PercentCoding.encodeStrict($0.key))=\(PercentCoding.encodeStrict($0.value))" }
                    headers["Link"] = "</uploads?\(text.joined(separator: "&"))>; rel=\"next\""
                }
                let body = "[" + rows.map { "\n" + ChatReplies.jsonLine($0) }.joined(separator: ",") + "\n]\n"
                self.respond(.ok, headers, body: body, context)
            case .failure(let error):
                self.respond(.serviceUnavailable, message: "cannot read uploads right now: \(error)", context)
            }
        }
    }

    func serve(_ row: UploadRecord, headOnly: Bool, _ head: HTTPRequestHead, _ context: ChannelHandlerContext) {
        let id = row.id
        guard row.state == .complete else {
            return self.respond(.conflict, message: "upload \(id) is \(row.state.rawValue); only complete uploads can be downloaded", context)
        }
        var headers: [String: String] = [
            "ETag": "\"\(row.sha256)\"", "Repr-Digest": DigestHeader.header(sha256: row.sha256),
            "Content-Disposition": ContentDisposition.attachment(name: row.name),
            "Content-Type": "application/octet-stream", "Accept-Ranges": "bytes",
        ]
        if head.headers["If-None-Match"].contains(where: { $0.contains("\"\(row.sha256)\"") || $0 == "*" }) {
            return self.respond(.notModified, headers, body: nil, context)
        }
        var range = 0..<Int(row.size)
        var status = HTTPResponseStatus.ok
        if let header = head.headers["Range"].first {
            switch ByteRange.parse(header, size: row.size) {
            case .whole: break
            case .part(let part):
                range = Int(part.lowerBound)..<Int(part.upperBound)
                status = .partialContent
                headers["Content-Range"] = "bytes \(part.lowerBound)-\(part.upperBound - 1)/\(row.size)"
            case .unsatisfiable:
                headers["Content-Range"] = "bytes */\(row.size)"
                return self.respond(.rangeNotSatisfiable, headers, message: "range outside 0-\(row.size - 1)", context)
            }
        }
        if headOnly {
            headers["Content-Length"] = "\(range.count)"
            return self.respond(status, headers, body: nil, headOnly: true, context)
        }
        self.stream(row, range: range, status: status, headers, context)
    }

    /// Streams part of an object: from a local file with sendfile (a `FileRegion`),
    /// from a remote store a piece at a time; memory does not grow with the file.
    /// An object of another size than its record (damage `admin audit` reports) gets
    /// `500` before the head: a `FileRegion` past the end of a file would wait forever.
    func stream(
        _ row: UploadRecord, range: Range<Int>, status: HTTPResponseStatus, _ headers: [String: String],
        _ context: ChannelHandlerContext
    ) {
        pause(context)
        let store = services.store
        services.pool.runIfActive(eventLoop: context.eventLoop) { () throws(SystemError) -> ObjectBytes in
            try store.openObject(of: row, range: Int64(range.lowerBound)..<Int64(range.upperBound))
        }
            .assumeIsolated().whenComplete { result in
                self.unpause(context)
                guard case .success(let bytes) = result else {
                    if case .failure(let error) = result {
                        self.services.logger.error("download: \(error); spoold admin audit reports it")
                    }
                    return self.respond(.internalServerError, message: "the upload's object cannot be read", context)
                }
                var head = HTTPResponseHead(version: .http1_1, status: status)
                for (name, value) in headers { head.headers.add(name: name, value: value) }
                head.headers.replaceOrAdd(name: "Content-Length", value: "\(range.count)")
                self.finishHeaders(&head)
                context.write(self.wrapOutboundOut(.head(head)), promise: nil)
                switch bytes {
                case .file(let fd):
                    let file = NIOFileHandle(_deprecatedTakingOwnershipOfDescriptor: fd)
                    guard !self.sendfile else {
                        let region = FileRegion(fileHandle: file, readerIndex: range.lowerBound, endIndex: range.upperBound)
                        context.write(self.wrapOutboundOut(.body(.fileRegion(region))), promise: nil)
                        return self.end(context) { try? file.close() }
                    }
                    self.streamInPieces(file, range: range, context)
                case .stream(let source):
                    self.streamInPieces(source, left: range.count, context)
                }
            }
    }

    /// A download from a remote store: a piece read on the pool, written and
    /// flushed, then the next, so memory stays one piece per download and the store
    /// waits while the client is slow. No pool thread is held between pieces.
    func streamInPieces(_ source: any ObjectStream, left: Int, _ context: ChannelHandlerContext) {
        let bound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
        let allocator = context.channel.allocator
        guard left > 0 else { return end(context) { source.close() } }
        services.pool.runIfActive(eventLoop: context.eventLoop) { () throws(SystemError) -> ByteBuffer in
            var piece = allocator.buffer(capacity: min(left, Self.downloadPiece))
            while piece.readableBytes < min(left, Self.downloadPiece) {
                let want = min(left, Self.downloadPiece) - piece.readableBytes
                guard try source.read(max: want, into: { piece.writeBytes($0) }) > 0 else {
                    throw SystemError("read object", "it ended \(left - piece.readableBytes) bytes early", errno: EIO)
                }
            }
            return piece
        }.flatMap { (piece: ByteBuffer) -> EventLoopFuture<Int> in
            let (handler, context) = bound.value
            guard handler.isActive else { return context.eventLoop.makeFailedFuture(ChannelError.ioOnClosedChannel) }
            let sent = piece.readableBytes
            return context.writeAndFlush(handler.wrapOutboundOut(.body(.byteBuffer(piece)))).map { sent }
        }.assumeIsolated().whenComplete { result in
            let (handler, context) = bound.value
            switch result {
            case .success(let sent):
                handler.streamInPieces(source, left: left - sent, context)
            case .failure(let error):
                if handler.isActive { handler.services.logger.error("download cut: \(error)") }
                source.close()
                context.close(promise: nil)
            }
        }
    }

    /// A download through TLS: read on the pool a piece at a time, each written
    /// (encrypted) before the next is read, so memory stays one piece per download.
    func streamInPieces(_ file: NIOFileHandle, range: Range<Int>, _ context: ChannelHandlerContext) {
        let bound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
        NonBlockingFileIO(threadPool: services.pool).readChunked(
            fileHandle: file, fromOffset: Int64(range.lowerBound), byteCount: range.count, chunkSize: Self.downloadPiece,
            allocator: context.channel.allocator, eventLoop: context.eventLoop
        ) { piece in
            let (handler, context) = bound.value
            guard handler.isActive else { return context.eventLoop.makeFailedFuture(ChannelError.ioOnClosedChannel) as EventLoopFuture<Void> }
            return context.writeAndFlush(handler.wrapOutboundOut(.body(.byteBuffer(piece))))
        }.assumeIsolated().whenComplete { result in
            let (handler, context) = bound.value
            switch result {
            case .success:
                handler.end(context) { try? file.close() }
            case .failure(let error):
                // The head is out: the only way left to say "incomplete" is to close.
                if handler.isActive { handler.services.logger.error("download cut: \(error)") }
                try? file.close()
                context.close(promise: nil)
            }
        }
    }

    static let downloadPiece = 256 << 10

    // MARK: - Responses

    func respond(
        _ status: HTTPResponseStatus, _ headers: [String: String] = [:], message: String, _ context: ChannelHandlerContext
    ) {
        var headers = headers
        headers["Content-Type"] = "text/plain; charset=utf-8"
        respond(status, headers, body: message + "\n", context)
    }

    func respond(
        _ status: HTTPResponseStatus, _ headers: [String: String], body: String?, headOnly: Bool = false,
        _ context: ChannelHandlerContext
    ) {
        respond(status, headers, buffer: body.map { context.channel.allocator.buffer(string: $0) }, headOnly: headOnly, context)
    }

    func respond(
        _ status: HTTPResponseStatus, _ headers: [String: String], buffer: ByteBuffer?, headOnly: Bool = false,
        _ context: ChannelHandlerContext
    ) {
        guard isActive else { return }
        var head = HTTPResponseHead(version: .http1_1, status: status)
        for (name, value) in headers { head.headers.add(name: name, value: value) }
        if !head.headers.contains(name: "Content-Length"), status != .noContent { head.headers.add(name: "Content-Length", value: "\(buffer?.readableBytes ?? 0)") }
        finishHeaders(&head)
        context.write(wrapOutboundOut(.head(head)), promise: nil)
        if let buffer, !headOnly, status != .notModified { context.write(wrapOutboundOut(.body(.byteBuffer(buffer))), promise: nil) }
        end(context) {}
    }

    func finishHeaders(_ head: inout HTTPResponseHead) {
        if !keepAlive { head.headers.replaceOrAdd(name: "Connection", value: "close") }
        if tusResponse { head.headers.replaceOrAdd(name: "Tus-Resumable", value: Tus.version) }
        for (name, value) in services.limits.cors.responseHeaders(origin: requestOrigin) { head.headers.replaceOrAdd(name: name, value: value) }
    }

    /// Ends the response; once it is written, the next request is read, or the connection closes.
    func end(_ context: ChannelHandlerContext, then cleanup: @escaping () -> Void) {
        let close = !keepAlive || draining
        let discarding: Bool
        if case .discarding = state { discarding = true } else { discarding = false }
        requestOrigin = nil
        if !discarding {
            state = .idle
            idleSince = UTCTime.monotonic()
        }
        context.writeAndFlush(wrapOutboundOut(.end(nil))).assumeIsolated().whenComplete { _ in
            cleanup()
            if close && discarding { return self.linger(context) }
            if close { context.close(promise: nil) }
        }
    }

    /// After a refusal while the client may still be sending: shut the sending side
    /// (the client reads the response, then end of stream), drop what still comes,
    /// and close when the client does or after `lingerSeconds`, as nginx's
    /// lingering_close does. Closing at once with unread bytes would send a reset,
    /// which can destroy the refusal before the client reads it.
    func linger(_ context: ChannelHandlerContext) {
        guard isActive else { return }
        state = .lingering
        pausedForWork = false
        pausedForDigest = false
        context.close(mode: .output, promise: nil)
        updateReading(context)
        context.eventLoop.assumeIsolated().scheduleTask(in: .seconds(Self.lingerSeconds)) { context.close(promise: nil) }
    }

    func pause(_ context: ChannelHandlerContext) {
        pausedForWork = true
        updateReading(context)
    }

    func unpause(_ context: ChannelHandlerContext) {
        pausedForWork = false
        updateReading(context)
    }

    func updateReading(_ context: ChannelHandlerContext) {
        guard isActive else { return }
        if readGate.set(!pausedForWork && !pausedForDigest, context) { context.read() }
    }
}

/// When a connection's last byte arrived. Sits first in the HTTP pipeline, below
/// the decoder, which says nothing until a request head is whole.
final class ByteActivity: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer

    private(set) var lastByte = 0.0
    private var context: ChannelHandlerContext?

    func handlerAdded(context: ChannelHandlerContext) { self.context = context }
    func handlerRemoved(context: ChannelHandlerContext) { self.context = nil }

    /// Writes bytes to the socket below the HTTP encoder and the pipeline handler.
    func writeRaw(_ text: String, on eventLoop: EventLoop) -> EventLoopFuture<Void> {
        guard let context else { return eventLoop.makeSucceededVoidFuture() }
        return context.writeAndFlush(NIOAny(context.channel.allocator.buffer(string: text)))
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        lastByte = UTCTime.monotonic()
        context.fireChannelRead(data)
    }
}
