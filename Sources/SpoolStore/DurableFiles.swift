#if canImport(Glibc)
import Glibc
#endif
import SpoolSystem

/// Makes finished upload files durable under their object names, together when
/// several finish at once.
///
/// A file that finishes alone is made durable file by file: fsync its bytes, give
/// it its name, fsync the directory. Several at once (a batch of small uploads,
/// or uploads finishing on several threads while a sync is on its way) are each
/// given their name and then the spool's file system is synced once (`syncfs`):
/// the bytes, inodes and directory entries of the whole batch go out in a few
/// large writes and one cache flush, where a file and a directory fsync per
/// upload cost several small writes and two flushes each.
///
/// In a batch a file is named before its bytes are durable. That is safe because
/// nothing is reported or recorded complete until the sync has returned: a crash
/// in between leaves the upload's row short of `complete` (recovered as
/// interrupted), and an object whose bytes did not reach the disk is named by no
/// complete row; a later upload of the same content compares the bytes and
/// replaces such an object, and the audit reports it (docs/DESIGN.md).
///
/// The cost: `syncfs` also writes back whatever else is dirty on that file
/// system, so a spool that shares its file system with a busy writer waits for
/// that writer's data too. docs/DESIGN.md says so.
final class DurableFiles: @unchecked Sendable {
    struct File {
        let fd: Int32
        /// The file's path, or its directory while it has no name: for messages.
        let path: String
        /// The directory its name goes in.
        let directory: String
        /// Gives the file its name (a rename or a link); may throw for this file alone.
        let publish: () throws(SystemError) -> Void
    }

    /// A directory on the file system to sync, and a descriptor of it opened once.
    private let anchor: String
    private let lock = Lock()
    private var anchorFD: Int32 = -1
    private let group = GroupCommit<File>()

    init(anchor: String) {
        self.anchor = anchor
    }

    deinit {
        if anchorFD >= 0 { Files.close(anchorFD) }
    }

    /// Returns once `file` has its name and both are durable.
    func make(_ file: File) throws(StoreError) {
        try group.run(file) { batch throws(StoreError) in
            let errors = try makeAll(batch.map(\.work))
            for (entry, error) in zip(batch, errors) { entry.error = error }
        }
    }

    /// Names and makes durable every file given, in one sync when there are
    /// several. Returns each file's own error (its name could not be given); a
    /// failed sync throws, for all of them.
    func makeAll(_ files: [File]) throws(StoreError) -> [StoreError?] {
        do throws(SystemError) {
            if files.count == 1, let only = files.first {
                try StoreTimings.shared.time(.fileSync, batch: 1) { () throws(SystemError) in try Files.fsync(only.fd, path: only.path) }
                CrashPoint.reach("upload-after-fsync")
                try only.publish()
                CrashPoint.reach("upload-after-link")
                try Files.fsyncDirectory(only.directory)
                CrashPoint.reach("upload-after-dirsync")
                return [nil]
            }
            var errors: [StoreError?] = []
            for file in files {
                do throws(SystemError) {
                    try file.publish()
                    errors.append(nil)
                } catch {
                    errors.append(.system(error))
                }
            }
            CrashPoint.reach("batch-after-link")
            if errors.contains(where: { $0 == nil }) {
                let fd = try descriptor()
                try StoreTimings.shared.time(.fileSync, batch: files.count) { () throws(SystemError) in
                    try Files.syncFileSystem(fd, path: anchor)
                }
            }
            CrashPoint.reach("batch-after-sync")
            return errors
        } catch {
            throw .system(error)
        }
    }

    private func descriptor() throws(SystemError) -> Int32 {
        try lock.withLock { () throws(SystemError) -> Int32 in
            if anchorFD < 0 { anchorFD = try Files.open(anchor, flags: O_RDONLY | O_DIRECTORY) }
            return anchorFD
        }
    }
}
