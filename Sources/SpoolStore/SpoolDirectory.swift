#if canImport(Glibc)
import Glibc
#endif
import SpoolSystem

/// The layout of a data directory:
///
///     spool.db                      SQLite metadata (WAL mode)
///     spool/tmp/<id>.part           bytes of an upload still arriving
///     spool/objects/ab/cd/<sha256>  complete files, stored once per content
///     run/spoold.pid                the master's pid while it runs
public struct DataDirectory: Sendable {
    public let root: String

    public init(_ root: String) {
        self.root = root.count > 1 && root.hasSuffix("/") ? String(root.dropLast()) : root
    }

    public var databasePath: String { root + "/spool.db" }
    public var spoolPath: String { root + "/spool" }
    public var tempPath: String { spoolPath + "/tmp" }
    public var objectsPath: String { spoolPath + "/objects" }
    public var runPath: String { root + "/run" }
    public var pidFilePath: String { runPath + "/spoold.pid" }

    public func tempFile(id: String) -> String { tempPath + "/\(id).part" }

    /// The object's directory fans out on the first two bytes of the hash, so no
    /// directory grows past 65,536 / 256 entries per level.
    public func objectDirectory(sha256: String) -> String {
        let chars = Array(sha256.utf8)
        let a = String(decoding: chars.prefix(2), as: UTF8.self)
        let b = String(decoding: chars.dropFirst(2).prefix(2), as: UTF8.self)
        return objectsPath + "/\(a)/\(b)"
    }

    public func objectFile(sha256: String) -> String { objectDirectory(sha256: sha256) + "/\(sha256)" }

    /// Creates the directories a server needs.
    public func prepare() throws(SystemError) {
        for path in [root, spoolPath, tempPath, objectsPath, runPath] {
            try Files.makeDirectories(path)
        }
    }
}
