/// What is asked of the catalog alone, for the worker and the admin commands.
extension Store {
    public func upload(id: String) throws(StoreError) -> UploadRecord? {
        try catalog.upload(id: id)
    }

    public func uploads(matching filter: UploadFilter) throws(StoreError) -> [UploadRecord] {
        try catalog.uploads(matching: filter)
    }

    /// Newest first.
    public func uploads(limit: Int? = nil) throws(StoreError) -> [UploadRecord] {
        var filter = UploadFilter()
        filter.limit = limit
        return try uploads(matching: filter)
    }

    /// Uploads whose name contains `text` or `alternative` (ASCII case-insensitively)
    /// or whose SHA-256 starts with `text`, newest first. With `token`, only that token's uploads.
    public func find(_ text: String, or alternative: String? = nil, limit: Int, token: String? = nil) throws(StoreError)
        -> [UploadRecord]
    {
        try catalog.find(text, or: alternative, limit: limit, token: token)
    }

    /// `since` is an ISO time: uploads completed at or after it are counted.
    public func stats(completedSince since: String) throws(StoreError) -> StoreStats {
        try catalog.stats(completedSince: since)
    }

    public func adminStats(today: String, days: [String]) throws(StoreError) -> AdminStats {
        try catalog.adminStats(today: today, days: days)
    }

    /// How many complete uploads point at this content.
    public func referenceCount(sha256: String) throws(StoreError) -> Int {
        try catalog.referenceCount(sha256: sha256)
    }

    /// The upload's row and its tus fields, read together.
    public func tusUpload(id: String) throws(StoreError) -> (UploadRecord, TusFields)? {
        try catalog.tusUpload(id: id)
    }

    /// Events, oldest first, optionally of one upload and from a time on.
    public func events(id: String? = nil, since: String? = nil, limit: Int? = nil) throws(StoreError) -> [UploadEvent] {
        try catalog.events(id: id, since: since, limit: limit)
    }

    /// Creates a token and returns its secret, which is stored nowhere: only its SHA-256 is kept.
    public func createToken(name: String, admin: Bool, quota: TokenQuota) throws(StoreError) -> String {
        try catalog.createToken(name: name, admin: admin, quota: quota)
    }

    public func tokens() throws(StoreError) -> [TokenRecord] {
        try catalog.tokens()
    }

    /// Returns false when no active token has that name.
    public func revokeToken(name: String) throws(StoreError) -> Bool {
        try catalog.revokeToken(name: name)
    }

    /// Whether any token is active (then anonymous clients are refused unless allowed explicitly).
    /// Whether the catalog can be written now (GET /readyz, HEALTH).
    public func probeWritable() throws(StoreError) {
        try catalog.probeWritable()
    }

    public func hasActiveTokens() throws(StoreError) -> Bool {
        try catalog.hasActiveTokens()
    }

    /// The active token whose secret this is (compared in constant time).
    public func authenticate(secret: String) throws(StoreError) -> TokenRecord? {
        try catalog.authenticate(secret: secret)
    }
}

/// The hook dispatcher's ledger (docs/HOOKS.md).
extension Store {
    public func hookCursor() throws(StoreError) -> Int64? { try catalog.hookCursor() }
    public func startHookCursor() throws(StoreError) -> Int64 { try catalog.startHookCursor() }
    public func advanceHookCursor(from old: Int64, to new: Int64) throws(StoreError) -> Bool {
        try catalog.advanceHookCursor(from: old, to: new)
    }
    public func setHookCursor(_ seq: Int64) throws(StoreError) { try catalog.setHookCursor(seq) }
    public func recordHookFailure(_ failure: HookFailure) throws(StoreError) { try catalog.recordHookFailure(failure) }
    public func hookLedger(failures limit: Int = 10) throws(StoreError) -> HookLedger { try catalog.hookLedger(failures: limit) }
    public func events(after seq: Int64, limit: Int) throws(StoreError) -> [UploadEvent] { try catalog.events(after: seq, limit: limit) }
}
