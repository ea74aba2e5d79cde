import SpoolSystem

/// What the worker and the admin commands do with bytes, through the store
/// (never by path or descriptor of their own), so any `BlobStore` can hold them.
extension Store {
    /// Appends body bytes to an upload's staging.
    public func append(_ upload: OpenUpload, _ bytes: UnsafeRawBufferPointer) throws(SystemError) {
        try blobs.append(upload, bytes)
    }

    /// Starts making a range of the staging durable, without waiting.
    public func startWriteBack(_ upload: OpenUpload, from offset: Int64, count: Int64) {
        blobs.startWriteBack(upload, from: offset, count: count)
    }

    /// Cuts the staging back (tus: a PATCH whose checksum did not match).
    public func truncate(_ upload: OpenUpload, to length: Int64) throws(SystemError) {
        try blobs.truncate(upload, to: length)
    }

    /// A complete upload's bytes in `range` (a file to send them from, or a
    /// stream of them), checked to be an object of its size; the caller closes it.
    public func openObject(of row: UploadRecord, range: Range<Int64>) throws(SystemError) -> ObjectBytes {
        try blobs.openObject(sha256: row.sha256, size: row.size, range: range)
    }

    /// Where an upload's bytes are, and whether they are there: its object once
    /// complete (or lost), its staging while it may be resumed; nil when it keeps none.
    public func bytesLocation(of row: UploadRecord) -> (location: String, present: Bool)? {
        switch row.state {
        case .complete, .lost: (blobs.objectLocation(sha256: row.sha256), blobs.objectSize(sha256: row.sha256) != nil)
        case .receiving, .interrupted: (blobs.stagingLocation(id: row.id), blobs.hasStaging(id: row.id))
        case .failed, .expired: nil
        }
    }
}

/// Writes a whole small body to its staging (`WholeUpload.write`).
public struct StagingWriter {
    let blobs: any BlobStore
    let upload: OpenUpload

    public func write(_ bytes: UnsafeRawBufferPointer) throws(SystemError) {
        try blobs.append(upload, bytes)
    }
}
