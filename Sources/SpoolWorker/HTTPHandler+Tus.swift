import Crypto
import NIOCore
import NIOHTTP1
import SpoolProtocol
import SpoolStore
import SpoolSystem

/// What a tus request's body carries beyond its bytes.
struct TusBody {
    /// A creation with data (`POST`): answered `201` with `Location`, not `204`.
    let created: Bool
    /// `Upload-Checksum` of this body, checked when it ends; nil when not sent.
    let expected: Tus.ChunkChecksum?
    var digest: ChunkDigest?
}

/// A digest of one request's body, in the algorithm its `Upload-Checksum` names.
struct ChunkDigest {
    private enum State {
        case sha1(Insecure.SHA1)
        case sha256(ResumableSHA256)
        case md5(Insecure.MD5)
    }

    private var state: State

    init(_ algorithm: Tus.ChecksumAlgorithm) {
        switch algorithm {
        case .sha1: state = .sha1(Insecure.SHA1())
        case .sha256: state = .sha256(ResumableSHA256())
        case .md5: state = .md5(Insecure.MD5())
        }
    }

    mutating func update(_ bytes: ByteBuffer) {
        bytes.withUnsafeReadableBytes { raw in
            switch state {
            case .sha1(var h): h.update(bufferPointer: raw); state = .sha1(h)
            case .sha256(var h): h.update(bufferPointer: raw); state = .sha256(h)
            case .md5(var h): h.update(bufferPointer: raw); state = .md5(h)
            }
        }
    }

    func finalize() -> [UInt8] {
        switch state {
        case .sha1(let h): Array(h.finalize())
        case .sha256(let h): Array(h.finalize())
        case .md5(let h): Array(h.finalize())
        }
    }
}

/// tus 1.0 at `/files/` (docs/HTTP.md): creation, creation-with-upload,
/// creation-defer-length, expiration, checksum and termination, on the same
/// `IncomingUpload` as every other upload. Each PATCH is a resume: the upload is
/// reopened under its lock, written, and then either finished (verified, durable,
/// recorded) or paused (fsynced, recorded, its hash state kept for the next PATCH).
extension HTTPHandler {
    static let checksumMismatch = HTTPResponseStatus(statusCode: 460, reasonPhrase: "Checksum Mismatch")

    func tusOptions(allow: String, _ head: HTTPRequestHead, _ context: ChannelHandlerContext) {
        options([
            "Allow": allow, "Tus-Version": Tus.version, "Tus-Extension": Tus.extensions,
            "Tus-Max-Size": "\(services.limits.admission.maxFileSize)", "Tus-Checksum-Algorithm": Tus.checksumAlgorithms,
        ], head, context)
    }

    /// Checks what every tus request but OPTIONS must carry; false when it was refused.
    private func tusAccepted(_ head: HTTPRequestHead, _ context: ChannelHandlerContext) -> Bool {
        tusResponse = true
        if let refusal = Tus.checkVersion(head.headers["Tus-Resumable"]) {
            refuseTus(refusal, headers: ["Tus-Version": Tus.version], context)
            return false
        }
        return true
    }

    /// Before or instead of its body (the client may be sending one nobody will read): closes after the answer.
    private func refuseTus(_ refusal: Tus.Refusal, headers: [String: String] = [:], _ context: ChannelHandlerContext) {
        refuseBody(HTTPResponseStatus(statusCode: refusal.status), headers, message: refusal.message, context)
    }

    /// The length of a request's body: 0 when it has none.
    private func tusBodyLength(_ head: HTTPRequestHead, _ context: ChannelHandlerContext) -> Int64?? {
        switch BodyFraming.parse(contentLength: head.headers["Content-Length"], transferEncoding: head.headers["Transfer-Encoding"]) {
        case .length(let length): return .some(length)
        case .chunked: return .some(nil)
        case .none: return .some(0)
        case .unsupported(let coding):
            refuseTus(Tus.Refusal(501, "Transfer-Encoding \(coding) is not supported"), context)
            return nil
        case .ambiguous(let reason):
            refuseTus(Tus.Refusal(400, reason), context)
            return nil
        }
    }

