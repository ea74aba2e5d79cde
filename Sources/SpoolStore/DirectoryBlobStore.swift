#if canImport(Glibc)
import Glibc
#endif
import Crypto
import SpoolSystem

/// Blobs in the spool directory on local disk (docs/DESIGN.md, "Storage and
/// durability"): an upload's bytes are staged in `spool/tmp/<id>.part`, appended
/// under an exclusive `flock` (the one-writer rule, across processes; the kernel
/// drops it when its holder dies), and published as `spool/objects/ab/<sha256>`
/// by a link that never replaces, made durable by fsyncs or, for a batch, one
/// `syncfs` (`DurableFiles`).
public final class DirectoryBlobStore: BlobStore {
    public let directory: DataDirectory
    let durableFiles: DurableFiles

    public init(directory: DataDirectory) {
        self.directory = directory
        durableFiles = DurableFiles(anchor: directory.objectsPath)
    }

    // MARK: - Staging

    /// Unnamed when asked and possible: a file with no name in the object's
    /// directory (`O_TMPFILE`), linked into place when complete, which saves an
    /// entry created and removed in `tmp/` per small upload. Else `tmp/<id>.part`.
    public func createStaging(id: String, size: Int64, sha256: String, unnamed: Bool) throws(SystemError) -> OpenUpload {
        if unnamed, Files.canLinkUnnamed, !sha256.isEmpty {
            let objectDirectory = directory.objectDirectory(sha256: sha256)
            if let fd = Files.openUnnamed(in: objectDirectory) {
                return OpenUpload(id: id, size: size, sha256: sha256, tempPath: objectDirectory, fd: fd, offset: 0, unnamed: true)
            }
        }
        let path = directory.tempFile(id: id)
        let fd = try Files.open(path, flags: O_WRONLY | O_APPEND | O_CREAT | O_EXCL)
        _ = try Files.tryLock(fd, path: path)  // a new file: nobody else can hold it
        return OpenUpload(id: id, size: size, sha256: sha256, tempPath: path, fd: fd, offset: 0)
    }

    /// Never creates the file: one that is gone has nothing to resume, and an
    /// empty file would outlive its upload.
    public func reopenStaging(id: String, size: Int64, sha256: String) throws(SystemError) -> StagingReopened {
        let path = directory.tempFile(id: id)
        let fd: Int32
        do {
            fd = try Files.open(path, flags: O_RDWR | O_APPEND)
        } catch where error.errno == ENOENT {
            return .gone
        }
        do throws(SystemError) {
            guard try Files.tryLock(fd, path: path) else {
                Files.close(fd)
                return .busy
            }
            try Files.fsync(fd, path: path)
            CrashPoint.reach("resume-after-fsync")
            let offset = try Files.size(fd: fd, path: path)
            return .opened(OpenUpload(id: id, size: size, sha256: sha256, tempPath: path, fd: fd, offset: offset))
        } catch {
            Files.close(fd)
            throw error
        }
    }

    /// Holds an upload's staging without writing it (expiry), so no resume can
    /// be writing it meanwhile; `.gone` when it has none.
    public func holdStaging(id: String) throws(SystemError) -> StagingReopened {
        let path = directory.tempFile(id: id)
        let fd: Int32
        do {
            fd = try Files.open(path, flags: O_RDONLY)
        } catch where error.errno == ENOENT {
            return .gone
        }
        guard (try? Files.tryLock(fd, path: path)) == true else {
            Files.close(fd)
            return .busy
        }
        return .opened(OpenUpload(id: id, size: 0, sha256: "", tempPath: path, fd: fd, offset: 0))
    }

    public func append(_ upload: OpenUpload, _ bytes: UnsafeRawBufferPointer) throws(SystemError) {
        try Files.writeAll(upload.fd, bytes, path: upload.tempPath)
    }

    public func startWriteBack(_ upload: OpenUpload, from offset: Int64, count: Int64) {
        Files.startWriteBack(upload.fd, from: offset, count: count)
    }

    public func truncate(_ upload: OpenUpload, to length: Int64) throws(SystemError) {
        try Files.truncate(upload.fd, to: length, path: upload.tempPath)
    }

    /// Read through a descriptor of its own: the writer's may be write-only.
    public func hashStaged(_ upload: OpenUpload, from start: Int64, to end: Int64, continuing hasher: ResumableSHA256)
        throws(SystemError) -> ResumableSHA256
    {
        guard end > start else { return hasher }
        let reader = try Files.open(upload.tempPath, flags: O_RDONLY)
        defer { Files.close(reader) }
        return try Self.hash(fd: reader, from: start, to: end, continuing: hasher, path: upload.tempPath)
    }

    public func keep(_ upload: OpenUpload) throws(SystemError) {
        defer { Files.close(upload.fd) }
        try Files.fsync(upload.fd, path: upload.tempPath)
    }

    public func close(_ upload: OpenUpload) {
        Files.close(upload.fd)
    }

    /// An unnamed file vanishes when closed; a named one is unlinked.
    public func discard(_ upload: OpenUpload) {
        Files.close(upload.fd)
        if !upload.unnamed { try? Files.unlink(upload.tempPath) }
    }

