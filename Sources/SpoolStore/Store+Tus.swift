/// What tus keeps about an upload beyond its ordinary row (migrations/0006_tus.sql).
public struct TusFields: Sendable, Equatable {
    /// The creation's `Upload-Metadata`, as it came; nil for an upload begun another way.
    public var metadata: String?
    /// Its length is still to be declared by a PATCH (creation-defer-length).
    public var lengthDeferred: Bool
}

extension SQLCatalog {
    /// The upload's row and its tus fields, read together.
    public func tusUpload(id: String) throws(StoreError) -> (UploadRecord, TusFields)? {
        try locked { db throws(StoreError) in
            try db.query(
                "SELECT \(Self.columns), tus_metadata, length_deferred FROM uploads WHERE id = ?", [.text(id)]
            ) { row throws(StoreError) in
                let count = Self.columnCount
                return (try Self.record(row), TusFields(metadata: row.optionalText(count), lengthDeferred: row.int(count + 1) != 0))
            }.first
        }
    }

}

extension Store {
    /// creation-defer-length: a PATCH declares the length of an upload created
    /// without one. The length is admitted as a new upload's would be (size limit,
    /// quota, free space, counting what it reserved already), then fixed for good.
    public func declareLength(
        _ upload: inout OpenUpload, length: Int64, received: Int64, limits: AdmissionLimits, quota: TokenQuota?
    ) throws(StoreError) {
        try grow(&upload, received: received, needed: length, wanted: length, limits: limits, quota: quota)
        try catalog.markLengthDeclared(id: upload.id, length: length)
    }
}