    /// `Upload-Expires` of an unfinished upload last touched at `touched` (epoch seconds; now when nil).
    private func expires(touched: Int64? = nil) -> String {
        Tus.httpDate(epochSeconds: (touched ?? UTCTime.epochMilliseconds() / 1000) + Int64(services.limits.partialTTL))
    }

    // MARK: - Creation

    func tusCreate(_ head: HTTPRequestHead, _ context: ChannelHandlerContext) {
        guard tusAccepted(head, context) else { return }
        let length: Tus.Length
        let metadata: Tus.Metadata
        let sha256: String?
        switch Tus.creationLength(uploadLength: head.headers["Upload-Length"], deferLength: head.headers["Upload-Defer-Length"])
            .flatMap({ length in Tus.metadata(head.headers["Upload-Metadata"]).map { (length, $0) } })
            .flatMap({ pair in Tus.wholeFileSHA256(pair.1).map { (pair.0, pair.1, $0) } })
        {
        case .failure(let refusal): return refuseTus(refusal, context)
        case .success(let parsed): (length, metadata, sha256) = parsed
        }
        let maximum = services.limits.admission.maxFileSize
        if case .known(let size) = length, size > maximum {
            return refuseTus(Tus.Refusal(413, "\(size) bytes is over the limit of \(maximum) per file"), context)
        }
        let name = metadata.name ?? "unnamed"
        do { try UploadName.validate(name, byteCount: name.utf8.count) } catch {
            return refuseTus(Tus.Refusal(400, "Upload-Metadata: filename: \(error.reply.text)"), context)
        }
        guard let bodyLength = tusBodyLength(head, context) else { return }
        if bodyLength != 0, let refusal = Tus.checkContentType(head.headers["Content-Type"]) { return refuseTus(refusal, context) }
        let checksum: Tus.ChunkChecksum?
        switch Tus.chunkChecksum(head.headers["Upload-Checksum"]) {
        case .failure(let refusal): return refuseTus(refusal, context)
        case .success(let parsed): checksum = parsed
        }
        if case .known(let size) = length, let bodyLength, bodyLength > size {
            return refuseTus(Tus.Refusal(413, "the body (\(bodyLength) bytes) is longer than Upload-Length (\(size))"), context)
        }
        let expectsContinue = head.headers["Expect"].contains { $0.lowercased() == "100-continue" }
        state = .opening(parts: [], ended: false)
        authorized(head, context) { token in
            let sender = IncomingUpload.Sender(ip: self.clientIP, port: self.clientPort, token: token, door: .tus)
            var size: Int64 = 0
            if case .known(let known) = length { size = known }
            let request = UploadRequest(name: name, size: size, sha256: sha256)
            self.pause(context)
            IncomingUpload.begin(
                request, lengthDeferred: length == .deferred, tusMetadata: metadata.raw, from: sender, services: self.services,
                on: context.eventLoop
            ).assumeIsolated().whenSuccess { opening in
                self.unpause(context)
                self.tusOpened(opening, body: TusBody(created: true, expected: checksum, digest: checksum.map { ChunkDigest($0.algorithm) }),
                               expectsContinue: expectsContinue, context)
            }
        }
    }

    // MARK: - HEAD, PATCH, DELETE

    func tus(id: String, _ method: TusMethod, _ head: HTTPRequestHead, _ context: ChannelHandlerContext) {
        guard tusAccepted(head, context) else { return }
        switch method {
        case .head: authorized(head, context) { token in self.tusHead(id: id, token: token, context) }
        case .delete: authorized(head, context) { token in self.tusDelete(id: id, token: token, context) }
        case .patch: tusPatch(id: id, head, context)
        }
    }

