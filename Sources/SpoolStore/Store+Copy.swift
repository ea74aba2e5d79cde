#if canImport(Glibc)
import Glibc
#endif
import Crypto
import SpoolProtocol
import SpoolSystem

/// What `copy(to:)` did.
public struct CopyReport: Sendable, Equatable {
    public var objectsCopied = 0
    public var objectsPresent = 0
    /// Objects whose bytes no longer hash to their name: not copied (`admin audit` says more).
    public var objectsDamaged: [String] = []
    public var uploads = 0
    public var events = 0
    public var tokens = 0
    /// Uploads on their way, not copied (their staging stays here).
    public var skippedInProgress = 0
}

extension Store {
    /// Copies this installation into `target` (`spoold admin copy-to`): every
    /// object its blob store lacks (`objects`), each read back and hashed on the
    /// way, then the catalog's rows (`rows`) into its empty catalog, in that order,
    /// so no copied `complete` row names an object the target does not have.
    /// Nothing here is changed.
    public func copy(to target: Store, objects: Bool, rows: Bool, progress: (String) -> Void = { _ in }) throws(StoreError)
        -> CopyReport
    {
        var report = CopyReport()
        if objects {
            let names: [String]
            do { names = try blobs.objectNames() } catch { throw .system(error) }
            for sha256 in names {
                if target.blobs.objectSize(sha256: sha256) != nil {
                    report.objectsPresent += 1
                    continue
                }
                if try copyObject(sha256, to: target.blobs) {
                    report.objectsCopied += 1
                    progress("copied object \(sha256)")
                } else {
                    report.objectsDamaged.append(sha256)
                }
            }
        }
        if rows {
            let copy = try catalog.exportRows()
            try target.catalog.importRows(copy)
            (report.uploads, report.events, report.tokens) = (copy.count("uploads"), copy.count("events"), copy.count("tokens"))
            report.skippedInProgress = copy.skippedInProgress
        }
        return report
    }

    /// One object through the target's staging and publish, as an upload's bytes
    /// go; false when its bytes do not hash to its name (nothing is published).
    private func copyObject(_ sha256: String, to target: any BlobStore) throws(StoreError) -> Bool {
        guard let size = blobs.objectSize(sha256: sha256) else { return true }
        let source: ObjectBytes
        do { source = try blobs.openObject(sha256: sha256, size: size, range: 0..<size) } catch { throw .system(error) }
        let staging: OpenUpload
        do { staging = try target.createStaging(id: "copy-\(sha256)", size: size, sha256: sha256, unnamed: false) } catch {
            Self.close(source)
            throw .system(error)
        }
        var hasher = SHA256()
        do throws(SystemError) {
            defer { Self.close(source) }
            try Self.read(source, size: size) { (piece: UnsafeRawBufferPointer) throws(SystemError) in
                hasher.update(bufferPointer: piece)
                try target.append(staging, piece)
            }
        } catch {
            target.discard(staging)
            throw .system(error)
        }
        guard Checksum.hex(hasher.finalize()) == sha256 else {
            target.discard(staging)
            return false
        }
        do throws(StoreError) {
            if let error = try target.publish([(staging, sha256)]).first ?? nil { throw error }
        } catch {
            target.discard(staging)
            throw error
        }
        target.close(staging)
        return true
    }

    /// Gives an object's bytes to `body` in pieces of 1 MiB at most.
    private static func read(
        _ bytes: ObjectBytes, size: Int64, _ body: (UnsafeRawBufferPointer) throws(SystemError) -> Void
    ) throws(SystemError) {
        var buffer = [UInt8](repeating: 0, count: 1 << 20)
        var offset: Int64 = 0
        while offset < size {
            let count: Int
            switch bytes {
            case .file(let fd):
                let n = buffer.withUnsafeMutableBytes { pread(fd, $0.baseAddress, $0.count, off_t(offset)) }
                if n < 0 { throw .last("read") }
                count = n
            case .stream(let stream):
                var filled = 0
                _ = try stream.read(max: buffer.count) { piece in
                    buffer.withUnsafeMutableBytes { $0.baseAddress!.copyMemory(from: piece.baseAddress!, byteCount: piece.count) }
                    filled = piece.count
                }
                count = filled
            }
            guard count > 0 else { throw SystemError("read", "an object ended \(size - offset) bytes early", errno: EIO) }
            let failed = buffer.withUnsafeBytes { raw -> SystemError? in
                do throws(SystemError) { try body(UnsafeRawBufferPointer(rebasing: raw[0..<count])) } catch { return error }
                return nil
            }
            if let failed { throw failed }
            offset += Int64(count)
        }
    }

    private static func close(_ bytes: ObjectBytes) {
        switch bytes {
        case .file(let fd): Files.close(fd)
        case .stream(let stream): stream.close()
        }
    }
}
