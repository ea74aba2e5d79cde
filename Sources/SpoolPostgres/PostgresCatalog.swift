import SpoolStore

/// The catalog on PostgreSQL: `SQLCatalog`'s statements over `PostgresEngine`,
/// with its own migrations (migrations/postgres/, the same ledger rules).
public enum PostgresCatalog {
    /// PostgreSQL's migrations, built into this binary.
    public static func migrations() throws(StoreError) -> [Migration] {
        try Migrator.embedded(EmbeddedMigrations.files.map { ($0.file, $0.sql) })
    }

    /// Opens the catalog, whose schema must be current (workers, admin commands).
    public static func open(_ url: PostgresURL, actor: String) throws(StoreError) -> SQLCatalog<PostgresEngine> {
        let engine = try PostgresEngine(url)
        try Migrator.requireCurrent(engine, migrations: try migrations())
        return SQLCatalog(database: engine, actor: actor)
    }

    /// Applies pending migrations (the master at start, `admin migrate`).
    public static func migrate(_ url: PostgresURL) throws(StoreError) -> [Migration] {
        try Migrator.migrate(try PostgresEngine(url), migrations: try migrations())
    }

    public static func schemaStatus(_ url: PostgresURL) throws(StoreError) -> SchemaStatus {
        try Migrator.status(try PostgresEngine(url), migrations: try migrations())
    }

    /// The catalog at `text` (`--database`), for every process of a server to open its own.
    public static func location(_ text: String, environment: [String: String]) throws(StoreError) -> CatalogLocation {
        let url = try PostgresURL(text, environment: environment)
        return CatalogLocation(
            name: url.redacted, open: { actor throws(StoreError) in try open(url, actor: actor) },
            migrate: { () throws(StoreError) in try migrate(url) }, status: { () throws(StoreError) in try schemaStatus(url) })
    }
}
