import SpoolProtocol
import SpoolSystem

/// The rows of uploads on their way: admitted, resumed, interrupted, finished, expired, deleted.
extension SQLCatalog {
    public func insertReceiving(
        _ new: NewUpload, id: String, limits: AdmissionLimits, quota: TokenQuota?,
        free: @escaping @Sendable () throws(StoreError) -> Int64
    ) throws(StoreError) {
        let now = UTCTime.now()
        // Not durable yet: the client has been promised nothing about this upload.
        try together { db throws(StoreError) in
            try self.insertReceiving(db, new, id: id, at: now, limits: limits, quota: quota, free: free)
        }
    }

    public func insertReceiving(
        batch: [(new: NewUpload, id: String, limits: AdmissionLimits, quota: TokenQuota?)],
        free: @escaping @Sendable () throws(StoreError) -> Int64
    ) -> [StoreError?] {
        let now = UTCTime.now()
        return together(batch.map { item in
            let change: Change = { db throws(StoreError) in
                try self.insertReceiving(db, item.new, id: item.id, at: now, limits: item.limits, quota: item.quota, free: free)
            }
            return change
        })
    }

    /// Admits a new upload and records it as `receiving`, with its `created` event.
    func insertReceiving(
        _ db: DB, _ new: NewUpload, id: String, at now: String, limits: AdmissionLimits, quota: TokenQuota?,
        free: () throws(StoreError) -> Int64
    ) throws(StoreError) {
        try admit(db, new, limits: limits, quota: quota, free: free)
        try db.runLater(
            """
            INSERT INTO uploads (id, name, size, received, sha256, client_ip, client_port, state,
                                 worker_pid, created_at, updated_at, token, tus_metadata, length_deferred)
            VALUES (?, ?, ?, 0, ?, ?, ?, 'receiving', ?, ?, ?, ?, ?, ?)
            """,
            [.text(id), .text(new.name), .integer(new.size), .text(new.sha256), .text(new.clientIP),
             .integer(Int64(new.clientPort)), .integer(Int64(new.workerPID)), .text(now), .text(now),
             new.token.map { .text($0) } ?? .null, new.tusMetadata.map { .text($0) } ?? .null,
             .integer(new.lengthDeferred ? 1 : 0)]
        )
        try appendEvent(db, id, "created", client: Store.address(new.clientIP, new.clientPort), detail: "\(new.size) bytes")
    }

    public func recordChecksum(id: String, sha256: String) throws(StoreError) {
        try together { db throws(StoreError) in
            try db.run("UPDATE uploads SET sha256 = ? WHERE id = ?", [.text(sha256), .text(id)])
        }
    }

    public func markAll(_ finals: [(id: String, state: UploadState, received: Int64, error: String?)]) throws(StoreError) {
        let now = UTCTime.now()
        try durably { db throws(StoreError) in
            for final in finals {
                try self.markRow(db, final.id, final.state, received: final.received, error: final.error, finished: true, at: now)
            }
        }
    }

    /// Not durable: nothing is promised on this change. Lost in a crash, the row is
    /// `interrupted` at an older count, and the next resume measures the staging again.
    public func claimForResume(id: String, received: Int64, workerPID: Int, clientIP: String, clientPort: Int, sha256: String)
        throws(StoreError) -> Bool
    {
        let now = UTCTime.now()
        return try locked { db throws(StoreError) in
            try db.transaction(durable: false) { () throws(StoreError) -> Bool in
                let changed = try db.run(
                    """
                    UPDATE uploads SET state = 'receiving', received = ?, worker_pid = ?, client_ip = ?,
                                       client_port = ?, error = NULL, updated_at = ?, sha256 = ?
                    WHERE id = ? AND state IN ('receiving', 'interrupted')
                    """,
                    [.integer(received), .integer(Int64(workerPID)), .text(clientIP), .integer(Int64(clientPort)),
                     .text(now), .text(sha256), .text(id)]
                )
                if changed > 0 {
                    try appendEvent(db, id, "resumed", client: Store.address(clientIP, clientPort), detail: "at byte \(received)")
                }
                return changed == 1
            }
        }
    }

    public func failResumable(id: String, reason: String) throws(StoreError) {
        let now = UTCTime.now()
        try durably { db throws(StoreError) in
            let changed = try db.run(
                """
                UPDATE uploads SET state = 'failed', error = ?, updated_at = ?, finished_at = ?
                WHERE id = ? AND state IN ('receiving', 'interrupted')
                """,
                [.text(reason), .text(now), .text(now), .text(id)]
            )
            if changed > 0 { try self.appendEvent(db, id, "failed", detail: reason) }
        }
    }

