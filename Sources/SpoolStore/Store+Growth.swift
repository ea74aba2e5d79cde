import SpoolSystem

/// Uploads whose length is not known when they start (an HTTP body sent chunked):
/// their row's `size` is the space reserved for them so far, grown in steps as
/// bytes arrive, each step admitted against the same limits as a declared size,
/// and settled to the bytes received once the body has ended.
extension Store {
    /// Grows `upload`'s reservation to hold at least `needed` bytes, and up to
    /// `wanted` where the limits leave room, so that a step covers many writes.
    /// Also records `received`, so the space its bytes already take on disk is
    /// not counted twice (once as used, once as reserved).
    /// Throws `.refused` when not even `needed` fits: the file size limit, the
    /// token's byte quota, or the space that must stay free.
    public func grow(
        _ upload: inout OpenUpload, received: Int64, needed: Int64, wanted: Int64, limits: AdmissionLimits, quota: TokenQuota?
    ) throws(StoreError) {
        if needed > limits.maxFileSize { throw .refused(.tooLarge(size: needed, limit: limits.maxFileSize)) }
        upload.size = try catalog.grow(
            id: upload.id, current: upload.size, received: received, needed: needed, wanted: wanted, limits: limits,
            quota: quota, free: freeBytesNow)
    }

    /// The body of unknown length has ended at `received` bytes: that is its size
    /// from now on, and what it reserved beyond that is given back.
    public func settle(_ upload: inout OpenUpload, received: Int64) throws(StoreError) {
        try catalog.settle(id: upload.id, received: received)
        upload.size = received
    }
}
