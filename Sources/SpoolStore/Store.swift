#if canImport(Glibc)
import Glibc
#endif
import SpoolProtocol
import SpoolSystem

/// The catalog (`Catalog`: the uploads table, the event log, the tokens) and the
/// blobs (`BlobStore`: the bytes), kept in step. The coordinator: it makes a blob
/// durable before it commits the row that says so, and commits a row's removal
/// before it removes the blob, so that a failure or a crash between any two
/// steps never leaves a `complete` row without its bytes (docs/DESIGN.md).
///
/// Each process opens its own. SQLite and the spool directory are the first
/// catalog and blob store; the worker, the master and the admin commands reach
/// either only through this type.
public final class Store: @unchecked Sendable {
    public let directory: DataDirectory
    /// Rows, states, events, totals, tokens.
    public let catalog: any Catalog
    /// Where the bytes live: staged while they arrive, published under their SHA-256.
    public let blobs: any BlobStore

    /// Opens an existing database whose schema is current (workers, admin commands).
    /// Workers pass `queueWriters` (see `Database`). `blobs`: where the bytes go,
    /// the spool directory unless another store is given (S3).
    public init(
        directory: DataDirectory, actor: String = "pid:\(getpid())", queueWriters: Bool = false, blobs: (any BlobStore)? = nil
    ) throws(StoreError) {
        self.directory = directory
        self.blobs = blobs ?? DirectoryBlobStore(directory: directory)
        catalog = try SQLiteCatalog(path: directory.databasePath, actor: actor, queueWriters: queueWriters)
        // Upgraded by the master at start (or `admin migrate`), under the pid file's lock.
        guard directory.layoutIsCurrent else { throw .layoutBehind(path: directory.objectsPath) }
    }

    /// Creates the directories and database as needed and applies pending migrations (the master, `admin migrate`).
    public static func openMigrating(directory: DataDirectory, actor: String = "pid:\(getpid())", blobs: BlobStoreMaker? = nil)
        throws(StoreError) -> (Store, [Migration])
    {
        do { try directory.prepare() } catch { throw .system(error) }
        let applied = try SQLiteCatalog.migrate(path: directory.databasePath)
        return (try Store(directory: directory, actor: actor, blobs: try blobs?(directory)), applied)
    }

    /// Whether the catalog's schema is current (`admin migrate --check`), changing nothing.
    public static func schemaStatus(directory: DataDirectory) throws(StoreError) -> SchemaStatus {
        try SQLiteCatalog.schemaStatus(path: directory.databasePath)
    }

    /// How many prepared statements the catalog's connection keeps (tests).
    var cachedStatements: Int { (catalog as? SQLiteCatalog)?.cachedStatements ?? 0 }

    /// Moves an upload to `state` and logs the event, durably.
    func mark(_ id: String, _ state: UploadState, received: Int64, error: String?, finished: Bool) throws(StoreError) {
        try catalog.mark(id, state, received: received, error: error, finished: finished)
    }

    /// Runs file work, its error as the store's.
    func system<T>(_ body: () throws(SystemError) -> T) throws(StoreError) -> T {
        do { return try body() } catch { throw .system(error) }
    }

    /// `ip:port`, with brackets around an IPv6 address.
    public static func address(_ ip: String, _ port: Int) -> String {
        HostPort(host: ip, port: port).description
    }
}
