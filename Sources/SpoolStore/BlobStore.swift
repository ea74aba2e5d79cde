import Crypto
import SpoolSystem

/// Where upload bytes live: staged while they arrive, then published as the
/// object named by their SHA-256, which is never replaced by other bytes.
///
/// `Store` is the coordinator: it keeps a blob store and the catalog (the
/// uploads table) in step and enforces the order that makes `250` true: the
/// blob is durable under its name (`publish`) before the row that says
/// `complete` is committed, and a row's removal is committed before its object
/// is removed. Nothing outside `SpoolStore` touches a blob store's files: the
/// worker appends through `Store`, downloads through `Store.openObject`.
///
/// The directory on local disk (`DirectoryBlobStore`) is the first. An
/// S3-compatible store is planned (a staging file per upload sent as multipart
/// parts, published with a conditional write), so the operations below say what
/// is promised, not how a file system keeps the promise.
public protocol BlobStore: AnyObject, Sendable {
    // MARK: Staging: an upload's bytes while they arrive

    /// Staging for a new upload, open for its one writer. `unnamed`: the body is
    /// written whole at once and the upload is never resumed, so its staging
    /// needs no name of its own (the store may use that).
    func createStaging(id: String, size: Int64, sha256: String, unnamed: Bool) throws(SystemError) -> OpenUpload
    /// Reopens an upload's staging for one writer (across every process), with
    /// its bytes made durable first: `offset` counts bytes that are on disk.
    func reopenStaging(id: String, size: Int64, sha256: String) throws(SystemError) -> StagingReopened
    func append(_ upload: OpenUpload, _ bytes: UnsafeRawBufferPointer) throws(SystemError)
    /// Starts making a range durable without waiting for it: a hint, so that the
    /// barrier at the end has little left to wait for.
    func startWriteBack(_ upload: OpenUpload, from offset: Int64, count: Int64)
    func truncate(_ upload: OpenUpload, to length: Int64) throws(SystemError)
    /// Hashes the staged bytes from `start` to `end` onto `hasher`.
    func hashStaged(_ upload: OpenUpload, from start: Int64, to end: Int64, continuing hasher: ResumableSHA256) throws(SystemError)
        -> ResumableSHA256
    /// Makes what is staged durable and lets the writer go: kept for a resume.
    func keep(_ upload: OpenUpload) throws(SystemError)
    /// Lets the writer go, the staging left as it is (published, or kept).
    func close(_ upload: OpenUpload)
    /// Lets the writer go and removes what was staged.
    func discard(_ upload: OpenUpload)
    /// Holds an upload's staging without writing it, so that no writer can take
    /// it meanwhile (expiry); `discard` or `close` lets go.
    func holdStaging(id: String) throws(SystemError) -> StagingReopened
    /// Removes an upload's staging that no writer holds (delete).
    func removeStaging(id: String)
    /// The durable size of an upload's staging; throws ENOENT when it has none.
    func durableStagedSize(id: String) throws(SystemError) -> Int64
    func hasStaging(id: String) -> Bool
    /// Whether a writer (in any process) holds this upload's staging right now.
    func isBeingWritten(id: String) -> Bool
    /// The names of every staging there is, `<id>.part` (the audit, and the strays removed at start).
    func stagingNames() throws(SystemError) -> [String]
    func removeStagingNamed(_ name: String) throws(SystemError)

    // MARK: Publishing: the durability barrier

    /// Publishes each staged upload as the object of its SHA-256, durably, the
    /// whole batch at once where that is cheaper. An object already there is kept
    /// when it holds the same bytes. Returns each upload's own error (its name
    /// could not be given); throws when the barrier failed, for all of them.
    /// The writers are not let go (`close`).
    func publish(_ items: [(upload: OpenUpload, sha256: String)]) throws(StoreError) -> [StoreError?]

    // MARK: Objects

    /// The object's size, nil when there is none.
    func objectSize(sha256: String) -> Int64?
    /// Removes an object; false when there was none.
    func removeObject(sha256: String) throws(SystemError) -> Bool
    /// The SHA-256 every object is stored under (their names), sorted.
    func objectNames() throws(SystemError) -> [String]
    /// What the object's bytes hash to (the audit).
    func hashObject(sha256: String) throws(SystemError) -> String
    /// The object's bytes in `range` for a download, checked to be an object of
    /// `size` bytes: an object of another size is damage, reported as an error.
    func openObject(sha256: String, size: Int64, range: Range<Int64>) throws(SystemError) -> ObjectBytes
    /// Moves an object or a staging out of the way, kept for a person to look at;
    /// returns where it went.
    func quarantineObject(sha256: String) throws(SystemError) -> String
    func quarantineStaging(named name: String) throws(SystemError) -> String
    /// Where an object or a staging is, for messages and `admin show`.
    func objectLocation(sha256: String) -> String
    func stagingLocation(named name: String) -> String
    /// Bytes an unprivileged writer may still add.
    func freeBytes() throws(SystemError) -> Int64
}

extension BlobStore {
    /// An upload's staging is named `<id>.part` (`stagingNames`).
    public func stagingLocation(id: String) -> String { stagingLocation(named: "\(id).part") }
}

/// Makes the blob store one process uses (each its own, after fork): the
/// spool directory's when there is none (`Store.init`), S3's with `--objects`.
public typealias BlobStoreMaker = @Sendable (DataDirectory) throws(StoreError) -> any BlobStore

/// An object's bytes on their way to a download.
public enum ObjectBytes: Sendable {
    /// A local file holding the whole object, to send the range from (sendfile);
    /// the caller closes it.
    case file(Int32)
    /// The range's bytes, read a piece at a time from wherever the object lives.
    case stream(any ObjectStream)
}

/// A download's bytes read a piece at a time, in order, by one thread at a time.
public protocol ObjectStream: AnyObject, Sendable {
    /// Gives the next piece (at most `max` bytes) to `sink`; returns its size, 0 at the end.
    func read(max: Int, into sink: (UnsafeRawBufferPointer) -> Void) throws(SystemError) -> Int
    /// Lets go of what the stream holds, read to its end or not.
    func close()
}

public enum StagingReopened: Sendable {
    case opened(OpenUpload)
    /// Another writer holds it.
    case busy
    /// There is none (expired meanwhile, or never named).
    case gone
}
