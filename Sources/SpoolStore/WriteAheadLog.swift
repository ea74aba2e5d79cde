#if canImport(Glibc)
import Glibc
#endif
import SpoolSystem

/// Makes committed transactions durable by syncing SQLite's write-ahead log from
/// outside SQLite, after the write lock is released.
///
/// With `synchronous = FULL`, SQLite fsyncs the log while it holds the database's
/// one write lock, so every commit from every worker process waits for every
/// other commit's fsync: the processes take turns at the disk. Committing with
/// `synchronous = NORMAL` and then calling `sync()` keeps the lock for
/// microseconds, and lets the fsyncs of several processes overlap (the kernel
/// folds concurrent ones into one journal commit).
///
/// Why that is as safe as FULL: a commit under NORMAL has written its frames to
/// the log file before COMMIT returns, so an fdatasync of that file afterwards
/// makes them durable. The frames can only have left the log through a
/// checkpoint, and under NORMAL SQLite syncs the log before a checkpoint and the
/// database file after it, before the log is reused or deleted; so a commit that
/// is no longer in the log is already durable in the database file.
final class WriteAheadLog: @unchecked Sendable {
    let databasePath: String
    let path: String
    private let lock = Lock()
    /// The log file whose directory entry is known to be durable.
    private var knownInode: ino_t?

    init(databasePath: String) {
        self.databasePath = databasePath
        path = databasePath + "-wal"
    }

    func sync() throws(StoreError) {
        do throws(SystemError) {
            let fd: Int32
            do {
                fd = try Files.open(path, flags: O_RDONLY)
            } catch where error.errno == ENOENT {
                // No log: the last connection checkpointed it away; the database file holds everything.
                let db = try Files.open(databasePath, flags: O_RDONLY)
                defer { Files.close(db) }
                try Files.fsync(db, path: databasePath)
                return
            }
            defer { Files.close(fd) }
            try Files.fdatasync(fd, path: path)
            // SQLite syncs a new log's directory under FULL; do the same for a log we have not seen.
            var info = stat()
            guard fstat(fd, &info) == 0 else { throw SystemError.last("fstat", path) }
            let known = lock.withLock { knownInode == info.st_ino }
            if !known {
                try Files.fsyncDirectory(Files.parentDirectory(of: path))
                lock.withLock { knownInode = info.st_ino }
            }
        } catch {
            throw .system(error)
        }
    }
}
