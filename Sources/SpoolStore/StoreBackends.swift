/// Where a process's catalog and bytes live when they are not SQLite and the
/// spool directory: built once by `spoold` from its settings and carried to every
/// process the master starts, each of which opens its own (after fork).
public struct StoreBackends: Sendable {
    /// The blob store; nil: the spool directory.
    public var blobs: BlobStoreMaker?
    /// The catalog; nil: SQLite in the data directory.
    public var catalog: CatalogLocation?

    public init(blobs: BlobStoreMaker? = nil, catalog: CatalogLocation? = nil) {
        self.blobs = blobs
        self.catalog = catalog
    }
}

/// A catalog other than the data directory's SQLite (PostgreSQL): how to open
/// it, migrate it, and ask where its schema stands.
public struct CatalogLocation: Sendable {
    /// For messages and logs (no password).
    public let name: String
    public let open: @Sendable (_ actor: String) throws(StoreError) -> any Catalog
    public let migrate: @Sendable () throws(StoreError) -> [Migration]
    public let status: @Sendable () throws(StoreError) -> SchemaStatus

    public init(
        name: String, open: @escaping @Sendable (_ actor: String) throws(StoreError) -> any Catalog,
        migrate: @escaping @Sendable () throws(StoreError) -> [Migration],
        status: @escaping @Sendable () throws(StoreError) -> SchemaStatus
    ) {
        self.name = name
        self.open = open
        self.migrate = migrate
        self.status = status
    }
}
