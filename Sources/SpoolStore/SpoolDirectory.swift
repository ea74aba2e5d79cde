#if canImport(Glibc)
import Glibc
#endif
import SpoolSystem

/// The layout of a data directory:
///
///     spool.db                      SQLite metadata (WAL mode)
///     spool.db-writers              the workers' queue for writing to it (Database)
///     spool/tmp/<id>.part           bytes of an upload still arriving
///     spool/objects/ab/<sha256>     complete files, stored once per content
///     spool/layout-2                present once objects/ is in the layout above
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
    /// The master's listeners, `KIND HOST:PORT` a line (written after binding).
    public var portsFilePath: String { runPath + "/spoold.ports" }
    var layoutMarkerPath: String { spoolPath + "/layout-2" }

    public func tempFile(id: String) -> String { tempPath + "/\(id).part" }

    /// The object's directory is named by the first byte of its hash, in hex. All
    /// 256 exist from the start, so storing an object never creates a directory:
    /// creating (and fsyncing) one per upload was a third of a worker's time when
    /// receiving many small files. ext4 indexes large directories, so a million
    /// objects (~4,000 per directory) need no second level.
    public func objectDirectory(sha256: String) -> String {
        objectsPath + "/" + String(decoding: Array(sha256.utf8).prefix(2), as: UTF8.self)
    }

    public func objectFile(sha256: String) -> String { objectDirectory(sha256: sha256) + "/\(sha256)" }

    static let fanOut: [String] = {
        let hex = Array("0123456789abcdef")
        return (0..<256).map { "\(hex[$0 >> 4])\(hex[$0 & 15])" }
    }()

    /// Creates the directories a server needs. A new objects directory gets its
    /// 256 subdirectories and the layout marker at once; an existing one without
    /// the marker is left for `upgradeLayout`, which only a process holding the
    /// pid file's lock may run (objects must not move under a running server).
    public func prepare() throws(SystemError) {
        let fresh = !Files.exists(objectsPath)
        for path in [root, spoolPath, tempPath, objectsPath, runPath] {
            try Files.makeDirectories(path)
        }
        if fresh { try upgradeLayout() }
    }

    /// Whether objects/ is in the current layout (the marker is there).
    public var layoutIsCurrent: Bool { Files.exists(layoutMarkerPath) }

    /// Spool 0.1 stored objects two levels deep (`objects/ab/cd/<sha256>`). Moves
    /// any such object up to `objects/ab/<sha256>`, then writes the marker so that
    /// later starts skip the scan. Each step is a rename within one directory tree,
    /// made durable before the old directory is removed, so a crash at any point
    /// leaves every object at one of its two names and the next start finishes
    /// the move. Returns how many objects were moved.
    @discardableResult
    public func upgradeLayout() throws(SystemError) -> Int {
        if Files.exists(layoutMarkerPath) { return 0 }
        var moved = 0
        for name in Self.fanOut {
            let level1 = objectsPath + "/" + name
            try Files.makeDirectories(level1, durable: false)  // objects/ is fsynced once, below
            for sub in try Files.list(level1).sorted() where Files.isDirectory(level1 + "/" + sub) {
                let level2 = level1 + "/" + sub
                for object in try Files.list(level2) {
                    try Files.rename(level2 + "/" + object, level1 + "/" + object)
                    moved += 1
                }
                try Files.fsyncDirectory(level1)
                try Files.removeDirectory(level2)
            }
        }
        try Files.fsyncDirectory(objectsPath)
        let fd = try Files.open(layoutMarkerPath, flags: O_WRONLY | O_CREAT | O_TRUNC, mode: 0o640)
        Files.close(fd)
        try Files.fsyncDirectory(spoolPath)
        return moved
    }
}
