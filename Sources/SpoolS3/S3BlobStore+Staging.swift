#if canImport(Glibc)
import Glibc
#endif
import SpoolStore
import SpoolSystem

extension S3BlobStore {
    /// Small or large, staging starts local: a multipart upload begins only when
    /// the first part fills (a small upload is one PUT at the end).
    public func createStaging(id: String, size: Int64, sha256: String, unnamed: Bool) throws(SystemError) -> OpenUpload {
        let path = directory.tempFile(id: id)
        let fd = try Files.open(path, flags: O_RDWR | O_CREAT | O_EXCL)
        do throws(SystemError) {
            _ = try Files.tryLock(fd, path: path)
            try Self.writeHeader(fd, start: 0, path: path)
        } catch {
            Files.close(fd)
            try? Files.unlink(path)
            throw error
        }
        lock.withLock { writing[id] = Writing(manifest: nil, start: 0, hasher: ResumableSHA256()) }
        return OpenUpload(id: id, size: size, sha256: sha256, tempPath: path, fd: fd, offset: 0)
    }

    /// The buffer (made when only S3 holds the upload: a resume on another host,
    /// or after the buffer was lost) locked, reconciled with the manifest, synced.
    public func reopenStaging(id: String, size: Int64, sha256: String) throws(SystemError) -> StagingReopened {
        let path = directory.tempFile(id: id)
        let manifest = try self.manifest(id: id)
        guard manifest != nil || Files.exists(path) else { return .gone }
        let fd = try Files.open(path, flags: O_RDWR | O_CREAT)
        do throws(SystemError) {
            guard try Files.tryLock(fd, path: path) else {
                Files.close(fd)
                return .busy
            }
            let w = try reconcile(fd, path: path, manifest: manifest)
            try Files.fsync(fd, path: path)
            lock.withLock { writing[id] = w }
            return .opened(OpenUpload(id: id, size: size, sha256: sha256, tempPath: path, fd: fd, offset: w.start + w.buffered))
        } catch {
            Files.close(fd)
            throw error
        }
    }

    /// The state of a reopened buffer: a header before the end of the stored parts
    /// means its bytes are in S3 already (a crash after the part was stored); a
    /// header past it cannot happen unless something else wrote here.
    func reconcile(_ fd: Int32, path: String, manifest: StagingManifest?) throws(SystemError) -> Writing {
        let stored = manifest?.stored ?? 0
        var start = try Self.readHeader(fd, path: path) ?? -1
        if start < stored {
            try Files.truncate(fd, to: 0, path: path)
            try Self.writeHeader(fd, start: stored, path: path)
            start = stored
        }
        guard start == stored else {
            throw SystemError("resume", "\(path) starts at \(start) but S3 holds \(stored) bytes of it", errno: EIO)
        }
        var hasher = manifest?.parts.last.map { ResumableSHA256(restoring: $0.hash) } ?? ResumableSHA256()
        let w = Writing(manifest: manifest, start: start, hasher: hasher)
        w.buffered = try Files.size(fd: fd, path: path) - Int64(Self.header)
        try Self.hashBuffer(fd, from: 0, to: w.buffered, onto: &hasher, path: path)
        var part = ResumableSHA256()
        try Self.hashBuffer(fd, from: 0, to: w.buffered, onto: &part, path: path)
        w.hasher = hasher
        w.partHasher = part
        return w
    }

    public func holdStaging(id: String) throws(SystemError) -> StagingReopened {
        let path = directory.tempFile(id: id)
        if !Files.exists(path), try manifest(id: id) == nil { return .gone }
        let fd = try Files.open(path, flags: O_RDWR | O_CREAT)
        guard (try? Files.tryLock(fd, path: path)) == true else {
            Files.close(fd)
            return .busy
        }
        return .opened(OpenUpload(id: id, size: 0, sha256: "", tempPath: path, fd: fd, offset: 0))
    }

    /// Parts are cut at exactly `partSize`, so the hash state at each part's end can be saved.
    public func append(_ upload: OpenUpload, _ bytes: UnsafeRawBufferPointer) throws(SystemError) {
        let w = try state(upload.id)
        var rest = bytes
        while !rest.isEmpty {
            let take = Int(min(Int64(rest.count), partSize - w.buffered))
            let piece = UnsafeRawBufferPointer(rebasing: rest[0..<take])
            try Self.pwriteAll(upload.fd, piece, at: Int64(Self.header) + w.buffered, path: upload.tempPath)
            w.hasher.update(bufferPointer: piece)
            w.partHasher.update(bufferPointer: piece)
            w.buffered += Int64(take)
            rest = UnsafeRawBufferPointer(rebasing: rest[take...])
            if w.buffered == partSize { _ = try storePart(upload, w, last: false) }
        }
    }

