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
    /// the spool directory unless another store is given (S3); `catalog`: SQLite
    /// in the data directory unless another is given (PostgreSQL).
    public init(
        directory: DataDirectory, actor: String = "pid:\(getpid())", queueWriters: Bool = false, blobs: (any BlobStore)? = nil,
        catalog: (any Catalog)? = nil
    ) throws(StoreError) {
        self.directory = directory
        self.blobs = blobs ?? DirectoryBlobStore(directory: directory)
        if let catalog {
            self.catalog = catalog
        } else {
            self.catalog = try SQLiteCatalog(path: directory.databasePath, actor: actor, queueWriters: queueWriters)
        }
        // Upgraded by the master at start (or `admin migrate`), under the pid file's lock.
        guard directory.layoutIsCurrent else { throw .layoutBehind(path: directory.objectsPath) }
    }

    /// Opens the catalog and blobs `backends` name (each process its own).
    public convenience init(
        directory: DataDirectory, actor: String = "pid:\(getpid())", queueWriters: Bool = false, backends: StoreBackends
    ) throws(StoreError) {
        try self.init(
            directory: directory, actor: actor, queueWriters: queueWriters, blobs: try backends.blobs?(directory),
            catalog: try backends.catalog?.open(actor))
    }

    /// Creates the directories and database as needed and applies pending migrations (the master, `admin migrate`).
    public static func openMigrating(
        directory: DataDirectory, actor: String = "pid:\(getpid())", backends: StoreBackends = StoreBackends()
    ) throws(StoreError) -> (Store, [Migration]) {
        do { try directory.prepare() } catch { throw .system(error) }
        let applied: [Migration]
        if let catalog = backends.catalog { applied = try catalog.migrate() } else { applied = try SQLiteCatalog.migrate(path: directory.databasePath) }
        return (try Store(directory: directory, actor: actor, backends: backends), applied)
    }

    /// Whether the catalog's schema is current (`admin migrate --check`), changing nothing.
    public static func schemaStatus(directory: DataDirectory, catalog: CatalogLocation? = nil) throws(StoreError) -> SchemaStatus {
        if let catalog { return try catalog.status() }
        return try SQLiteCatalog.schemaStatus(path: directory.databasePath)
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
