#if canImport(Glibc)
import Glibc
#endif
import SpoolProtocol
import SpoolStore
import SpoolSystem

/// Blobs in an S3-compatible store (docs/SCALING.md). An upload's bytes wait in a
/// small local buffer (`spool/tmp/<id>.part`, at most one part) and go to S3 as
/// multipart parts as each part fills; what S3 holds of it is described by a
/// manifest object next to it (`StagingManifest`), so a resume continues from the
/// last stored part with the hash state saved there. Published as
/// `sha256/ab/<sha256>`, never over an object that is there (content-addressed:
/// one that is there holds the same bytes).
///
/// The local buffer starts with 8 bytes: the upload offset of its first byte. A
/// crash after a part and its manifest were stored but before the buffer was
/// emptied leaves a buffer that starts before what S3 holds; it is emptied at
/// the resume. Its `flock` is the one-writer rule on this host; across hosts that
/// is the catalog's lease (issue 20, with the PostgreSQL catalog).
///
/// (`@unchecked Sendable`: the state of uploads being written is only touched under `lock`.)
public final class S3BlobStore: BlobStore, @unchecked Sendable {
    public let client: S3Client
    public let directory: DataDirectory
    /// Bytes per part (S3: at least 5 MiB but the last; a multiple of 64 so the hash state can be saved).
    public let partSize: Int64
    static let header = 8

    /// An upload open for writing in this process.
    final class Writing {
        var manifest: StagingManifest?
        /// Upload offset of the buffer's first byte (= what the stored parts hold).
        var start: Int64
        /// Bytes in the buffer.
        var buffered: Int64 = 0
        /// Every byte so far, and the buffer's bytes alone (the part's own signed hash).
        var hasher: ResumableSHA256
        var partHasher = ResumableSHA256()

        init(manifest: StagingManifest?, start: Int64, hasher: ResumableSHA256) {
            self.manifest = manifest
            self.start = start
            self.hasher = hasher
        }
    }

    let lock = Lock()
    var writing: [String: Writing] = [:]

    public init(client: S3Client, directory: DataDirectory, partSize: Int64 = 8 << 20) {
        self.client = client
        self.directory = directory
        self.partSize = partSize
    }

    func state(_ id: String) throws(SystemError) -> Writing {
        guard let w = lock.withLock({ writing[id] }) else { throw SystemError("write", "upload \(id) is not open here", errno: EBADF) }
        return w
    }

    // MARK: Keys

    public func objectKey(sha256: String) -> String { client.key("sha256/\(sha256.prefix(2))/\(sha256)") }
    func stagingKey(id: String) -> String { client.key("staging/\(id)") }
    func manifestKey(id: String) -> String { client.key("staging/\(id).manifest") }

    /// S3's failures as the file errors the blob store protocol speaks (EIO, with the store's words).
    static func io<T>(_ operation: String, _ body: () throws(S3Error) -> T) throws(SystemError) -> T {
        do { return try body() } catch { throw SystemError(operation, error.description, errno: EIO) }
    }

    func manifest(id: String) throws(SystemError) -> StagingManifest? {
        var bytes: [UInt8] = []
        let found = try Self.io("read manifest") { () throws(S3Error) in
            try client.get(manifestKey(id: id)) { bytes.append(contentsOf: $0) }
        }
        guard found else { return nil }
        guard let manifest = StagingManifest(String(decoding: bytes, as: UTF8.self)) else {
            throw SystemError("read", "\(client.location.url)staging/\(id).manifest is damaged", errno: EIO)
        }
        return manifest
    }

    func saveManifest(_ manifest: StagingManifest, id: String) throws(SystemError) {
        let bytes = Array(manifest.text.utf8)
        _ = try Self.io("write manifest") { () throws(S3Error) in
            try client.put(manifestKey(id: id), body: .bytes(bytes), sha256: S3Client.sha256Hex(bytes), ifAbsent: false)
        }
    }

    // MARK: The local buffer

    static func writeHeader(_ fd: Int32, start: Int64, path: String) throws(SystemError) {
        var value = start.littleEndian
        let n = withUnsafeBytes(of: &value) { pwrite(fd, $0.baseAddress, header, 0) }
        guard n == header else { throw .last("write", path) }
    }

