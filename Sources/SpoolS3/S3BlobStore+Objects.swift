#if canImport(Glibc)
import Glibc
#endif
import Crypto
import SpoolProtocol
import SpoolStore
import SpoolSystem

extension S3BlobStore {
    // MARK: Publishing

    /// Each upload on its own: S3 has no batch barrier to share. Durable when S3
    /// answered the PUT or the completion (it answers after its own commit).
    public func publish(_ items: [(upload: OpenUpload, sha256: String)]) throws(StoreError) -> [StoreError?] {
        items.map { item in
            do throws(SystemError) {
                try publish(item.upload, sha256: item.sha256)
                return nil
            } catch {
                return .system(error)
            }
        }
    }

    func publish(_ upload: OpenUpload, sha256: String) throws(SystemError) {
        let w = try state(upload.id)
        let key = objectKey(sha256: sha256)
        if let begun = w.manifest {
            var manifest = begun
            if w.buffered > 0 { manifest = try storePart(upload, w, last: true) }
            try complete(manifest, as: key, id: upload.id)
        } else {
            // Never begun as parts: the whole object in one conditional PUT, whose
            // signed hash is the object's own (S3 checks the bytes against it).
            let body = RequestBody.file(fd: upload.fd, offset: Int64(Self.header), count: w.buffered)
            _ = try Self.io("store object") { () throws(S3Error) in try client.put(key, body: body, sha256: sha256, ifAbsent: true) }
        }
        try? Files.unlink(upload.tempPath)
    }

    /// Completes a multipart upload as the object `key`, unless the object is
    /// there already (the same bytes: it is named by them). RGW ignores
    /// `If-None-Match` on completion, so the object is looked for first.
    func complete(_ manifest: StagingManifest, as key: String, id: String) throws(SystemError) {
        let parts = manifest.parts.map { (number: $0.number, etag: $0.etag) }
        try Self.io("complete object") { () throws(S3Error) in
            if try client.size(key) != nil {
                try? client.abortMultipartUpload(manifest.key, uploadID: manifest.uploadID)
            } else {
                switch try client.completeMultipartUpload(manifest.key, uploadID: manifest.uploadID, parts: parts, ifAbsent: true) {
                case .completed, .exists: break
                case .noSuchUpload:
                    guard try client.size(manifest.key) != nil else {
                        throw .status(operation: "CompleteMultipartUpload", code: 404, s3Code: "NoSuchUpload", message: "its parts are gone")
                    }
                }
                if manifest.key != key {
                    try client.copy(from: manifest.key, to: key)
                    try client.delete(manifest.key)
                }
            }
            try client.delete(manifestKey(id: id))
        }
    }

    // MARK: Objects

    public func objectSize(sha256: String) -> Int64? {
        (try? client.size(objectKey(sha256: sha256))) ?? nil
    }

    public func removeObject(sha256: String) throws(SystemError) -> Bool {
        let key = objectKey(sha256: sha256)
        return try Self.io("remove object") { () throws(S3Error) in
            guard try client.size(key) != nil else { return false }
            try client.delete(key)
            return true
        }
    }

    public func objectNames() throws(SystemError) -> [String] {
        let prefix = client.key("sha256/")
        let listed = try Self.io("list objects") { () throws(S3Error) in try client.list(prefix: prefix) }
        return listed.compactMap { entry in
            let name = entry.key.split(separator: "/").last.map(String.init) ?? ""
            return Checksum.normalize(name) == name ? name : nil
        }.sorted()
    }

    public func hashObject(sha256: String) throws(SystemError) -> String {
        var hasher = SHA256()
        let found = try Self.io("read object") { () throws(S3Error) in
            try client.get(objectKey(sha256: sha256)) { hasher.update(bufferPointer: $0) }
        }
        guard found else { throw SystemError("read", objectLocation(sha256: sha256), errno: ENOENT) }
        return Checksum.hex(hasher.finalize())
    }

    /// The range streamed from S3 (a ranged GET; none for the whole object),
    /// read a piece at a time as the client takes it.
    public func openObject(sha256: String, size: Int64, range: Range<Int64>) throws(SystemError) -> ObjectBytes {
        let whole = range == 0..<size
        let reader = try Self.io("read object") { () throws(S3Error) in
            try client.openRead(objectKey(sha256: sha256), range: whole ? nil : range)
        }
        guard let reader else { throw SystemError("open", objectLocation(sha256: sha256), errno: ENOENT) }
        guard reader.total == size, reader.length == Int64(range.count) else {
            reader.close()
            throw SystemError("read", "\(objectLocation(sha256: sha256)) (\(reader.total) bytes, its record says \(size))", errno: EIO)
        }
        return .stream(reader)
    }

    public func quarantineObject(sha256: String) throws(SystemError) -> String {
        let key = objectKey(sha256: sha256)
        let target = client.key("quarantine/\(sha256)")
        try Self.io("quarantine object") { () throws(S3Error) in
            try client.copy(from: key, to: target)
            try client.delete(key)
        }
        return "\(client.location.url)quarantine/\(sha256)"
    }

    /// A local buffer is moved aside on this host; what S3 holds of it stays for the store's expiry.
    public func quarantineStaging(named name: String) throws(SystemError) -> String {
        let target = directory.spoolPath + "/quarantine/tmp"
        _ = try Files.makeDirectories(target)
        let destination = target + "/" + name
        try Files.rename(directory.tempPath + "/" + name, destination)
        return destination
    }

    public func objectLocation(sha256: String) -> String {
        "\(client.location.url)sha256/\(sha256.prefix(2))/\(sha256)"
    }

    public func stagingLocation(named name: String) -> String { directory.tempPath + "/" + name }

    /// An S3 store does not fill up as a disk does: what limits uploads is the
    /// local buffer's disk, one part per upload at most.
    public func freeBytes() throws(SystemError) -> Int64 { Int64.max / 4 }
}