    public func startWriteBack(_ upload: OpenUpload, from offset: Int64, count: Int64) {}

    /// Only within the buffer: bytes already sent as parts stay.
    public func truncate(_ upload: OpenUpload, to length: Int64) throws(SystemError) {
        let w = try state(upload.id)
        guard length >= w.start else {
            throw SystemError("truncate", "\(upload.id): \(length) bytes is before what S3 holds (\(w.start))", errno: EINVAL)
        }
        try Files.truncate(upload.fd, to: Int64(Self.header) + length - w.start, path: upload.tempPath)
        let fresh = try reconcile(upload.fd, path: upload.tempPath, manifest: w.manifest)
        lock.withLock { writing[upload.id] = fresh }
    }

    /// From the state saved with the last stored part, then the buffer's bytes:
    /// the parts themselves cannot be read back.
    public func hashStaged(_ upload: OpenUpload, from start: Int64, to end: Int64, continuing hasher: ResumableSHA256)
        throws(SystemError) -> ResumableSHA256
    {
        let w = try state(upload.id)
        guard end >= w.start, end - w.start <= w.buffered else {
            throw SystemError("read", "\(upload.id): bytes \(start)-\(end) are not all in the buffer", errno: EIO)
        }
        var hash: ResumableSHA256
        var from: Int64
        if start > w.start {
            (hash, from) = (hasher, start - w.start)
        } else {
            (hash, from) = (w.manifest?.parts.last.map { ResumableSHA256(restoring: $0.hash) } ?? ResumableSHA256(), 0)
        }
        try Self.hashBuffer(upload.fd, from: from, to: end - w.start, onto: &hash, path: upload.tempPath)
        return hash
    }

    public func keep(_ upload: OpenUpload) throws(SystemError) {
        defer { close(upload) }
        try Files.fsync(upload.fd, path: upload.tempPath)
    }

    public func close(_ upload: OpenUpload) {
        Files.close(upload.fd)
        lock.withLock { writing[upload.id] = nil }
    }

    public func discard(_ upload: OpenUpload) {
        let manifest = lock.withLock { writing[upload.id]?.manifest }
        close(upload)
        try? Files.unlink(upload.tempPath)
        if let manifest { abandon(manifest, id: upload.id) }
    }

    /// Aborts a multipart upload and removes its manifest (best effort: the
    /// store's own expiry of multipart uploads is the backstop).
    func abandon(_ manifest: StagingManifest, id: String) {
        try? client.abortMultipartUpload(manifest.key, uploadID: manifest.uploadID)
        try? client.delete(manifestKey(id: id))
    }

    public func removeStaging(id: String) {
        try? Files.unlink(directory.tempFile(id: id))
        if let manifest = try? manifest(id: id) { abandon(manifest, id: id) }
    }

    public func durableStagedSize(id: String) throws(SystemError) -> Int64 {
        let path = directory.tempFile(id: id)
        let manifest = try self.manifest(id: id)
        guard let fd = try? Files.open(path, flags: O_RDONLY) else {
            guard let manifest else { throw SystemError("open", path, errno: ENOENT) }
            return manifest.stored
        }
        defer { Files.close(fd) }
        try Files.fsync(fd, path: path)
        let start = try Self.readHeader(fd, path: path) ?? 0
        let stored = manifest?.stored ?? 0
        return start < stored ? stored : start + max(0, try Files.size(fd: fd, path: path) - Int64(Self.header))
    }

    public func hasStaging(id: String) -> Bool {
        Files.exists(directory.tempFile(id: id)) || ((try? manifest(id: id)) ?? nil) != nil
    }

    public func isBeingWritten(id: String) -> Bool {
        Files.isLockedElsewhere(directory.tempFile(id: id))
    }

    /// The local buffers and the uploads S3 holds parts of, as `<id>.part`.
    public func stagingNames() throws(SystemError) -> [String] {
        var names = Set(try Files.list(directory.tempPath))
        let listed = try Self.io("list staging") { () throws(S3Error) in try client.list(prefix: client.key("staging/")) }
        for entry in listed where entry.key.hasSuffix(".manifest") {
            let id = entry.key.dropFirst(client.key("staging/").count).dropLast(".manifest".count)
            names.insert("\(id).part")
        }
        return names.sorted()
    }

    public func removeStagingNamed(_ name: String) throws(SystemError) {
        guard name.hasSuffix(".part") else { return try Files.unlink(directory.tempPath + "/" + name) }
        removeStaging(id: String(name.dropLast(5)))
    }
}
