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

    public init() {}
}

/// Uploads files to one server, reconnecting and resuming as needed.
///
/// Each file: declare name, size and SHA-256 (or ask to resume a known upload),
/// wait for the server's 150 and its offset, send the rest with sendfile, read the
/// verdict. A lost connection or a 4xx reply is retried with backoff; the upload
/// resumes from the bytes the server has durably stored.
public final class Uploader {
    public let server: String
    public let options: UploadOptions
    private var connection: Connection?
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

    /// Uploads the file at `path` under `name`. `progress` receives (bytes sent, total).
    public func upload(path: String, name: String, progress: @escaping (Int64, Int64) -> Void = { _, _ in })
        throws(ClientError) -> UploadResult
    {
        let fd: Int32
        do { fd = try Files.open(path, flags: O_RDONLY) } catch { throw .file(error) }
        defer { Files.close(fd) }
        let digest: FileDigest
        do { digest = try FileDigest.of(fd: fd, path: path) } catch { throw .file(error) }

        var id = options.journal?.lookup(sha256: digest.sha256, size: digest.size)
        var attempt = 0
        while true {
            do throws(ClientError) {
                let current: Connection
                if let open = connection { current = open } else { current = try Connection(server: server, token: options.token) }
                connection = current
                let result = try send(fd: fd, digest: digest, name: name, id: &id, over: current, progress: progress)
                options.journal?.forget(sha256: digest.sha256, size: digest.size)
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
        if ready == nil {
            try connection.send(line: UploadRequest(name: name, size: digest.size, sha256: digest.sha256).line)
            ready = try connection.readReply()
        }
        guard let ready, ready.code == .sendBody else { throw .refused(ready ?? Reply(.badLine, "")) }
        let fields = ready.fields
        guard let accepted = fields["id"], let offset = fields["offset"].flatMap(Int64.init),
            (0...digest.size).contains(offset)
        else {
            throw .protocolViolation("150 reply without a usable id and offset: \(ready)")
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

    private func verify(_ verdict: Reply, id: String, digest: FileDigest, resumedAt: Int64) throws(ClientError) -> UploadResult {
        guard verdict.code == .stored else { throw .refused(verdict) }
        let stored = verdict.fields
        guard stored["id"] == id, stored["sha256"] == digest.sha256, stored["size"] == String(digest.size) else {
            throw .protocolViolation("server confirmed something other than what was sent: \(verdict)")
        }
        return UploadResult(id: id, size: digest.size, sha256: digest.sha256, resumedAt: resumedAt)
    }
}
