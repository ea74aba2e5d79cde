#if canImport(Glibc)
import Glibc
#endif
import SpoolProtocol
import SpoolSystem

/// The uploads table and the spool directory, kept in step.
///
/// Each process opens its own. Calls may come from several threads: database
/// statements are serialised by a lock, while the slow file work (fsync, rename)
/// runs outside it, so one upload's fsync never holds up another's row update.
public final class Store: @unchecked Sendable {
    public let directory: DataDirectory
    private let database: Database
    private let lock = Lock()

    /// Opens an existing database whose schema is current (workers, admin commands).
    public init(directory: DataDirectory) throws(StoreError) {
        self.directory = directory
        database = try Database(path: directory.databasePath, create: false)
        try Migrator.requireCurrent(database, migrations: try Migrator.embedded())
    }

    /// Creates the directories and database as needed and applies pending migrations (the master, `admin migrate`).
    public static func openMigrating(directory: DataDirectory) throws(StoreError) -> (Store, [Migration]) {
        do { try directory.prepare() } catch { throw .system(error) }
        let db = try Database(path: directory.databasePath, create: true)
        let applied = try Migrator.migrate(db, migrations: try Migrator.embedded())
        return (try Store(directory: directory), applied)
    }

    // MARK: - Receiving

    /// Records a new upload as `receiving` and opens its temporary file.
    public func begin(_ new: NewUpload, id: String) throws(StoreError) -> OpenUpload {
        let now = UTCTime.now()
        try locked { db throws(StoreError) in
            try db.run(
            """
            INSERT INTO uploads (id, name, size, received, sha256, client_ip, client_port, state,
                                 worker_pid, created_at, updated_at)
            VALUES (?, ?, ?, 0, ?, ?, ?, 'receiving', ?, ?, ?)
            """,
            [.text(id), .text(new.name), .integer(new.size), .text(new.sha256), .text(new.clientIP),
             .integer(Int64(new.clientPort)), .integer(Int64(new.workerPID)), .text(now), .text(now)]
            )
        }
        let path = directory.tempFile(id: id)
        do {
            let fd = try Files.open(path, flags: O_WRONLY | O_CREAT | O_EXCL)
            return OpenUpload(id: id, size: new.size, sha256: new.sha256, tempPath: path, fd: fd)
        } catch {
            try? mark(id, .failed, received: 0, error: error.description, finished: true)
            throw .system(error)
        }
    }

    /// Finishes an upload whose body has fully arrived. Success is returned only
    /// once the file is fsynced, renamed into place, its directory fsynced and the
    /// row committed, in that order (docs/DESIGN.md explains why that order).
    /// Closes the upload's descriptor in every case.
    public func complete(_ upload: OpenUpload, received: Int64, sha256: String) throws(StoreError) -> CompletionOutcome {
        guard received == upload.size, sha256 == upload.sha256 else {
            Files.close(upload.fd)
            try? Files.unlink(upload.tempPath)
            let reason = received != upload.size
                ? "received \(received) of \(upload.size) bytes"
                : "checksum mismatch: declared \(upload.sha256), received \(sha256)"
            try mark(upload.id, .failed, received: received, error: reason, finished: true)
            return .checksumMismatch(actual: sha256)
        }
        let objectPath = directory.objectFile(sha256: sha256)
        do {
            defer { Files.close(upload.fd) }
            try Files.fsync(upload.fd, path: upload.tempPath)
            let objectDirectory = directory.objectDirectory(sha256: sha256)
            try Files.makeDirectories(objectDirectory)
            // Same content, same name: renaming over an existing object replaces it
            // with identical bytes, so the content is stored once.
            try Files.rename(upload.tempPath, objectPath)
            try Files.fsyncDirectory(objectDirectory)
        } catch {
            try? Files.unlink(upload.tempPath)
            try? mark(upload.id, .failed, received: received, error: error.description, finished: true)
            throw .system(error)
        }
        try mark(upload.id, .complete, received: received, error: nil, finished: true)
        return .stored(objectPath: objectPath)
    }

    /// The connection went away mid-body: keep what arrived, durably, for a later resume.
    public func interrupt(_ upload: OpenUpload, received: Int64, reason: String) throws(StoreError) {
        defer { Files.close(upload.fd) }
        do { try Files.fsync(upload.fd, path: upload.tempPath) } catch { throw .system(error) }
        try mark(upload.id, .interrupted, received: received, error: reason, finished: false)
    }

    /// The upload cannot go on (a write failed): drop its bytes and record why.
    public func fail(_ upload: OpenUpload, received: Int64, reason: String) throws(StoreError) {
        Files.close(upload.fd)
        try? Files.unlink(upload.tempPath)
        try mark(upload.id, .failed, received: received, error: reason, finished: true)
    }

