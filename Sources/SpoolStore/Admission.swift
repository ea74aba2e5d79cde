#if canImport(Glibc)
import Glibc
#endif
import SpoolSystem

/// What an upload must fit within to be accepted, checked before a byte is written.
public struct AdmissionLimits: Sendable {
    /// Largest declared size accepted.
    public var maxFileSize: Int64 = 1 << 40
    /// Free space that must remain on the spool's file system once every upload in
    /// flight (and this one) has arrived.
    public var minFreeBytes: Int64 = 1 << 30

    public init() {}
}

/// Why an upload was turned away at declaration.
public enum Refusal: Error, Equatable, Sendable, CustomStringConvertible {
    case tooLarge(size: Int64, limit: Int64)
    case quotaBytes(used: Int64, size: Int64, quota: Int64)
    case quotaFiles(used: Int, quota: Int)
    case insufficientStorage(free: Int64, reserved: Int64, size: Int64, minimum: Int64)
    /// The server's pre-create hook said no (docs/HOOKS.md); the hook's words.
    case byPolicy(String)

    public var description: String {
        switch self {
        case .tooLarge(let size, let limit):
            "\(size) bytes is over this server's limit of \(limit) bytes per file"
        case .quotaBytes(let used, let size, let quota):
            "quota exceeded: \(used) bytes stored or in flight + \(size) > \(quota) bytes"
        case .quotaFiles(let used, let quota):
            "quota exceeded: \(used) files stored or in flight, the limit is \(quota)"
        case .insufficientStorage(let free, let reserved, let size, let minimum):
            "not enough space: \(free) bytes free, \(reserved) reserved for uploads in flight, \(size) asked, "
                + "\(minimum) must stay free; try again later"
        case .byPolicy(let message): message
        }
    }

    /// A quota or size limit will not change by retrying; space may free up.
    public var isTransient: Bool {
        if case .insufficientStorage = self { return true }
        return false
    }
}

extension Store {
    /// Free bytes for an unprivileged writer where the blobs are.
    public func freeBytes() throws(StoreError) -> Int64 {
        do { return try blobs.freeBytes() } catch { throw .system(error) }
    }

    /// The free space as admission reads it, inside the catalog's transaction.
    var freeBytesNow: @Sendable () throws(StoreError) -> Int64 {
        let blobs = self.blobs
        return { () throws(StoreError) -> Int64 in
            do throws(SystemError) { return try blobs.freeBytes() } catch { throw .system(error) }
        }
    }
}

extension SQLCatalog {
    /// Inside the transaction that inserts the upload, so that two workers
    /// admitting uploads at once see each other's reservations.
    func admit(
        _ db: DB, _ new: NewUpload, limits: AdmissionLimits, quota: TokenQuota?, free: () throws(StoreError) -> Int64
    ) throws(StoreError) {
        if new.size > limits.maxFileSize { throw .refused(.tooLarge(size: new.size, limit: limits.maxFileSize)) }
        if let quota, let name = new.token, quota.bytes != nil || quota.files != nil {
            // Running totals kept by triggers (migrations/0005_token_usage.sql); no row: nothing yet.
            let (bytes, files) = try db.query("SELECT bytes, files FROM token_usage WHERE token = ?", [.text(name)]) {
                ($0.int(0), Int($0.int(1)))
            }.first ?? (0, 0)
            if let limit = quota.files, files + 1 > limit { throw .refused(.quotaFiles(used: files, quota: limit)) }
            if let limit = quota.bytes, bytes + new.size > limit {
                throw .refused(.quotaBytes(used: bytes, size: new.size, quota: limit))
            }
        }
        // A running total kept by triggers (migrations/0004_reserved_bytes.sql).
        let reserved = try db.query("SELECT total FROM reserved_bytes WHERE id = 1") { $0.int(0) }.first ?? 0
        let free = try free()
        if free - reserved - new.size < limits.minFreeBytes {
            throw .refused(.insufficientStorage(free: free, reserved: reserved, size: new.size, minimum: limits.minFreeBytes))
        }
    }
}