    public func markInterrupted(id: String, received: Int64, reason: String) throws(StoreError) -> Bool {
        let now = UTCTime.now()
        return try locked { db throws(StoreError) in
            try db.transaction { () throws(StoreError) -> Bool in
                let changed = try db.run(
                    """
                    UPDATE uploads SET state = 'interrupted', received = ?, error = ?, updated_at = ?
                    WHERE id = ? AND state = 'receiving'
                    """,
                    [.integer(received), .text(reason), .text(now), .text(id)]
                )
                if changed > 0 { try appendEvent(db, id, "interrupted", detail: "\(reason); \(received) bytes kept") }
                return changed > 0
            }
        }
    }

    public func expire(id: String) throws(StoreError) -> Bool {
        let now = UTCTime.now()
        return try locked { db throws(StoreError) in
            try db.transaction { () throws(StoreError) -> Bool in
                let changed = try db.run(
                    """
                    UPDATE uploads SET state = 'expired', error = 'not resumed in time', updated_at = ?, finished_at = ?
                    WHERE id = ? AND state = 'interrupted'
                    """,
                    [.text(now), .text(now), .text(id)]
                )
                if changed > 0 { try appendEvent(db, id, "expired", detail: "not resumed in time; bytes deleted") }
                return changed > 0
            }
        }
    }

    public func receivingIDs(workerPID: Int?) throws(StoreError) -> [String] {
        try locked { db throws(StoreError) in
            if let workerPID {
                return try db.query(
                    "SELECT id FROM uploads WHERE state = 'receiving' AND worker_pid = ?", [.integer(Int64(workerPID))]
                ) { $0.text(0) }
            }
            return try db.query("SELECT id FROM uploads WHERE state = 'receiving'") { $0.text(0) }
        }
    }

    public func resumableIDs() throws(StoreError) -> [String] {
        try locked { db throws(StoreError) in
            try db.query("SELECT id FROM uploads WHERE state IN ('receiving', 'interrupted')") { $0.text(0) }
        }
    }

    public func interruptedIDs(before cutoff: String) throws(StoreError) -> [String] {
        try locked { db throws(StoreError) in
            try db.query("SELECT id FROM uploads WHERE state = 'interrupted' AND updated_at < ?", [.text(cutoff)]) { $0.text(0) }
        }
    }

    public func grow(
        id: String, current: Int64, received: Int64, needed: Int64, wanted: Int64, limits: AdmissionLimits,
        quota: TokenQuota?, free: @escaping @Sendable () throws(StoreError) -> Int64
    ) throws(StoreError) -> Int64 {
        var granted: Int64 = 0
        try together { db throws(StoreError) in
            var allowed = min(max(wanted, needed), limits.maxFileSize)
            let token = try db.query("SELECT token FROM uploads WHERE id = ?", [.text(id)]) { $0.optionalText(0) }.first ?? nil
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
            let free = try free()
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
        return granted
    }

    public func recordProgress(id: String, received: Int64) throws(StoreError) {
        try together { db throws(StoreError) in
            try db.run("UPDATE uploads SET received = ? WHERE id = ? AND state = 'receiving' AND received < ?",
                       [.integer(received), .text(id), .integer(received)])
        }
    }

    public func settle(id: String, received: Int64) throws(StoreError) {
        try together { db throws(StoreError) in
            try db.run("UPDATE uploads SET size = ?, received = ? WHERE id = ?", [.integer(received), .integer(received), .text(id)])
        }
    }

    public func markLengthDeclared(id: String, length: Int64) throws(StoreError) {
        try durably { db throws(StoreError) in
            try db.run("UPDATE uploads SET length_deferred = 0 WHERE id = ?", [.text(id)])
            try self.appendEvent(db, id, "length", detail: "\(length) bytes")
        }
    }

    public func deleteRow(id: String) throws(StoreError) -> RowDeletion {
        try locked { db throws(StoreError) in
            try db.transaction { () throws(StoreError) -> RowDeletion in
                let rows = try db.query("SELECT state, sha256 FROM uploads WHERE id = ?", [.text(id)]) { ($0.text(0), $0.text(1)) }
                guard let (state, sha256) = rows.first else { return .notFound }
                if state == UploadState.receiving.rawValue { return .receiving }
                try db.run("DELETE FROM uploads WHERE id = ?", [.text(id)])
                try appendEvent(db, id, "deleted", detail: "row deleted")
                return .deleted(sha256: sha256)
            }
        }
    }

    /// Inside a write transaction: an upload of that content records its row
    /// before it names its object, so it is either counted here or names its
    /// object afresh after the removal.
    public func whileUnreferenced(sha256: String, event id: String, remove: () throws(StoreError) -> Bool) throws(StoreError)
        -> Bool
    {
        try locked { db throws(StoreError) in
            try db.transaction(durable: false) { () throws(StoreError) -> Bool in
                let others = try db.query(
                    "SELECT count(*) FROM uploads WHERE sha256 = ? AND state IN ('complete', 'receiving', 'interrupted')",
                    [.text(sha256)]
                ) { $0.int(0) }.first ?? 0
                guard others == 0, try remove() else { return false }
                try appendEvent(db, id, "object-removed", detail: "object \(sha256) removed")
                return true
            }
        }
    }
}
