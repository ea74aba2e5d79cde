import SpoolProtocol
import SpoolSystem

#if canImport(Glibc)
import Glibc
#endif

/// `spool download`: a complete upload's bytes from the HTTP door (docs/HTTP.md),
/// written to `<file>.part`, read back and verified against the SHA-256 the
/// server stores (the ETag), made durable, and only then renamed to `<file>`.
/// A cut download resumes from the `.part` with a `Range` request, in the same
/// run after a lost connection and in the next run after anything else.
public final class Downloader {
    public let server: String
    public var token: String?
    /// Speak TLS to the HTTP door, checked as this says; nil: plain text.
    public var tls: ClientTLS?
    public var retries = 5
    /// Bytes in the file so far and the whole size, after every piece.
    public var progress: (Int64, Int64) -> Void = { _, _ in }
    /// A line about a retry, for standard error.
    public var notice: (String) -> Void = { _ in }

    public struct Result: Sendable {
        public let path: String
        public let size: Int64
        public let sha256: String
        /// Bytes that were already in the `.part` file and not fetched again.
        public let resumedFrom: Int64
    }

    /// What the server says about the file before its bytes are asked for.
    struct Target {
        let size: Int64
        let sha256: String
        let fileName: String?
    }

    public init(server: String) {
        self.server = server
    }

    /// The URL path of an upload by id, or of the newest complete upload by name.
    public static func path(id: String) -> String { "/uploads/\(id.uppercased())/content" }
    public static func path(name: String) -> String {
        "/names/" + name.split(separator: "/", omittingEmptySubsequences: false).map { PercentCoding.encode(String($0)) }.joined(separator: "/")
    }

    /// Downloads `path` to `output`, or, without one, to the name the server gives
    /// (its `Content-Disposition`) in the current directory.
    public func download(_ path: String, to output: String?) throws(ClientError) -> Result {
        var attempt = 0
        var restartedAfterMismatch = false
        while true {
            do {
                return try once(path, to: output)
            } catch {
                if case .verification = error, !restartedAfterMismatch {
                    // The part file held other bytes (the name now points at a newer upload,
                    // or the disk lied): start over once, from nothing.
                    restartedAfterMismatch = true
                    notice("\(error); downloading it again from the start")
                    continue
                }
                guard error.isTransient, attempt < retries else { throw error }
                attempt += 1
                let delay = min(5.0, 0.25 * Double(1 << attempt))
                notice("\(error); retrying in \(delay) s (\(attempt)/\(retries))")
                usleep(UInt32(delay * 1_000_000))
            }
        }
    }

    private func once(_ path: String, to output: String?) throws(ClientError) -> Result {
        let target = try describe(path)
        guard let file = output ?? target.fileName else {
            throw .protocolViolation("the server named no file; give one with -o")
        }
        let part = file + ".part"
        let fd: Int32
        do { fd = try Files.open(part, flags: O_WRONLY | O_CREAT | O_CLOEXEC, mode: 0o644) } catch { throw .file(error) }
        defer { Files.close(fd) }
        var offset: Int64
        do { offset = try Files.size(fd: fd, path: part) } catch { throw .file(error) }
        if offset > target.size {
            offset = 0
            _ = ftruncate(fd, 0)
        }
        let resumedFrom = offset
        if offset < target.size {
            try fetch(path, into: fd, part: part, from: &offset, target: target)
        }
        // Read back what the disk holds, not what was meant to be written.
        let written: FileDigest
        do {
            try Files.fsync(fd, path: part)
            written = try FileDigest.of(path: part)
        } catch { throw .file(error) }
        guard written.sha256 == target.sha256, written.size == target.size else {
            try? Files.unlink(part)
            throw .verification("\(file): got \(written.size) bytes with SHA-256 \(written.sha256), the server stores \(target.size) with \(target.sha256)")
        }
        do {
            try Files.rename(part, file)
            try Files.fsyncDirectory(Files.parentDirectory(of: file))
        } catch { throw .file(error) }
        return Result(path: file, size: written.size, sha256: written.sha256, resumedFrom: resumedFrom)
    }

    private var authorization: [String: String] {
        token.map { ["Authorization": "Bearer \($0)"] } ?? [:]
    }

    /// HEAD: the size, the SHA-256 (the ETag) and the name.
    private func describe(_ path: String) throws(ClientError) -> Target {
        let exchange = try HTTPExchange(server: server, method: "HEAD", path: path, headers: authorization, tls: tls)
        let head = exchange.head
        guard head.status == 200 else { throw Self.refusal(head, message: "") }
        guard let size = head.headers["content-length"].flatMap({ Int64($0) }), let sha256 = Self.sha256(head) else {
            throw .protocolViolation("a download without Content-Length or a SHA-256 ETag")
        }
        return Target(size: size, sha256: sha256, fileName: head.headers["content-disposition"].flatMap(ContentDisposition.fileName(from:)))
    }

    /// GET from `offset` to the end, appending to `fd`; `offset` follows the bytes written.
    private func fetch(_ path: String, into fd: Int32, part: String, from offset: inout Int64, target: Target) throws(ClientError) {
        var headers = authorization
        if offset > 0 { headers["Range"] = "bytes=\(offset)-" }
        let exchange = try HTTPExchange(server: server, method: "GET", path: path, headers: headers, tls: tls)
        let head = exchange.head
        switch head.status {
        case 206:
            guard head.headers["content-range"]?.hasPrefix("bytes \(offset)-") == true else {
                throw .protocolViolation("asked from byte \(offset), got \(head.headers["content-range"] ?? "no Content-Range")")
            }
        case 200:
            offset = 0  // the whole file after all: start the part file over
            _ = ftruncate(fd, 0)
        default:
            throw Self.refusal(head, message: exchange.text())
        }
        guard Self.sha256(head) == target.sha256 else {
            throw .verification("the file changed on the server while it was being downloaded")
        }
        var buffer = [UInt8](repeating: 0, count: 1 << 20)
        while true {
            let n = try exchange.read(into: &buffer)
            if n == 0 { break }
            var done = 0
            while done < n {
                let written = buffer.withUnsafeBytes { pwrite(fd, $0.baseAddress.map { $0 + done }, n - done, off_t(offset) + off_t(done)) }
                if written < 0 && currentErrno() == EINTR { continue }
                guard written > 0 else { throw .file(.last("write", part)) }
                done += written
            }
            offset += Int64(n)
            progress(offset, target.size)
        }
    }

    private static func sha256(_ head: ResponseHead) -> String? {
        guard let tag = head.headers["etag"], tag.count == 66, tag.hasPrefix("\""), tag.hasSuffix("\"") else { return nil }
        return Checksum.normalize(tag.dropFirst().dropLast())
    }

    private static func refusal(_ head: ResponseHead, message: String) -> ClientError {
        switch head.status {
        case 404: .http(404, message.isEmpty ? "no such complete upload" : message)
        case 401: .http(401, message.isEmpty ? "a token is needed (--token or $SPOOL_TOKEN)" : message)
        case 409: .http(409, message.isEmpty ? "the upload is not complete" : message)
        default: .http(head.status, message.isEmpty ? head.reason : message)
        }
    }
}
