import SpoolProtocol
import SpoolSystem

#if canImport(Glibc)
import Glibc
#endif

/// The result of one verified upload.
public struct UploadResult: Sendable, Equatable {
    public let id: String
    public let size: Int64
    public let sha256: String
    /// Where this run started sending (non-zero when it resumed).
    public let resumedAt: Int64
}

public struct UploadOptions: Sendable {
    /// Reconnections after a transient failure (lost connection, 4xx reply), per file.
    public var retries = 5
    /// Send no faster than this many bytes per second.
    public var limitRate: Int64?
    public var journal: ResumeJournal?
    /// The upload token sent with AUTH on every connection.
    public var token: String?
    /// The highest protocol version to speak (lower only to act as an older client would).
    public var maxVersion = ProtocolInfo.version
    /// When each file's SHA-256 is sent.
    public var checksum = ChecksumPlacement.auto
    /// Speak TLS, checked as this says; nil: plain text.
    public var tls: ClientTLS?

    public init() {}
}

/// When a file's SHA-256 goes to the server: declared with the `UPLOAD` line (the
/// file is read once to hash it, once to send it), or sent after the body, hashed
/// while it is sent (to servers that offer `digest-after`).
public enum ChecksumPlacement: String, Sendable, CaseIterable {
    /// After the body for files of 1 MiB or more, up front for smaller ones.
    case auto
    case first
    case after
}

/// Uploads files to one server, reconnecting and resuming as needed.
///
/// Each file: declare name, size and SHA-256 (or ask to resume a known upload),
/// wait for the server's 150 and its offset, send the rest with sendfile, read the
/// verdict. A small new file sent to a server that speaks protocol 2 goes with its
/// UPLOAD line in one write, without waiting for the 150. A large file sent to a
/// server that offers `digest-after` is announced without its checksum and hashed
/// while it is sent; the checksum follows the body. A lost connection or a 4xx
/// reply is retried with backoff; the upload resumes from the bytes the server
/// has durably stored.
public final class Uploader {
    public let server: String
    public let options: UploadOptions
    var connection: Connection?
    /// Notices for the user: retries and resumes.
    public var notice: (String) -> Void = { _ in }

    public init(server: String, options: UploadOptions = UploadOptions()) {
        self.server = server
        self.options = options
    }

    /// Uses an already open connection (and reconnects to its address when it drops).
    public convenience init(connection: Connection, options: UploadOptions = UploadOptions()) {
        self.init(server: connection.address, options: options)
        self.connection = connection
    }

    /// Files at least this large go checksum-after-body to servers that offer it:
    /// hashing first would delay the first byte by the time it takes to read them.
    static let digestAfterThreshold: Int64 = 1 << 20

    /// Whether a new file of `size` bytes is announced with `-` and its checksum sent after it.
    func sendsDigestAfter(size: Int64) -> Bool {
        switch options.checksum {
        case .auto: size >= Self.digestAfterThreshold
        case .first: false
        case .after: true
        }
    }