    /// The upload and its tus fields, if this token may see it; else answers `404`.
    private func tusLookUp(
        _ id: String, token: TokenRecord?, _ context: ChannelHandlerContext, _ next: @escaping (UploadRecord, TusFields) -> Void
    ) {
        let store = services.store
        pause(context)
        services.pool.runIfActive(eventLoop: context.eventLoop) { try store.tusUpload(id: id) }.assumeIsolated().whenComplete { result in
            self.unpause(context)
            switch result {
            case .success(let (row, fields)?) where token == nil || token?.admin == true || row.token == token?.name:
                next(row, fields)
            case .success:
                self.refuseTus(Tus.Refusal(404, "no upload \(id)"), context)
            case .failure(let error):
                self.respond(.serviceUnavailable, message: "cannot read uploads right now: \(error)", context)
            }
        }
    }

    private func tusHead(id: String, token: TokenRecord?, _ context: ChannelHandlerContext) {
        tusLookUp(id, token: token, context) { row, fields in
            var headers = ["Cache-Control": "no-store"]
            if let metadata = fields.metadata, !metadata.isEmpty { headers["Upload-Metadata"] = metadata }
            switch row.state {
            case .complete:
                headers["Upload-Offset"] = "\(row.size)"
                headers["Upload-Length"] = "\(row.size)"
            case .receiving, .interrupted:
                headers["Upload-Offset"] = "\(row.received)"
                if fields.lengthDeferred { headers["Upload-Defer-Length"] = "1" } else { headers["Upload-Length"] = "\(row.size)" }
                if let touched = UTCTime.epochSeconds(row.updatedAt) { headers["Upload-Expires"] = self.expires(touched: touched) }
            case .failed, .expired, .lost:
                return self.respond(.gone, headers, message: "upload \(id) is \(row.state.rawValue)", context)
            }
            self.respond(.ok, headers, body: nil, headOnly: true, context)
        }
    }

    private func tusDelete(id: String, token: TokenRecord?, _ context: ChannelHandlerContext) {
        tusLookUp(id, token: token, context) { _, _ in
            let store = self.services.store
            self.pause(context)
            self.services.pool.runIfActive(eventLoop: context.eventLoop) { try store.delete(id: id) }.assumeIsolated()
                .whenComplete { result in
                    self.unpause(context)
                    switch result {
                    case .success(.deleted(_, let objectError)):
                        self.services.logger.info("upload terminated", metadata: ["id": "\(id)"])
                        if let objectError {
                            self.services.logger.warning("terminated upload's object stays; admin audit --repair removes it", metadata: [
                                "id": "\(id)", "error": "\(objectError)",
                            ])
                        }
                        self.respond(.noContent, [:], body: nil, context)
                    case .success(.notFound): self.respond(.notFound, message: "no upload \(id)", context)
                    case .success(.receiving): self.respond(.locked, message: "upload \(id) is being written; try again", context)
                    case .failure(let error): self.respond(.serviceUnavailable, message: "cannot terminate upload \(id): \(error)", context)
                    }
                }
        }
    }

