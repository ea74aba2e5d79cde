#if canImport(Glibc)
import Glibc
#endif
import SpoolSystem

/// One writer per upload: on this machine the staging's lock (the blob store),
/// across machines that share a catalog the catalog's lease (`Catalog.takeLease`).
/// A writer holds both from the moment it opens an upload's staging until it lets
/// it go, and every way of letting go goes through here.
extension Store {
    /// Lets the writer go, the staging left as it is (published, or kept).
    func letGo(_ upload: OpenUpload) {
        blobs.close(upload)
        catalog.releaseLease(id: upload.id)
    }

    /// Makes what is staged durable and lets the writer go: kept for a resume.
    func letGoKeeping(_ upload: OpenUpload) throws(SystemError) {
        defer { catalog.releaseLease(id: upload.id) }
        try blobs.keep(upload)
    }

    /// Lets the writer go and removes what was staged.
    func letGoDiscarding(_ upload: OpenUpload) {
        blobs.discard(upload)
        catalog.releaseLease(id: upload.id)
    }

    /// The lease of an upload whose writer may have just died: its connection to
    /// the catalog can take a moment to close, so a lease held elsewhere is asked
    /// again for up to a second before the upload is taken to be alive.
    func leaseOfAWriterThatDied(id: String) throws(StoreError) -> Bool {
        for attempt in 0..<20 {
            if try catalog.takeLease(id: id) { return true }
            if attempt < 19 { usleep(50_000) }
        }
        return false
    }
}