    /// Uploads the file at `path` under `name`. `progress` receives (bytes sent, total).
    public func upload(path: String, name: String, progress: @escaping (Int64, Int64) -> Void = { _, _ in })
        throws(ClientError) -> UploadResult
    {
        let fd: Int32
        do { fd = try Files.open(path, flags: O_RDONLY) } catch { throw .file(error) }
        defer { Files.close(fd) }
        let file: FileIdentity
        do { file = try FileIdentity(fd: fd, path: path) } catch { throw .file(error) }

        // The checksum, once known: at once for a small file or a resume, else
        // from hashing alongside the first attempt (see sendDigestAfter).
        var digest: FileDigest?
        var id = options.journal?.lookup(file: file)
        var attempt = 0
        while true {
            do throws(ClientError) {
                let current = try currentConnection()
                let result: UploadResult
                if digest == nil, id == nil, sendsDigestAfter(size: file.size), try current.features().contains("digest-after") {
                    result = try sendDigestAfter(fd: fd, path: path, file: file, name: name, id: &id, digest: &digest,
                                                 over: current, progress: progress)
                } else {
                    // A small file is read once, on every attempt: hashed from memory,
                    // and sent from there to a server that takes the body at once.
                    let known: FileDigest
                    var contents: [UInt8]?
                    do {
                        if file.size < Self.digestAfterThreshold {
                            (known, contents) = try FileDigest.contents(fd: fd, path: path, size: file.size)
                        } else if let digest {
                            known = digest
                        } else {
                            known = try FileDigest.of(fd: fd, path: path)
                        }
                    } catch { throw .file(error) }
                    if digest == nil, id == nil { id = options.journal?.lookup(sha256: known.sha256, size: known.size) }
                    digest = known
                    if let contents, id == nil, options.limitRate == nil, try current.protocolVersion() >= 2 {
                        result = try sendAtOnce(contents, digest: known, name: name, id: &id, over: current, progress: progress)
                    } else {
                        result = try send(fd: fd, digest: known, name: name, id: &id, over: current, progress: progress)
                    }
                }
                options.journal?.forget(sha256: result.sha256, size: result.size)
                options.journal?.forget(file: file)
                return result
            } catch where error.isTransient && attempt < options.retries {
                connection = nil  // after a failure the stream's framing is unknown: start afresh
                attempt += 1
                let delay = min(5.0, 0.25 * Double(1 << (attempt - 1)))
                notice("\(error); retrying in \(delay) s (\(attempt) of \(options.retries))")
                usleep(UInt32(delay * 1_000_000))
            } catch {
                if case .refused = error {} else { connection = nil }
                throw error
            }
        }
    }

    /// One attempt at a new upload whose checksum follows the body: announce it
    /// with `-`, send the file while a second thread hashes it, then `DIGEST`.
    /// The journal knows it by `file` until it is stored. Whatever happens to the
    /// connection, the hash is finished and kept in `digest`, so that a retry
    /// resumes with it.
    private func sendDigestAfter(
        fd: Int32, path: String, file: FileIdentity, name: String, id: inout String?, digest: inout FileDigest?,
        over connection: Connection, progress: @escaping (Int64, Int64) -> Void
    ) throws(ClientError) -> UploadResult {
        try connection.send(line: UploadRequest(name: name, size: file.size, sha256: nil).line)
        let accepted = try awaitGoAhead(on: connection, size: file.size, new: true).id
        id = accepted
        options.journal?.record(file: file, id: accepted)
        progress(0, file.size)
        let hashing = BackgroundDigest(fd: fd, path: path)
        var sendError: ClientError?
        do throws(ClientError) {
            try connection.sendFile(fd: fd, offset: 0, count: file.size, limitRate: options.limitRate) {
                progress($0, file.size)
            }
        } catch {
            sendError = error
        }
        let hashed: FileDigest
        do { hashed = try hashing.wait() } catch { throw .file(error) }
        guard hashed.size == file.size else {
            throw .file(SystemError("read", "\(path) changed size while uploading", errno: EIO))
        }
        digest = hashed
        if let sendError { throw sendError }
        try connection.send(line: "DIGEST \(hashed.sha256)")
        return try verify(try connection.readReply(), id: accepted, digest: hashed, resumedAt: 0)
    }

    /// One attempt at a new small upload to a server that speaks protocol 2: the
    /// UPLOAD line and the whole body in one write, then the `150` and the verdict,
    /// so the upload costs one round trip instead of two.
    ///
    /// The id is kept for this run's retries (a `RESUME` of an upload that was stored
    /// before the connection dropped answers `250` at once), but not written to the
    /// journal: a body sent this way is almost always stored whole or not at all,
    /// so an entry would cost a file created, renamed and removed per upload for a
    /// resume a later run would hardly ever get.
    private func sendAtOnce(
        _ body: [UInt8], digest: FileDigest, name: String, id: inout String?, over connection: Connection,
        progress: @escaping (Int64, Int64) -> Void
    ) throws(ClientError) -> UploadResult {
        progress(0, digest.size)
        let request = UploadRequest(name: name, size: digest.size, sha256: digest.sha256, bodyAtOnce: try connection.protocolVersion() >= 3)
        try connection.send(bytes: Array(request.line.utf8) + body)
        let accepted = try Self.goAhead(try connection.readReply(), size: digest.size, new: true).id
        id = accepted
        progress(digest.size, digest.size)
        return try verify(try connection.readReply(), id: accepted, digest: digest, resumedAt: 0)
    }

