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
        let ids = try locked { db throws(StoreError) in
            if let workerPID {
                return try db.query(
                    "SELECT id FROM uploads WHERE state = 'receiving' AND worker_pid = ?", [.integer(Int64(workerPID))]
                ) { $0.text(0) }
            }
            return try db.query("SELECT id FROM uploads WHERE state = 'receiving'") { $0.text(0) }
        }
        var changed: [(id: String, received: Int64)] = []
        for id in ids {
            guard blobs.hasStaging(id: id) else {
                // Never named (a small upload written whole to an unnamed file) or gone:
                // nothing could resume it, so it holds no space waiting for one.
                try failResumable(id, reason: "\(reason); no bytes were kept")
                continue
            }
            let received: Int64
            do {
                received = try blobs.durableStagedSize(id: id)
            } catch where error.errno == ENOENT {
                try failResumable(id, reason: "\(reason); no bytes were kept")
                continue
            } catch {
                // A size the disk may not hold is no count to record: the row stays
                // `receiving` (a resume still finds it) and the caller tries again.
                throw .system(error)
            }
            let now = UTCTime.now()
            let rows = try locked { db throws(StoreError) in
                try db.transaction { () throws(StoreError) -> Int in
                    let changed = try db.run(
                        """
                        UPDATE uploads SET state = 'interrupted', received = ?, error = ?, updated_at = ?
                        WHERE id = ? AND state = 'receiving'
                        """,
                        [.integer(received), .text(reason), .text(now), .text(id)]
                    )
                    if changed > 0 { try appendEvent(db, id, "interrupted", detail: "\(reason); \(received) bytes kept") }
                    return changed
                }
            }
            if rows > 0 { changed.append((id, received)) }
        }
        return changed
    }

    /// Removes temporary files that no resumable upload owns. Only safe while no
    /// worker runs (the master calls it before forking). Returns the names removed.
    @discardableResult
    public func removeStrayTempFiles() throws(StoreError) -> [String] {
        let names: [String]
        do { names = try blobs.stagingNames() } catch { throw .system(error) }
        let live = Set(try locked { db throws(StoreError) in
            try db.query("SELECT id FROM uploads WHERE state IN ('receiving', 'interrupted')") { $0.text(0) }
        })
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
        let ids = try locked { db throws(StoreError) in
            try db.query("SELECT id FROM uploads WHERE state = 'interrupted' AND updated_at < ?", [.text(cutoff)]) {
                $0.text(0)
            }
        }
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
        let held: OpenUpload?
        switch (try? blobs.holdStaging(id: id)) ?? .gone {
        case .busy: return false  // being resumed right now
        case .gone: held = nil
        case .opened(let upload): held = upload
        }
        let now = UTCTime.now()
        let changed: Int
        do {
            changed = try locked { db throws(StoreError) in
                try db.transaction { () throws(StoreError) -> Int in
                    let changed = try db.run(
                        """
                        UPDATE uploads SET state = 'expired', error = 'not resumed in time', updated_at = ?, finished_at = ?
                        WHERE id = ? AND state = 'interrupted'
                        """,
                        [.text(now), .text(now), .text(id)]
                    )
                    if changed > 0 { try appendEvent(db, id, "expired", detail: "not resumed in time; bytes deleted") }
                    return changed
                }
            }
        } catch {
            if let held { blobs.close(held) }
            throw error
        }
        CrashPoint.reach("expire-after-commit")
        if let held {
            if changed > 0 { blobs.discard(held) } else { blobs.close(held) }
        }
        return changed > 0
    }
}
