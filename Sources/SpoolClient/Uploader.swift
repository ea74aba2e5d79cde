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
}

/// Uploads files over one connection: declare name, size and SHA-256, wait for
/// the server's 150, send exactly the declared bytes, then read the verdict.
public struct Uploader {
    public let connection: Connection

    public init(connection: Connection) {
        self.connection = connection
    }

    /// Uploads the file at `path` under `name`. `progress` receives (bytes sent, total).
    public func upload(path: String, name: String, progress: (Int64, Int64) -> Void = { _, _ in }) throws(ClientError) -> UploadResult {
        let fd: Int32
        do { fd = try Files.open(path, flags: O_RDONLY) } catch { throw .file(error) }
        defer { Files.close(fd) }
        let digest: FileDigest
        do { digest = try FileDigest.of(fd: fd, path: path) } catch { throw .file(error) }

        try connection.send(line: UploadRequest(name: name, size: digest.size, sha256: digest.sha256).line)
        let ready = try connection.readReply()
        guard ready.code == .sendBody else { throw .refused(ready) }
        let fields = ready.fields
        guard let id = fields["id"], let offset = fields["offset"].flatMap(Int64.init), (0...digest.size).contains(offset)
        else {
            throw .protocolViolation("150 reply without a usable id and offset: \(ready)")
        }
        progress(offset, digest.size)
        try connection.sendFile(fd: fd, offset: offset, count: digest.size - offset) { sent in
            progress(offset + sent, digest.size)
        }
        let verdict = try connection.readReply()
        guard verdict.code == .stored else { throw .refused(verdict) }
        let stored = verdict.fields
        guard stored["id"] == id, stored["sha256"] == digest.sha256, stored["size"] == String(digest.size) else {
            throw .protocolViolation("server confirmed something other than what was sent: \(verdict)")
        }
        return UploadResult(id: id, size: digest.size, sha256: digest.sha256)
    }
}