    /// One attempt over one connection.
    private func send(
        fd: Int32, digest: FileDigest, name: String, id: inout String?, over connection: Connection,
        progress: @escaping (Int64, Int64) -> Void
    ) throws(ClientError) -> UploadResult {
        var ready: Reply?
        if let known = id {
            try connection.send(line: "RESUME \(known) \(digest.sha256)")
            let reply = try connection.readReply()
            switch reply.code {
            case .sendBody:
                ready = reply
            case .stored:
                return try verify(reply, id: known, digest: digest, resumedAt: digest.size)
            case .notFound:
                notice("upload \(known) cannot be resumed (\(reply.text)); starting over")
                id = nil
                options.journal?.forget(sha256: digest.sha256, size: digest.size)
            default:
                throw .refused(reply)
            }
        }
        let accepted: String, offset: Int64
        if let ready {
            (accepted, offset) = try Self.goAhead(ready, size: digest.size, new: false)
        } else {
            try connection.send(line: UploadRequest(name: name, size: digest.size, sha256: digest.sha256).line)
            (accepted, offset) = try awaitGoAhead(on: connection, size: digest.size, new: true)
        }
        if id == nil { options.journal?.record(sha256: digest.sha256, size: digest.size, id: accepted) }
        id = accepted
        if offset > 0 { notice("resuming upload \(accepted) at byte \(offset) of \(digest.size)") }
        progress(offset, digest.size)
        try connection.sendFile(fd: fd, offset: offset, count: digest.size - offset, limitRate: options.limitRate) {
            progress(offset + $0, digest.size)
        }
        return try verify(try connection.readReply(), id: accepted, digest: digest, resumedAt: offset)
    }

    /// The open connection, or a new one to the same server.
    func currentConnection() throws(ClientError) -> Connection {
        if let connection { return connection }
        let opened = try Connection(server: server, token: options.token, maxVersion: options.maxVersion, tls: options.tls)
        connection = opened
        return opened
    }

    /// Reads the reply to an `UPLOAD` sent without its body, and returns its go-ahead.
    /// A server speaking protocol 2 expects every body at once: after refusing one it
    /// reads and drops the body it announced, which this client never sends, so the
    /// connection is out of step and is not used again.
    func awaitGoAhead(on connection: Connection, size: Int64, new: Bool) throws(ClientError) -> (id: String, offset: Int64) {
        do {
            return try Self.goAhead(try connection.readReply(), size: size, new: new)
        } catch {
            if case .refused = error, (try? connection.protocolVersion()) == 2 { self.connection = nil }
            throw error
        }
    }

    /// The id and offset a `150` gives; a new upload starts at 0, a resumed one anywhere up to its size.
    static func goAhead(_ ready: Reply, size: Int64, new: Bool) throws(ClientError) -> (id: String, offset: Int64) {
        guard ready.code == .sendBody else { throw .refused(ready) }
        let fields = ready.fields
        guard let id = fields["id"], let offset = fields["offset"].flatMap(Int64.init), (0...(new ? 0 : size)).contains(offset) else {
            throw .protocolViolation("150 reply without a usable id and offset: \(ready)")
        }
        return (id, offset)
    }

    func verify(_ verdict: Reply, id: String, digest: FileDigest, resumedAt: Int64) throws(ClientError) -> UploadResult {
        guard verdict.code == .stored else { throw .refused(verdict) }
        let stored = verdict.fields
        guard stored["id"] == id, stored["sha256"] == digest.sha256, stored["size"] == String(digest.size) else {
            throw .protocolViolation("server confirmed something other than what was sent: \(verdict)")
        }
        return UploadResult(id: id, size: digest.size, sha256: digest.sha256, resumedAt: resumedAt)
    }
}
