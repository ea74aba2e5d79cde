#if canImport(Glibc)
import Glibc
#endif
import Crypto
import SpoolProtocol
import SpoolSystem

/// The SHA-256 state of the first `offset` bytes of an upload, handed from the
/// thread that hashed them to the one that goes on hashing (one owner at a time).
/// A worker keeps the state a tus PATCH ended with, so the next PATCH hashes only
/// its own bytes instead of reading the whole prefix back (quadratic otherwise).
public struct PrefixHash: @unchecked Sendable {
    public var hasher: ResumableSHA256
    public var offset: Int64
    /// How many of those bytes were read back from disk and hashed again to get here.
    public var reread: Int64

    public init(hasher: ResumableSHA256, offset: Int64, reread: Int64 = 0) {
        self.hasher = hasher
        self.offset = offset
        self.reread = reread
    }
}

public enum ResumeOutcome: Sendable {
    /// Open again at `upload.offset`; `prefix` has hashed the bytes before it.
    case opened(OpenUpload, prefix: PrefixHash)
    /// Nothing to send: the upload is already stored.
    case alreadyComplete(UploadRecord)
    /// Another connection (in any worker) is writing this upload right now.
    case busy
    /// No resumable upload has this id and checksum; `reason` says what to do.
    case notResumable(reason: String)
}

extension Store {
    /// Reopens an `interrupted` (or abandoned `receiving`) upload for the client
    /// that knows its id and declared SHA-256. The bytes already on disk are
    /// fsynced before their count is offered as the offset, and hashed again, so
    /// the final check covers the whole file.
    /// Only the token that started an upload (none, for an anonymous one) may resume it.
    /// `sha256` nil (tus): the id alone is the credential, and the row's checksum stays.
    /// `cached`: the hash of a prefix of this upload's bytes kept from an earlier
    /// resume; only the bytes after it are read back.
    public func resume(
        id: String, sha256: String?, token: String? = nil, clientIP: String, clientPort: Int, workerPID: Int,
        cached: PrefixHash? = nil
    ) throws(StoreError) -> ResumeOutcome {
        // The same answer for a wrong id, checksum or token: a guess learns nothing.
        let unknown = ResumeOutcome.notResumable(reason: "no upload \(id) with that checksum; start a new upload")
        // An upload announced without its checksum (`UPLOAD <size> - …`) has none to
        // match yet: the id is its credential, and the checksum given now is recorded.
        guard let row = try upload(id: id), sha256 == nil || row.sha256 == sha256 || row.sha256.isEmpty, row.token == token else {
            return unknown
        }
        let sha256 = sha256 ?? row.sha256
        switch row.state {
        case .complete:
            return .alreadyComplete(row)
        case .failed, .expired, .lost:
            return .notResumable(reason: "upload \(id) is \(row.state.rawValue); start a new upload")
        case .receiving, .interrupted:
            break
        }

        // The lease first: a writer on another host sharing the catalog makes the
        // upload busy here, whatever this host's staging holds (or lacks).
        guard try catalog.takeLease(id: id) else { return .busy }
        let reopened: StagingReopened
        do { reopened = try blobs.reopenStaging(id: id, size: row.size, sha256: sha256) } catch {
            catalog.releaseLease(id: id)
            throw .system(error)
        }
        let upload: OpenUpload
        switch reopened {
        case .gone:
            catalog.releaseLease(id: id)
            // An upload whose staging is gone (expired meanwhile, or never named) has
            // nothing to resume from.
            try catalog.failResumable(id: id, reason: "its temporary file is gone; nothing to resume")
            let now = try self.upload(id: id)
            return .notResumable(reason: "upload \(id) is \(now?.state.rawValue ?? "gone"); start a new upload")
        case .busy:
            catalog.releaseLease(id: id)
            return .busy
        case .opened(let opened):
            upload = opened
        }
        do throws(StoreError) {
            let offset = upload.offset
            if offset > row.size {
                // Cannot happen through the protocols (bodies are framed by the declared
                // size). Truncating would let a hash state cached for the old bytes
                // (in any worker) describe new ones: the upload fails instead.
                letGo(upload)
                try mark(id, .failed, received: offset, error: "its temporary file holds \(offset) bytes, more than its size", finished: true)
                return .notResumable(reason: "upload \(id) failed: its temporary file is longer than its size; start a new upload")
            }
            let usable = cached.flatMap { $0.offset <= offset ? $0 : nil }
            let prefix = try system { () throws(SystemError) in
                try blobs.hashStaged(upload, from: usable?.offset ?? 0, to: offset, continuing: usable?.hasher ?? ResumableSHA256())
            }
            let claimed = try catalog.claimForResume(
                id: id, received: offset, workerPID: workerPID, clientIP: clientIP, clientPort: clientPort, sha256: sha256)
            guard claimed else {
                letGo(upload)
                return .notResumable(reason: "upload \(id) changed state meanwhile; try again")
            }
            return .opened(upload, prefix: PrefixHash(hasher: prefix, offset: offset, reread: offset - (usable?.offset ?? 0)))
        } catch {
            letGo(upload)
            throw error
        }
    }
}
