#if canImport(Glibc)
import Glibc
#endif
import SpoolProtocol
import SpoolSystem

extension Store {
    /// Records a new upload as `receiving` and opens its temporary file.
    ///
    /// `unnamed`: for a body that will be written at once and finished on the spot
    /// (protocol 2's small uploads), a file with no name in the object's directory
    /// (`O_TMPFILE`), linked into place when complete. That saves creating and
    /// removing an entry in `tmp/` for every small upload; nothing is lost, since
    /// such an upload is never resumed (its client has not seen its id). Used when
    /// the checksum is declared and the system offers it, else a named file as usual.
    public func begin(
        _ new: NewUpload, id: String, limits: AdmissionLimits = AdmissionLimits(), quota: TokenQuota? = nil,
        unnamed: Bool = false
    ) throws(StoreError) -> OpenUpload {
        try catalog.insertReceiving(new, id: id, limits: limits, quota: quota, free: freeBytesNow)
        let upload: OpenUpload
        do {
            upload = try blobs.createStaging(id: id, size: new.size, sha256: new.sha256, unnamed: unnamed)
        } catch {
            try? mark(id, .failed, received: 0, error: error.description, finished: true)
            throw .system(error)
        }
        // A new id: nobody else can hold its lease, but a resume on another host must find it taken.
        if !upload.unnamed {
            do throws(StoreError) {
                _ = try catalog.takeLease(id: id)
            } catch {
                blobs.discard(upload)
                try? mark(id, .failed, received: 0, error: error.description, finished: true)
                throw error
            }
        }
        return upload
    }

    /// Finishes an upload whose body has fully arrived. Success is returned only
    /// once the blob is published durably (for the directory: fsynced, linked into
    /// place, its directory fsynced) and then the row committed, in that order
    /// (docs/DESIGN.md explains why that order). Lets the writer go in every case.
    /// `declared`: the checksum the client sent after the body, for an upload
    /// announced without one; nil to check against the one given when it was opened.
    public func complete(_ upload: OpenUpload, received: Int64, sha256: String, declared: String? = nil)
        throws(StoreError) -> CompletionOutcome
    {
        CrashPoint.reach("upload-after-write")
        let expected = declared ?? upload.sha256
        guard received == upload.size, sha256 == expected else {
            letGoDiscarding(upload)
            let reason = received != upload.size
                ? "received \(received) of \(upload.size) bytes"
                : Self.mismatchReason(declared: expected, received: sha256)
            // A checksum sent after the body is the declared one all the same.
            if let declared, upload.sha256.isEmpty { try catalog.recordChecksum(id: upload.id, sha256: declared) }
            try mark(upload.id, .failed, received: received, error: reason, finished: true)
            return .checksumMismatch(actual: sha256)
        }
        let objectPath = blobs.objectLocation(sha256: sha256)
        if upload.sha256 != sha256 {
            // The checksum came after the body, so the row does not name this content
            // yet. Name it before the object appears: `delete`, `purge` and the audit
            // keep an object that a row on its way to `complete` names, and must see
            // this one before the rename, or they could remove the object under it.
            do throws(StoreError) {
                try catalog.recordChecksum(id: upload.id, sha256: sha256)
            } catch {
                letGoDiscarding(upload)
                try? mark(upload.id, .failed, received: received, error: "could not record its checksum: \(error)", finished: true)
                throw error
            }
        }
        do throws(StoreError) {
            if let error = try blobs.publish([(upload, sha256)]).first ?? nil { throw error }
            letGo(upload)
        } catch {
            letGoDiscarding(upload)
            try? mark(upload.id, .failed, received: received, error: error.description, finished: true)
            // It may have been named before the failure: an object nothing names goes.
            _ = try? removeObjectIfUnreferenced(sha256: sha256, event: upload.id)
            throw error
        }
        do throws(StoreError) {
            try mark(upload.id, .complete, received: received, error: nil, finished: true)
        } catch {
            // The object is named and durable, but its row could not say so: nothing was
            // acknowledged, so the upload fails (if the database lets it) rather than stay
            // `receiving`, and its object goes when nothing else names it.
            try? mark(upload.id, .failed, received: received, error: "could not record it complete: \(error)", finished: true)
            _ = try? removeObjectIfUnreferenced(sha256: sha256, event: upload.id)
            throw error
        }
        CrashPoint.reach("upload-after-commit")
        return .stored(objectPath: objectPath)
    }

    /// Why an upload whose bytes hash to something else than declared failed.
    static func mismatchReason(declared: String, received: String) -> String {
        "checksum mismatch: declared \(declared), received \(received)"
    }

    /// The connection went away mid-body: keep what arrived, durably, for a later resume.
    public func interrupt(_ upload: OpenUpload, received: Int64, reason: String) throws(StoreError) {
        if upload.unnamed {  // nothing to resume from: such an upload is written whole or not at all
            try fail(upload, received: received, reason: reason)
            return
        }
        do { try letGoKeeping(upload) } catch { throw .system(error) }
        try mark(upload.id, .interrupted, received: received, error: reason, finished: false)
    }

    /// The upload cannot go on (a write failed): drop its bytes and record why.
    public func fail(_ upload: OpenUpload, received: Int64, reason: String) throws(StoreError) {
        letGoDiscarding(upload)
        try mark(upload.id, .failed, received: received, error: reason, finished: true)
    }
}