    public func removeStaging(id: String) {
        try? Files.unlink(directory.tempFile(id: id))
    }

    public func durableStagedSize(id: String) throws(SystemError) -> Int64 {
        let path = directory.tempFile(id: id)
        let fd = try Files.open(path, flags: O_RDONLY)
        defer { Files.close(fd) }
        try Files.fsync(fd, path: path)
        return try Files.size(fd: fd, path: path)
    }

    public func hasStaging(id: String) -> Bool {
        Files.exists(directory.tempFile(id: id))
    }

    public func isBeingWritten(id: String) -> Bool {
        Files.isLockedElsewhere(directory.tempFile(id: id))
    }

    public func stagingNames() throws(SystemError) -> [String] {
        try Files.list(directory.tempPath).sorted()
    }

    public func removeStagingNamed(_ name: String) throws(SystemError) {
        try Files.unlink(directory.tempPath + "/" + name)
    }

    // MARK: - Publishing

    /// One upload alone is published with others finishing on other threads at the
    /// same moment (`DurableFiles.make`); a batch, at once (`makeAll`).
    public func publish(_ items: [(upload: OpenUpload, sha256: String)]) throws(StoreError) -> [StoreError?] {
        let files = items.map { file($0.upload, sha256: $0.sha256) }
        if files.count == 1, let only = files.first {
            do throws(StoreError) {
                try durableFiles.make(only)
                return [nil]
            } catch {
                return [error]
            }
        }
        return try durableFiles.makeAll(files)
    }

    /// An upload's file on its way to being the object of `sha256`.
    func file(_ upload: OpenUpload, sha256: String) -> DurableFiles.File {
        let objectDirectory = directory.objectDirectory(sha256: sha256)
        let objectPath = directory.objectFile(sha256: sha256)
        return DurableFiles.File(fd: upload.fd, path: upload.tempPath, directory: objectDirectory) { () throws(SystemError) in
            if upload.unnamed {
                try Self.link(upload, to: objectPath)
                return
            }
            do throws(SystemError) {
                try Self.publishNamed(upload, to: objectPath)
            } catch where error.errno == ENOENT && Files.exists(upload.tempPath) {
                // The 256 directories exist from the first start; one removed by hand
                // is made again here rather than looked for on every upload.
                try Files.makeDirectories(objectDirectory)
                try Self.publishNamed(upload, to: objectPath)
            }
        }
    }

    /// Gives a named temporary file its object name, never over an existing object:
    /// one already there was acknowledged to someone, and in a batch the new name is
    /// given before the bytes are synced, so a rename over it could leave the
    /// acknowledged name on bytes a crash loses (file systems without ext4's
    /// `auto_da_alloc` show it). A link fails instead when the name is taken; the
    /// object is kept if it holds the same bytes, and only a damaged one is replaced,
    /// by bytes synced first.
    static func publishNamed(_ upload: OpenUpload, to objectPath: String) throws(SystemError) {
        do {
            try Files.link(upload.tempPath, objectPath)
        } catch where error.errno == EEXIST {
            // The upload's own descriptor is write-only: read its bytes through another.
            let reader = try Files.open(upload.tempPath, flags: O_RDONLY)
            defer { Files.close(reader) }
            if try !Files.sameContents(reader, objectPath) {
                try Files.fsync(upload.fd, path: upload.tempPath)
                try Files.rename(upload.tempPath, objectPath)
                return
            }
        }
        // A temporary name left by a crash here is removed at the next start (no live upload owns it).
        try Files.unlink(upload.tempPath)
    }

    /// Gives an unnamed upload file its object name. The content is stored once: an
    /// object already there under that name is kept if it holds the same bytes (as
    /// it does unless damaged), and a damaged one is replaced, so that the object
    /// holds exactly what this upload received, as a rename over it would.
    static func link(_ upload: OpenUpload, to objectPath: String) throws(SystemError) {
        for _ in 0..<3 {
            do {
                return try Files.linkUnnamed(upload.fd, to: objectPath)
            } catch where error.errno == EEXIST {
                if try Files.sameContents(upload.fd, objectPath) { return }
                do { try Files.unlink(objectPath) } catch where error.errno == ENOENT {}
            }
        }
        throw SystemError("link", objectPath, errno: EEXIST)
    }

    /// Hashes a file's bytes `start..<length` onto `continuing` (the S3 store's local buffer too).
    package static func hash(fd: Int32, from start: Int64, to length: Int64, continuing: ResumableSHA256, path: String) throws(SystemError) -> ResumableSHA256 {
        var hasher = continuing
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 1 << 20, alignment: 16)
        defer { buffer.deallocate() }
        var position = start
        while position < length {
            let want = Int(min(Int64(buffer.count), length - position))
            let n = pread(fd, buffer.baseAddress, want, off_t(position))
            if n < 0 {
                if currentErrno() == EINTR { continue }
                throw .last("read", path)
            }
            if n == 0 { throw SystemError("read", "\(path) ended early", errno: EIO) }
            hasher.update(bufferPointer: UnsafeRawBufferPointer(rebasing: buffer[0..<n]))
            position += Int64(n)
        }
        return hasher
    }
}