    private func tusPatch(id: String, _ head: HTTPRequestHead, _ context: ChannelHandlerContext) {
        if let refusal = Tus.checkContentType(head.headers["Content-Type"]) { return refuseTus(refusal, context) }
        let offset: Int64
        switch Tus.number(head.headers["Upload-Offset"], "Upload-Offset") {
        case .failure(let refusal): return refuseTus(refusal, context)
        case .success(let value): offset = value
        }
        var declaredLength: Int64?
        if !head.headers["Upload-Length"].isEmpty {
            switch Tus.number(head.headers["Upload-Length"], "Upload-Length") {
            case .failure(let refusal): return refuseTus(refusal, context)
            case .success(let value): declaredLength = value
            }
        }
        let checksum: Tus.ChunkChecksum?
        switch Tus.chunkChecksum(head.headers["Upload-Checksum"]) {
        case .failure(let refusal): return refuseTus(refusal, context)
        case .success(let parsed): checksum = parsed
        }
        guard let bodyLength = tusBodyLength(head, context) else { return }
        let expectsContinue = head.headers["Expect"].contains { $0.lowercased() == "100-continue" }
        state = .opening(parts: [], ended: false)
        authorized(head, context) { token in
            self.tusLookUp(id, token: token, context) { row, fields in
                // Answers that need no lock, from the row as it stands.
                switch row.state {
                case .complete:
                    guard offset == row.size, bodyLength == 0 else {
                        return self.refuseTus(Tus.Refusal(409, "upload \(id) is complete at \(row.size) bytes"), context)
                    }
                    return self.respond(.noContent, ["Upload-Offset": "\(row.size)"], body: nil, context)
                case .failed, .expired, .lost:
                    return self.refuseTus(Tus.Refusal(410, "upload \(id) is \(row.state.rawValue)"), context)
                case .interrupted where row.received != offset:
                    return self.refuseTus(Tus.Refusal(409, "upload \(id) is at offset \(row.received), not \(offset)"), context)
                case .receiving, .interrupted:
                    break
                }
                var length: Int64? = fields.lengthDeferred ? nil : row.size
                if let declaredLength {
                    if let length, declaredLength != length {
                        return self.refuseTus(Tus.Refusal(400, "Upload-Length is \(length) already and cannot change"), context)
                    }
                    if declaredLength < offset {
                        return self.refuseTus(Tus.Refusal(400, "Upload-Length \(declaredLength) is less than the offset \(offset)"), context)
                    }
                    length = declaredLength
                }
                if let length, let bodyLength, offset + bodyLength > length {
                    return self.refuseTus(Tus.Refusal(413, "the body (\(bodyLength) bytes at \(offset)) goes past Upload-Length (\(length))"), context)
                }
                let sender = IncomingUpload.Sender(ip: self.clientIP, port: self.clientPort, token: token, door: .tus)
                self.pause(context)
                IncomingUpload.resume(id: id, sha256: nil, lengthDeferred: fields.lengthDeferred, from: sender, services: self.services,
                                      on: context.eventLoop)
                    .assumeIsolated().whenSuccess { opening in
                        self.unpause(context)
                        let body = TusBody(created: false, expected: checksum, digest: checksum.map { ChunkDigest($0.algorithm) })
                        guard case .opened(let upload) = opening else {
                            return self.tusOpened(opening, body: body, expectsContinue: expectsContinue, context)
                        }
                        guard upload.offset == offset else {
                            // The row was behind the file (its worker died mid-PATCH): the file is the truth.
                            let actual = upload.offset
                            _ = upload.pause()
                            return self.refuseTus(Tus.Refusal(409, "upload \(id) is at offset \(actual), not \(offset)"), context)
                        }
                        guard fields.lengthDeferred, let declaredLength else {
                            return self.tusOpened(opening, body: body, expectsContinue: expectsContinue, context)
                        }
                        self.pause(context)
                        upload.declareLength(declaredLength).assumeIsolated().whenComplete { result in
                            self.unpause(context)
                            switch result {
                            case .success(nil):
                                self.tusOpened(opening, body: body, expectsContinue: expectsContinue, context)
                            case .success(let refusal?):
                                _ = upload.pause()
                                self.refuseTus(Tus.Refusal(Int(Self.status(for: refusal).code), "\(refusal)"), context)
                            case .failure(let error):
                                _ = upload.pause()
                                self.refuseTus(Tus.Refusal(503, "cannot record the length: \(error)"), context)
                            }
                        }
                    }
            }
        }
    }

    /// Starts taking the body of a creation or a PATCH once its upload is open.
    private func tusOpened(
        _ opening: IncomingUpload.Opening, body: TusBody, expectsContinue: Bool, _ context: ChannelHandlerContext
    ) {
        guard case .opening(let parts, let ended) = state else {
            if case .opened(let upload) = opening { _ = upload.pause() }
            return
        }
        switch opening {
        case .opened(let upload):
            guard isActive else {
                _ = upload.pause()
                return
            }
            state = .tusReceiving(upload, body)
            if expectsContinue && parts.isEmpty && !ended { sendContinue(context) }
            for part in parts {
                guard case .tusReceiving(let current, var body) = state, current === upload else { break }
                tusAppend(part, to: upload, &body, context)
            }
            if ended, case .tusReceiving(let current, let body) = state, current === upload { tusEnd(upload, body, context) }
        case .refused(let refusal):
            refuseTus(Tus.Refusal(Int(Self.status(for: refusal).code), refusal.description), context)
        case .busy(let id):
            refuseTus(Tus.Refusal(423, "upload \(id) is being written by another request; try again"), context)
        case .alreadyComplete(let row):
            refuseTus(Tus.Refusal(409, "upload \(row.id) is complete at \(row.size) bytes"), context)
        case .notResumable(let reason):
            refuseTus(Tus.Refusal(410, reason), context)
        case .cannotOpen(let error):
            refuseTus(Tus.Refusal(503, "cannot accept uploads right now: \(error)"), context)
        }
    }