    /// Marks the uploads a dead worker left `receiving` (with nil: every such upload,
    /// at start-up, when no worker is alive) as `interrupted`. What their temporary
    /// files hold is fsynced first and recorded as received, so a resume starts
    /// from bytes that are on disk. Returns the uploads it changed.
    @discardableResult
    public func interruptReceiving(workerPID: Int?, reason: String) throws(StoreError) -> [(id: String, received: Int64)] {
        let ids = try locked { db throws(StoreError) in
            if let workerPID {
                return try db.query(
                    "SELECT id FROM uploads WHERE state = 'receiving' AND worker_pid = ?", [.integer(Int64(workerPID))]
                ) { $0.text(0) }
            }
            return try db.query("SELECT id FROM uploads WHERE state = 'receiving'") { $0.text(0) }
        }
        var changed: [(id: String, received: Int64)] = []
        for id in ids {
            let received = Self.syncedSize(directory.tempFile(id: id))
            let now = UTCTime.now()
            let rows = try locked { db throws(StoreError) in
                try db.run(
                    """
                    UPDATE uploads SET state = 'interrupted', received = ?, error = ?, updated_at = ?
                    WHERE id = ? AND state = 'receiving'
                    """,
                    [.integer(received), .text(reason), .text(now), .text(id)]
                )
            }
            if rows > 0 { changed.append((id, received)) }
        }
        return changed
    }

    /// Removes temporary files that no resumable upload owns. Only safe while no
    /// worker runs (the master calls it before forking). Returns the names removed.
    @discardableResult
    public func removeStrayTempFiles() throws(StoreError) -> [String] {
        let names: [String]
        do { names = try Files.list(directory.tempPath) } catch { throw .system(error) }
        let live = Set(try locked { db throws(StoreError) in
            try db.query("SELECT id FROM uploads WHERE state IN ('receiving', 'interrupted')") { $0.text(0) }
        })
        var removed: [String] = []
        for name in names.sorted() {
            let id = name.hasSuffix(".part") ? String(name.dropLast(5)) : ""
            if live.contains(id) { continue }
            do { try Files.unlink(directory.tempPath + "/" + name) } catch { throw .system(error) }
            removed.append(name)
        }
        return removed
    }

    /// The size of a file after an fsync, or 0 when it is missing or unreadable.
    static func syncedSize(_ path: String) -> Int64 {
        guard let fd = try? Files.open(path, flags: O_RDONLY) else { return 0 }
        defer { Files.close(fd) }
        try? Files.fsync(fd, path: path)
        return (try? Files.size(path)) ?? 0
    }

    private func mark(_ id: String, _ state: UploadState, received: Int64, error: String?, finished: Bool) throws(StoreError) {
        let now = UTCTime.now()
        try locked { db throws(StoreError) in
            try db.run(
            """
            UPDATE uploads SET state = ?, received = ?, error = ?, updated_at = ?,
                               finished_at = CASE WHEN ? THEN ? ELSE finished_at END
            WHERE id = ?
            """,
            [.text(state.rawValue), .integer(received), error.map { .text($0) } ?? .null, .text(now),
             .integer(finished ? 1 : 0), .text(now), .text(id)]
            )
        }
    }

    @discardableResult
    private func locked<T>(_ body: (Database) throws(StoreError) -> T) throws(StoreError) -> T {
        try lock.withLock { () throws(StoreError) -> T in try body(database) }
    }

    // MARK: - Reading

    static let columns = """
        id, name, size, received, sha256, client_ip, client_port, state, error, worker_pid,
        created_at, updated_at, finished_at
        """

    /// Newest first.
    public func uploads(limit: Int? = nil) throws(StoreError) -> [UploadRecord] {
        let sql = "SELECT \(Self.columns) FROM uploads ORDER BY created_at DESC, id DESC"
            + (limit.map { " LIMIT \($0)" } ?? "")
        return try locked { db throws(StoreError) in try db.query(sql, [], Self.record) }
    }

    public func upload(id: String) throws(StoreError) -> UploadRecord? {
        try locked { db throws(StoreError) in
            try db.query("SELECT \(Self.columns) FROM uploads WHERE id = ?", [.text(id)], Self.record).first
        }
    }

    static func record(_ row: Statement) throws(StoreError) -> UploadRecord {
        let stateText = row.text(7)
        guard let state = UploadState(rawValue: stateText) else {
            throw .sqlite(operation: "read upload \(row.text(0))", code: 0, message: "unknown state \"\(stateText)\"")
        }
        return UploadRecord(
            id: row.text(0), name: row.text(1), size: row.int(2), received: row.int(3), sha256: row.text(4),
            clientIP: row.text(5), clientPort: Int(row.int(6)), state: state, error: row.optionalText(8),
            workerPID: Int(row.int(9)), createdAt: row.text(10), updatedAt: row.text(11),
            finishedAt: row.optionalText(12)
        )
    }
}
