#if canImport(Glibc)
import Glibc
#endif
import SpoolProtocol
import SpoolSystem

extension Store {
    /// Marks the uploads a dead worker left `receiving` (with nil: every such upload,
    /// at start-up, when no worker is alive) as `interrupted`. What their temporary
    /// files hold is fsynced first and recorded as received, so a resume starts
    /// from bytes that are on disk. Returns the uploads it changed.
    @discardableResult
    public func interruptReceiving(workerPID: Int?, reason: String) throws(StoreError) -> [(id: String, received: Int64)] {
        let ids = try catalog.receivingIDs(workerPID: workerPID)
        var changed: [(id: String, received: Int64)] = []
        for id in ids {
            // A writer alive on another host sharing the catalog (worker ids are not
            // unique across hosts) holds the lease: its upload is left alone. After a
            // worker's death its connection may take a moment to close: asked again.
            guard try workerPID == nil ? catalog.takeLease(id: id) : leaseOfAWriterThatDied(id: id) else { continue }
            defer { catalog.releaseLease(id: id) }
            guard blobs.hasStaging(id: id) else {
                // Never named (a small upload written whole to an unnamed file) or gone:
                // nothing could resume it, so it holds no space waiting for one.
                try catalog.failResumable(id: id, reason: "\(reason); no bytes were kept")
                continue
            }
            let received: Int64
            do {
                received = try blobs.durableStagedSize(id: id)
            } catch where error.errno == ENOENT {
                try catalog.failResumable(id: id, reason: "\(reason); no bytes were kept")
                continue
            } catch {
                // A size the disk may not hold is no count to record: the row stays
                // `receiving` (a resume still finds it) and the caller tries again.
                throw .system(error)
            }
            if try catalog.markInterrupted(id: id, received: received, reason: reason) { changed.append((id, received)) }
        }
        return changed
    }

    /// Removes temporary files that no resumable upload owns. Only safe while no
    /// worker runs (the master calls it before forking). Returns the names removed.
    @discardableResult
    public func removeStrayTempFiles() throws(StoreError) -> [String] {
        let names: [String]
        do { names = try blobs.stagingNames() } catch { throw .system(error) }
        let live = Set(try catalog.resumableIDs())
        var removed: [String] = []
        for name in names.sorted() {
            let id = name.hasSuffix(".part") ? String(name.dropLast(5)) : ""
            if live.contains(id) { continue }
            do { try blobs.removeStagingNamed(name) } catch { throw .system(error) }
            removed.append(name)
        }
        return removed
    }
}

extension Store {
    /// Expires `interrupted` uploads last touched before `cutoff` (an ISO time):
    /// their temporary files are deleted and their rows become `expired`. One being
    /// resumed right now (its file is locked) is left alone. Returns the ids expired.
    @discardableResult
    public func expireInterrupted(before cutoff: String) throws(StoreError) -> [String] {
        let ids = try catalog.interruptedIDs(before: cutoff)
        var expired: [String] = []
        for id in ids {
            if try expireOne(id) { expired.append(id) }
        }
        return expired
    }

    /// Expires one upload, holding its file's lock so no resume can be writing it.
    /// The row is recorded first and the file removed after: a crash between leaves
    /// an `expired` row and a file no upload owns (removed at the next start), never
    /// an upload that looks resumable without its bytes.
    private func expireOne(_ id: String) throws(StoreError) -> Bool {
        // Being resumed on another host sharing the catalog: left alone.
        guard try catalog.takeLease(id: id) else { return false }
        defer { catalog.releaseLease(id: id) }
        let held: OpenUpload?
        switch (try? blobs.holdStaging(id: id)) ?? .gone {
        case .busy: return false  // being resumed right now
        case .gone: held = nil
        case .opened(let upload): held = upload
        }
        let changed: Bool
        do {
            changed = try catalog.expire(id: id)
        } catch {
            if let held { blobs.close(held) }
            throw error
        }
        CrashPoint.reach("expire-after-commit")
        if let held {
            if changed { blobs.discard(held) } else { blobs.close(held) }
        }
        return changed
    }
}