    func tusAppend(_ bytes: ByteBuffer, to upload: IncomingUpload, _ body: inout TusBody, _ context: ChannelHandlerContext) {
        if !upload.lengthDeferred, upload.received + Int64(bytes.readableBytes) > upload.size {
            // A chunked body that goes past the upload's length: none of it is kept.
            _ = upload.pause(discarding: true)
            return refuseTus(Tus.Refusal(413, "the body goes past the upload's length (\(upload.size) bytes)"), context)
        }
        body.digest?.update(bytes)
        state = .tusReceiving(upload, body)
        append(bytes, to: upload, context)
    }

    /// The body is in: check its own checksum, then finish the upload if this was
    /// its last byte, or pause it for the next PATCH.
    func tusEnd(_ upload: IncomingUpload, _ body: TusBody, _ context: ChannelHandlerContext) {
        state = .responding
        pause(context)
        if let expected = body.expected, let digest = body.digest, digest.finalize() != expected.digest {
            return upload.pause(discarding: true).assumeIsolated().whenComplete { result in
                self.unpause(context)
                if case .failure(let error) = result {
                    return self.respond(.serviceUnavailable, message: "id=\(upload.id) could not drop the body: \(error)", context)
                }
                self.respond(Self.checksumMismatch, ["Upload-Offset": "\(upload.offset)"],
                             message: "Upload-Checksum: the body's \(expected.algorithm.rawValue) does not match; it was dropped", context)
            }
        }
        let (id, received) = (upload.id, upload.received)
        let location = "/files/\(id)"
        guard !upload.lengthDeferred, received == upload.size else {
            return upload.pause().assumeIsolated().whenComplete { result in
                self.unpause(context)
                if let refusal = upload.refusal {
                    // A body of unknown length outgrew a limit before its end was read.
                    return self.respond(Self.status(for: refusal), message: "id=\(id) \(refusal); nothing stored", context)
                }
                if case .failure(let error) = result {
                    return self.respond(.serviceUnavailable, message: "id=\(id) could not store the bytes: \(error)", context)
                }
                var headers = ["Upload-Offset": "\(received)", "Upload-Expires": self.expires()]
                if body.created { headers["Location"] = location }
                self.respond(body.created ? .created : .noContent, headers, body: nil, context)
            }
        }
        let declared = upload.declaredSHA256
        upload.finish(declared: nil, unchecked: declared.isEmpty).assumeIsolated().whenSuccess { outcome in
            self.unpause(context)
            switch outcome {
            case .stored(let sha256):
                var headers = ["Upload-Offset": "\(received)", "Repr-Digest": DigestHeader.header(sha256: sha256)]
                if body.created { headers["Location"] = location }
                self.respond(body.created ? .created : .noContent, headers, body: nil, context)
            case .checksumMismatch(let declared, let actual):
                self.respond(Self.checksumMismatch, [:],
                             message: "id=\(id) the whole file's SHA-256 is \(actual), not \(declared) as its sha256 metadata said; nothing stored", context)
            case .refused(let refusal):
                self.respond(Self.status(for: refusal), message: "id=\(id) \(refusal); nothing stored", context)
            case .failed(let error):
                self.respond(.serviceUnavailable, message: "id=\(id) could not store the upload: \(error)", context)
            }
        }
    }
}
