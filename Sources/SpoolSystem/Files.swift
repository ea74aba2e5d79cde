import CSpoolSys
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Thin, typed wrappers over the file system calls the store and workers need.
/// Every function retries EINTR and throws a `SystemError` naming the path.
public enum Files {
    public static func open(_ path: String, flags: Int32, mode: mode_t = 0o640) throws(SystemError) -> Int32 {
        try Fault.check("open", path)
        while true {
            let fd = Glibc.open(path, flags | O_CLOEXEC, mode)
            if fd >= 0 { return fd }
            if currentErrno() != EINTR { throw .last("open", path) }
        }
    }

    /// Writes every byte or throws; a short write is continued, never ignored.
    public static func writeAll(_ fd: Int32, _ bytes: UnsafeRawBufferPointer, path: String = "") throws(SystemError) {
        guard var base = bytes.baseAddress else { return }
        try Fault.check("write", path)
        var left = bytes.count
        while left > 0 {
            let n = Glibc.write(fd, base, left)
            if n < 0 {
                if currentErrno() == EINTR { continue }
                throw .last("write", path)
            }
            left -= n
            base += n
        }
    }

    public static func fsync(_ fd: Int32, path: String = "") throws(SystemError) {
        try Fault.check("fsync", path)
        if Fault.skipsSync() { return }
        while Glibc.fsync(fd) != 0 {
            if currentErrno() != EINTR { throw .last("fsync", path) }
        }
    }

    /// Like fsync, but skips timestamps: enough for a file's bytes and size.
    public static func fdatasync(_ fd: Int32, path: String = "") throws(SystemError) {
        try Fault.check("fdatasync", path)
        if Fault.skipsSync() { return }
        while Glibc.fdatasync(fd) != 0 {
            if currentErrno() != EINTR { throw .last("fdatasync", path) }
        }
    }

    /// Makes a directory's entries (creations, renames, unlinks) durable.
    public static func fsyncDirectory(_ path: String) throws(SystemError) {
        let fd = try open(path, flags: O_RDONLY | O_DIRECTORY)
        defer { Glibc.close(fd) }
        try fsync(fd, path: path)
    }

    /// Writes back everything dirty on the file system that holds `fd` (files,
    /// directories, metadata) and flushes the device: one sync for many files,
    /// where an fsync per file and per directory costs several device writes each.
    /// Reports a write-back error of any file on it since `fd` last asked.
    public static func syncFileSystem(_ fd: Int32, path: String = "") throws(SystemError) {
        try Fault.check("syncfs", path)
        if Fault.skipsSync() { return }
        while spool_syncfs(fd) != 0 {
            if currentErrno() != EINTR { throw .last("syncfs", path) }
        }
    }

    /// Starts writing a range of a file back to disk without waiting (a hint:
    /// the fsync that follows has less to wait for). Errors are the fsync's to report.
    public static func startWriteBack(_ fd: Int32, from offset: Int64, count: Int64) {
        _ = spool_start_writeback(fd, offset, count)
    }

    public static func truncate(_ fd: Int32, to length: Int64, path: String = "") throws(SystemError) {
        while ftruncate(fd, off_t(length)) != 0 {
            if currentErrno() != EINTR { throw .last("truncate", path) }
        }
    }

    public static func close(_ fd: Int32) {
        // Linux closes the descriptor even when close reports EINTR: never retry.
        _ = Glibc.close(fd)
    }

    /// `O_TMPFILE`, which Swift's Glibc module does not import (it is two flags in C).
    static let tmpfileFlag: Int32 = 0o20_000_000 | O_DIRECTORY

    /// Whether open files can be given a name later (`linkUnnamed`): Linux with /proc mounted.
    public static let canLinkUnnamed = isDirectory("/proc/self/fd")

    /// Opens a new file with no name in `directory` (`O_TMPFILE`): it appears only
    /// when linked, and a crash before then leaves nothing behind in the tree. nil
    /// when the file system or kernel does not offer it, or the directory is gone.
    public static func openUnnamed(in directory: String, mode: mode_t = 0o640) -> Int32? {
        while true {
            let fd = Glibc.open(directory, tmpfileFlag | O_RDWR | O_CLOEXEC, mode)
            if fd >= 0 { return fd }
            if currentErrno() != EINTR { return nil }
        }
    }

    /// Gives the unnamed file open on `fd` the name `path` (`linkat` through
    /// /proc, which needs no privilege, unlike `AT_EMPTY_PATH`). Throws EEXIST
    /// when the name is taken.
    public static func linkUnnamed(_ fd: Int32, to path: String) throws(SystemError) {
        try Fault.check("link", path)
        if linkat(AT_FDCWD, "/proc/self/fd/\(fd)", AT_FDCWD, path, AT_SYMLINK_FOLLOW) != 0 {
            throw .last("link", path)
        }
    }

    /// Whether the file at `path` holds exactly the bytes of the file open on `fd`.
    public static func sameContents(_ fd: Int32, _ path: String) throws(SystemError) -> Bool {
        let other = try open(path, flags: O_RDONLY)
        defer { Glibc.close(other) }
        guard try size(fd: fd, path: path) == size(fd: other, path: path) else { return false }
        let chunk = 64 << 10
        var mine = [UInt8](repeating: 0, count: chunk)
        var theirs = [UInt8](repeating: 0, count: chunk)
        var offset: off_t = 0
        while true {
            let n = try readSome(fd, into: &mine, at: offset, path: path)
            let m = try readSome(other, into: &theirs, at: offset, path: path)
            guard n == m else { return false }
            if n == 0 { return true }
            guard mine[0..<n] == theirs[0..<m] else { return false }
            offset += off_t(n)
        }
    }

