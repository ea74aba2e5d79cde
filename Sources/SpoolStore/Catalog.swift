import SpoolSystem

/// What is known about uploads: their rows and states, the event log, the
/// running totals admission reads, and the tokens. `Store` coordinates it with
/// a `BlobStore`; `SQLiteCatalog` is the first (a PostgreSQL one is planned).
///
/// The contract every catalog keeps (docs/DESIGN.md, "Storage and durability"):
/// - `mark`, `markAll`, `failResumable`, `markInterrupted`, `expire`,
///   `deleteRow` and `markLengthDeclared` are durable when they return; the
///   others may be lost in a crash (nothing has been promised on them yet).
/// - Admission (`insertReceiving`, `grow`) sees every other upload's
///   reservation, in any process: the totals (bytes reserved for uploads in
///   flight; bytes and files per token) are kept in step with every row change,
///   in the same transaction (SQLite: triggers, migrations 0004 and 0005).
/// - `whileUnreferenced` checks and removes under the same lock a new upload's
///   row takes, so an upload of that content is either counted or names its
///   object after the removal.
/// - Every state change appends its event in the same transaction.
public protocol Catalog: AnyObject, Sendable {
    // MARK: Uploads on their way

    /// Admits a new upload (size limit, token quota, free space) and records it
    /// `receiving` with its `created` event. Throws `.refused` when it does not fit.
    func insertReceiving(
        _ new: NewUpload, id: String, limits: AdmissionLimits, quota: TokenQuota?,
        free: @escaping @Sendable () throws(StoreError) -> Int64
    ) throws(StoreError)
    /// The same for a batch, in one transaction; each upload's own error (a
    /// refusal undoes only its own row), nil for those recorded.
    func insertReceiving(
        batch: [(new: NewUpload, id: String, limits: AdmissionLimits, quota: TokenQuota?)],
        free: @escaping @Sendable () throws(StoreError) -> Int64
    ) -> [StoreError?]
    /// The checksum of an upload announced without one (it came after the body).
    func recordChecksum(id: String, sha256: String) throws(StoreError)
    /// Moves an upload to `state` and logs the event, durably.
    func mark(_ id: String, _ state: UploadState, received: Int64, error: String?, finished: Bool) throws(StoreError)
    /// Final states of several uploads, in one durable transaction.
    func markAll(_ finals: [(id: String, state: UploadState, received: Int64, error: String?)]) throws(StoreError)
    /// Takes a `receiving` or `interrupted` upload for a resume at `received`
    /// bytes; false when its state changed meanwhile.
    func claimForResume(id: String, received: Int64, workerPID: Int, clientIP: String, clientPort: Int, sha256: String)
        throws(StoreError) -> Bool
    /// Fails an upload waiting for a resume, unless something else changed it meanwhile.
    func failResumable(id: String, reason: String) throws(StoreError)
    /// A `receiving` upload nobody writes any more becomes `interrupted` at `received`
    /// durable bytes; false when it was not `receiving`.
    func markInterrupted(id: String, received: Int64, reason: String) throws(StoreError) -> Bool
    /// An `interrupted` upload becomes `expired`; false when it was not `interrupted`.
    func expire(id: String) throws(StoreError) -> Bool
    /// Uploads `receiving` (of one worker, or all).
    func receivingIDs(workerPID: Int?) throws(StoreError) -> [String]
    /// Uploads that may still be resumed (`receiving`, `interrupted`).
    func resumableIDs() throws(StoreError) -> [String]
    /// `interrupted` uploads last touched before `cutoff` (an ISO time).
    func interruptedIDs(before cutoff: String) throws(StoreError) -> [String]
    /// Grows a body of unknown length's reservation (`Store.grow`); returns the size granted.
    func grow(
        id: String, current: Int64, received: Int64, needed: Int64, wanted: Int64, limits: AdmissionLimits,
        quota: TokenQuota?, free: @escaping @Sendable () throws(StoreError) -> Int64
    ) throws(StoreError) -> Int64
    /// A body of unknown length has ended: its size is what was received.
    func settle(id: String, received: Int64) throws(StoreError)
    /// Bytes received so far by a live upload, for hosts whose scoreboard does not
    /// have it (`isShared`); not durable, and a no-op once the upload is not `receiving`.
    func recordProgress(id: String, received: Int64) throws(StoreError)
    /// Whether other hosts share this catalog (PostgreSQL), so that live progress
    /// is worth writing to it.
    var isShared: Bool { get }
    /// tus creation-defer-length: the length, declared, is fixed for good.
    func markLengthDeclared(id: String, length: Int64) throws(StoreError)

