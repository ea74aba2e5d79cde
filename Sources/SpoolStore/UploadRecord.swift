/// The life of an upload. Only `complete` means the bytes are durable and verified.
public enum UploadState: String, Codable, Sendable, CaseIterable {
    case receiving
    case complete
    case failed
    case interrupted
    /// An interrupted upload nobody resumed within the partial TTL: its bytes are gone.
    case expired
    /// Was complete, but an audit found its object missing or corrupt (`admin audit --repair`).
    case lost
}

/// One row of the `uploads` table.
public struct UploadRecord: Codable, Equatable, Sendable {
    public var id: String
    public var name: String
    public var size: Int64
    public var received: Int64
    public var sha256: String
    public var clientIP: String
    public var clientPort: Int
    public var state: UploadState
    public var error: String?
    public var workerPID: Int
    public var createdAt: String
    public var updatedAt: String
    public var finishedAt: String?
    /// The name of the token that uploaded it; nil for an anonymous upload.
    public var token: String?

    /// The checksum as people read it: `-` until a checksum-after-body upload's is known.
    public var shownSHA256: String { sha256.isEmpty ? "-" : sha256 }

    enum CodingKeys: String, CodingKey {
        case id, name, size, received, sha256, state, error, token
        case clientIP = "client_ip"
        case clientPort = "client_port"
        case workerPID = "worker_pid"
        case createdAt = "created_at"
        case updatedAt = "updated_at"
        case finishedAt = "finished_at"
    }
}

/// What a worker knows when it accepts an upload.
public struct NewUpload: Sendable {
    public var name: String
    public var size: Int64
    public var sha256: String
    public var clientIP: String
    public var clientPort: Int
    public var workerPID: Int
    /// The authenticated token's name, with its quota checked at declaration.
    public var token: String?
    /// tus: the `Upload-Metadata` header of the creation, as it came.
    public var tusMetadata: String?
    /// tus creation-defer-length: the size is not known yet (`size` is what is reserved).
    public var lengthDeferred = false

    public init(
        name: String, size: Int64, sha256: String, clientIP: String, clientPort: Int, workerPID: Int, token: String? = nil
    ) {
        self.token = token
        self.name = name
        self.size = size
        self.sha256 = sha256
        self.clientIP = clientIP
        self.clientPort = clientPort
        self.workerPID = workerPID
    }
}

/// An upload whose row exists and whose staging (`BlobStore`) is open for
/// appending by one writer: no other connection, in any worker, can write it.
public struct OpenUpload: Sendable {
    public let id: String
    /// Its declared size; for a body of unknown length, the bytes reserved so far (`Store.grow`).
    public var size: Int64
    public let sha256: String
    /// The temporary file; for an unnamed one, the directory it will be linked into.
    /// Only the blob store touches these (the tests read them too).
    package let tempPath: String
    package let fd: Int32
    /// Bytes already in the temporary file (non-zero when resuming).
    public let offset: Int64
    /// The file has no name until it is published (`O_TMPFILE`; see `DirectoryBlobStore.createStaging`).
    package var unnamed = false

    /// For blob stores in other modules of this package (the S3 one).
    package init(id: String, size: Int64, sha256: String, tempPath: String, fd: Int32, offset: Int64, unnamed: Bool = false) {
        self.id = id
        self.size = size
        self.sha256 = sha256
        self.tempPath = tempPath
        self.fd = fd
        self.offset = offset
        self.unnamed = unnamed
    }
}

public enum CompletionOutcome: Equatable, Sendable {
    /// Durable: fsynced, renamed into place, directory fsynced, row committed.
    case stored(objectPath: String)
    /// The bytes did not hash to the declared SHA-256; nothing was published.
    case checksumMismatch(actual: String)
}