    private static func readSome(_ fd: Int32, into buffer: inout [UInt8], at offset: off_t, path: String) throws(SystemError) -> Int {
        while true {
            let n = buffer.withUnsafeMutableBytes { pread(fd, $0.baseAddress, $0.count, offset) }
            if n >= 0 { return n }
            if currentErrno() != EINTR { throw .last("read", path) }
        }
    }

    /// A second name for a file; throws EEXIST, never replacing, when `to` is taken.
    public static func link(_ from: String, _ to: String) throws(SystemError) {
        try Fault.check("link", to)
        if Glibc.link(from, to) != 0 { throw .last("link", to) }
    }

    /// The first `limit` bytes of a file, as UTF-8 text (a /proc entry, a pid file).
    public static func readSmall(_ path: String, limit: Int = 4096) throws(SystemError) -> String {
        let fd = try open(path, flags: O_RDONLY)
        defer { Glibc.close(fd) }
        var buffer = [UInt8](repeating: 0, count: limit)
        let n = try readSome(fd, into: &buffer, at: 0, path: path)
        return String(decoding: buffer[0..<n], as: UTF8.self)
    }

    public static func rename(_ from: String, _ to: String) throws(SystemError) {
        try Fault.check("rename", to)
        if Glibc.rename(from, to) != 0 { throw .last("rename", "\(from) to \(to)") }
    }

    /// Removes a file; a file that is already gone is not an error.
    public static func unlink(_ path: String) throws(SystemError) {
        try Fault.check("unlink", path)
        if Glibc.unlink(path) != 0 && currentErrno() != ENOENT { throw .last("unlink", path) }
    }

    /// Takes an exclusive advisory lock without waiting; false when another open
    /// file (in any process) holds it. The lock goes with the descriptor, so a
    /// process that dies releases it.
    public static func tryLock(_ fd: Int32, path: String = "") throws(SystemError) -> Bool {
        while flock(fd, LOCK_EX | LOCK_NB) != 0 {
            switch currentErrno() {
            case EINTR: continue
            case EWOULDBLOCK: return false
            default: throw .last("flock", path)
            }
        }
        return true
    }

    /// Whether another descriptor (in any process) holds the file's `flock`; false
    /// when there is no such file. Looking takes the lock for an instant.
    public static func isLockedElsewhere(_ path: String) -> Bool {
        guard let fd = try? open(path, flags: O_RDONLY) else { return false }
        defer { close(fd) }
        return (try? tryLock(fd, path: path)) == false
    }

    /// Size of an open file.
    public static func size(fd: Int32, path: String = "") throws(SystemError) -> Int64 {
        var st = stat()
        guard fstat(fd, &st) == 0 else { throw .last("fstat", path) }
        return Int64(st.st_size)
    }

    public static func exists(_ path: String) -> Bool {
        var st = stat()
        return stat(path, &st) == 0
    }

    /// Size of a regular file, or nil when it does not exist.
    public static func size(_ path: String) throws(SystemError) -> Int64? {
        var st = stat()
        if stat(path, &st) != 0 {
            if currentErrno() == ENOENT { return nil }
            throw .last("stat", path)
        }
        return Int64(st.st_size)
    }

    /// Creates a directory and its missing parents. Each directory it creates is
    /// made durable in its parent, so a later rename into it survives a crash,
    /// unless `durable` is false (the caller then fsyncs the parent once for many).
    /// Returns whether anything was created.
    @discardableResult
    public static func makeDirectories(_ path: String, mode: mode_t = 0o750, durable: Bool = true) throws(SystemError) -> Bool {
        if exists(path) { return false }
        let parent = parentDirectory(of: path)
        if parent != path { try makeDirectories(parent, mode: mode) }
        if Glibc.mkdir(path, mode) != 0 {
            if currentErrno() == EEXIST { return false }
            throw .last("mkdir", path)
        }
        if durable { try fsyncDirectory(parent) }
        return true
    }

    public static func parentDirectory(of path: String) -> String {
        guard let slash = path.lastIndex(of: "/") else { return "." }
        if slash == path.startIndex { return "/" }
        return String(path[..<slash])
    }

    /// Whether `path` names a directory (following symbolic links); false if it is missing.
    public static func isDirectory(_ path: String) -> Bool {
        var st = stat()
        return stat(path, &st) == 0 && (st.st_mode & S_IFMT) == S_IFDIR
    }

    /// Removes an empty directory; one that is already gone is not an error.
    public static func removeDirectory(_ path: String) throws(SystemError) {
        if Glibc.rmdir(path) != 0 && currentErrno() != ENOENT { throw .last("rmdir", path) }
    }

    /// Names in a directory, without "." and "..". A missing directory is empty.
    public static func list(_ path: String) throws(SystemError) -> [String] {
        guard let dir = opendir(path) else {
            if currentErrno() == ENOENT { return [] }
            throw .last("opendir", path)
        }
        defer { closedir(dir) }
        var names: [String] = []
        while let entry = readdir(dir) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                String(decoding: raw.prefix(while: { $0 != 0 }), as: UTF8.self)
            }
            if name != "." && name != ".." { names.append(name) }
        }
        return names
    }
}
