import SpoolSystem

/// Why the store could not do what was asked, in words an operator can act on.
public enum StoreError: Error, CustomStringConvertible, Equatable, Sendable {
    case sqlite(operation: String, code: Int32, message: String)
    /// PostgreSQL refused or failed a statement (`code`: its SQLSTATE), or could
    /// not be reached (`code` empty).
    case postgres(operation: String, code: String, message: String)
    case system(SystemError)
    case noDatabase(path: String)
    case schemaTooNew(path: String, version: Int, known: Int)
    case migrationEdited(version: Int, name: String)
    /// The ledger skips a version: "current is the highest applied" would be a lie.
    case migrationGap(path: String, missing: [Int])
    case schemaBehind(path: String, version: Int, latest: Int)
    case badMigration(file: String, reason: String)
    /// The spool directory still has the objects layout of Spool 0.1.
    case layoutBehind(path: String)
    case notFound(id: String)
    /// `admin copy-to`: the catalog to copy into already has uploads, events or tokens.
    case copyTargetNotEmpty(path: String)
    /// The upload does not fit: too large, over quota, or not enough space.
    case refused(Refusal)

    public var description: String {
        switch self {
        case .sqlite(let operation, let code, let message):
            "SQLite error \(code) during \(operation): \(message)"
        case .postgres(let operation, let code, let message):
            "PostgreSQL \(code.isEmpty ? "" : "error \(code) ")during \(operation): \(message)"
        case .system(let error):
            error.description
        case .noDatabase(let path):
            "no database at \(path); start `spoold serve` or run `spoold admin migrate` first"
        case .schemaTooNew(let path, let version, let known):
            "database \(path) has schema version \(version), newer than this spoold knows (\(known)); "
                + "refusing to touch it: run a newer spoold"
        case .migrationEdited(let version, let name):
            "migration \(version) (\(name)) differs from the one applied to this database; "
                + "shipped migrations must never be edited: add a new one instead"
        case .migrationGap(let path, let missing):
            "database \(path) has no record of migration \(missing.map(String.init).joined(separator: ", ")) although later ones "
                + "were applied; its schema cannot be trusted: restore it from a backup"
        case .schemaBehind(let path, let version, let latest):
            "database \(path) is at schema version \(version) but this spoold needs \(latest); run `spoold admin migrate`"
        case .badMigration(let file, let reason):
            "migration file \(file): \(reason)"
        case .layoutBehind(let path):
            "\(path) still stores objects two directories deep (Spool 0.1); "
                + "start `spoold serve` once: it moves them at start"
        case .notFound(let id):
            "no upload with id \(id)"
        case .copyTargetNotEmpty(let path):
            "the catalog at \(path) already has uploads, events or tokens; copy into an empty one"
        case .refused(let refusal):
            refusal.description
        }
    }
}