    // MARK: Writer leases

    /// Takes the lease that makes this process the one writer of an upload across
    /// every host that shares the catalog; false when another process holds it.
    /// Held until `releaseLease`, or until the process (its connection) ends, so a
    /// resume elsewhere works as soon as a writer dies. A catalog on one machine
    /// (SQLite) grants every lease: the staging's `flock` is the lease there.
    func takeLease(id: String) throws(StoreError) -> Bool
    func releaseLease(id: String)

    // MARK: Deleting

    /// Removes an upload's row (not one still `receiving`), durably, with its event.
    func deleteRow(id: String) throws(StoreError) -> RowDeletion
    /// Runs `remove` (which removes the object of `sha256`) only when no upload
    /// (complete, or on its way there) names it, holding off new rows meanwhile;
    /// logs the removal on `event`'s upload. Returns what `remove` returned, or false.
    func whileUnreferenced(sha256: String, event id: String, remove: () throws(StoreError) -> Bool) throws(StoreError) -> Bool

    // MARK: Reading

    func upload(id: String) throws(StoreError) -> UploadRecord?
    func uploads(matching filter: UploadFilter) throws(StoreError) -> [UploadRecord]
    func find(_ text: String, or alternative: String?, limit: Int, token: String?) throws(StoreError) -> [UploadRecord]
    func stats(completedSince since: String) throws(StoreError) -> StoreStats
    func adminStats(today: String, days: [String]) throws(StoreError) -> AdminStats
    func referenceCount(sha256: String) throws(StoreError) -> Int
    func tusUpload(id: String) throws(StoreError) -> (UploadRecord, TusFields)?
    func events(id: String?, since: String?, limit: Int?) throws(StoreError) -> [UploadEvent]

    // MARK: Hooks (docs/HOOKS.md)

    /// The dispatcher's cursor: the last event delivered; nil before it first ran.
    func hookCursor() throws(StoreError) -> Int64?
    /// The cursor, set at the end of the log if there was none.
    func startHookCursor() throws(StoreError) -> Int64
    /// Moves the cursor on, durably, unless it is no longer at `old` (an admin moved it).
    func advanceHookCursor(from old: Int64, to new: Int64) throws(StoreError) -> Bool
    /// Puts the cursor anywhere (`admin hooks --replay-from`).
    func setHookCursor(_ seq: Int64) throws(StoreError)
    func recordHookFailure(_ failure: HookFailure) throws(StoreError)
    func hookLedger(failures limit: Int) throws(StoreError) -> HookLedger
    /// Events after `seq`, oldest first, in the order they committed.
    func events(after seq: Int64, limit: Int) throws(StoreError) -> [UploadEvent]

    // MARK: Tokens

    func createToken(name: String, admin: Bool, quota: TokenQuota) throws(StoreError) -> String
    func tokens() throws(StoreError) -> [TokenRecord]
    func revokeToken(name: String) throws(StoreError) -> Bool
    func hasActiveTokens() throws(StoreError) -> Bool
    func authenticate(secret: String) throws(StoreError) -> TokenRecord?

    // MARK: Copying (`spoold admin copy-to`)

    func exportRows() throws(StoreError) -> CatalogRows
    func importRows(_ copy: CatalogRows) throws(StoreError)

    // MARK: Health

    /// Takes the write lock and lets it go, changing nothing: throws when the
    /// catalog cannot be written now (locked past its busy time, read-only, gone).
    func probeWritable() throws(StoreError)
}

public enum RowDeletion: Sendable, Equatable {
    case notFound
    /// A live upload is not deleted: stop it first.
    case receiving
    /// Gone; `sha256` names its content (empty when it had no checksum yet).
    case deleted(sha256: String)
}
