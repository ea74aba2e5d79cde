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
        let (id, current, token) = (upload.id, upload.size, try tokenOf(upload.id))
        var granted: Int64 = 0
        try together { db throws(StoreError) in
            var allowed = min(max(wanted, needed), limits.maxFileSize)
            if let limit = quota?.bytes, let token {
                // The token's total counts this upload at its current reservation.
                let used = try db.query("SELECT bytes FROM token_usage WHERE token = ?", [.text(token)]) { $0.int(0) }.first ?? 0
                let room = limit - used
                if needed - current > room { throw .refused(.quotaBytes(used: used, size: needed, quota: limit)) }
                allowed = min(allowed, current + room)
            }
            // The total counts this upload's unwritten reservation as the row had it.
            let reserved = try db.query("SELECT total FROM reserved_bytes WHERE id = 1") { $0.int(0) }.first ?? 0
            let ownReserved = try db.query("SELECT size - received FROM uploads WHERE id = ?", [.text(id)]) { $0.int(0) }.first ?? 0
            let free = try self.freeBytes()
            // Bytes written since the row last counted them are already gone from `free`.
            let othersReserved = reserved - ownReserved
            let room = free - othersReserved - limits.minFreeBytes
            if needed - received > room {
                throw .refused(.insufficientStorage(free: free, reserved: othersReserved, size: needed, minimum: limits.minFreeBytes))
            }
            allowed = min(allowed, received + room)
            try db.run("UPDATE uploads SET size = ?, received = ? WHERE id = ?", [.integer(allowed), .integer(received), .text(id)])
            granted = allowed
        }
        upload.size = granted
    }

    /// The body of unknown length has ended at `received` bytes: that is its size
    /// from now on, and what it reserved beyond that is given back.
    public func settle(_ upload: inout OpenUpload, received: Int64) throws(StoreError) {
        let id = upload.id
        try together { db throws(StoreError) in
            try db.run("UPDATE uploads SET size = ?, received = ? WHERE id = ?", [.integer(received), .integer(received), .text(id)])
        }
        upload.size = received
    }

    private func tokenOf(_ id: String) throws(StoreError) -> String? {
        try upload(id: id)?.token
    }
}