    static func readHeader(_ fd: Int32, path: String) throws(SystemError) -> Int64? {
        var value: Int64 = 0
        let n = withUnsafeMutableBytes(of: &value) { pread(fd, $0.baseAddress, header, 0) }
        if n == 0 { return nil }
        guard n == header else { throw SystemError("read", "\(path) is damaged (no header)", errno: EIO) }
        return Int64(littleEndian: value)
    }

    static func pwriteAll(_ fd: Int32, _ bytes: UnsafeRawBufferPointer, at offset: Int64, path: String) throws(SystemError) {
        var done = 0
        while done < bytes.count {
            let n = pwrite(fd, bytes.baseAddress! + done, bytes.count - done, off_t(offset) + off_t(done))
            if n < 0 {
                if currentErrno() == EINTR { continue }
                throw .last("write", path)
            }
            done += n
        }
    }

    /// Hashes buffer bytes `from..<to` (buffer offsets, after the header) onto `hasher`.
    static func hashBuffer(_ fd: Int32, from: Int64, to: Int64, onto hasher: inout ResumableSHA256, path: String) throws(SystemError) {
        let skip = Int64(header)
        hasher = try DirectoryBlobStore.hash(fd: fd, from: skip + from, to: skip + to, continuing: hasher, path: path)
    }

    /// Sends what the buffer holds as the next part and empties it. `last`: the
    /// final part at publishing, which may be short and whose hash state is not saved.
    func storePart(_ upload: OpenUpload, _ w: Writing, last: Bool) throws(SystemError) -> StagingManifest {
        var manifest: StagingManifest
        if let existing = w.manifest {
            manifest = existing
        } else {
            // Named after its content when that is declared (no copy at the end), else staged.
            let key = upload.sha256.isEmpty ? stagingKey(id: upload.id) : objectKey(sha256: upload.sha256)
            let uploadID = try Self.io("start multipart upload") { () throws(S3Error) in try client.createMultipartUpload(key) }
            manifest = StagingManifest(key: key, uploadID: uploadID)
        }
        let number = manifest.parts.count + 1
        let partSHA = Checksum.hex(w.partHasher.finalize())
        let etag = try Self.io("store part") { () throws(S3Error) in
            try client.uploadPart(
                manifest.key, uploadID: manifest.uploadID, number: number,
                body: .file(fd: upload.fd, offset: Int64(Self.header), count: w.buffered), sha256: partSHA)
        }
        if last {
            manifest.parts.append(.init(number: number, size: w.buffered, etag: etag, hash: .init(words: [], length: 0)))
            return manifest
        }
        guard let saved = w.hasher.saved else {
            throw SystemError("write", "part \(number) of \(upload.id) does not end on a 64-byte boundary", errno: EINVAL)
        }
        manifest.parts.append(.init(number: number, size: w.buffered, etag: etag, hash: saved))
        try saveManifest(manifest, id: upload.id)
        w.manifest = manifest
        w.start += w.buffered
        w.buffered = 0
        w.partHasher = ResumableSHA256()
        // Emptied first, durably, then the header moved on: a crash anywhere
        // leaves a buffer whose header is at or before what S3 holds, and one
        // before holds only bytes S3 has (emptied by the resume, `reconcile`).
        try Files.truncate(upload.fd, to: Int64(Self.header), path: upload.tempPath)
        try Files.fdatasync(upload.fd, path: upload.tempPath)
        try Self.writeHeader(upload.fd, start: w.start, path: upload.tempPath)
        return manifest
    }
}

extension S3BlobStore {
    /// The blob store maker for `--objects s3://…` (each process makes its own
    /// client and connections). The location is checked now, so a wrong setting
    /// stops `serve` at once; the bucket is made, if missing, by each process
    /// that opens the store (an unreachable store is an error then).
    public static func maker(objects: String, partSize: Int64, environment: [String: String]) throws(S3Error) -> BlobStoreMaker {
        let location = try S3Location(objects, environment: environment)
        return { (directory: DataDirectory) throws(StoreError) -> any BlobStore in
            let client = S3Client(location)
            do throws(S3Error) { try client.createBucket() } catch { throw .system(SystemError("open", error.description, errno: EIO)) }
            return S3BlobStore(client: client, directory: directory, partSize: partSize)
        }
    }
}
