#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Thin, typed wrappers over the file system calls the store and workers need.
/// Every function retries EINTR and throws a `SystemError` naming the path.
public enum Files {
    public static func open(_ path: String, flags: Int32, mode: mode_t = 0o640) throws(SystemError) -> Int32 {
        while true {
            let fd = Glibc.open(path, flags | O_CLOEXEC, mode)
            if fd >= 0 { return fd }
            if currentErrno() != EINTR { throw .last("open", path) }
        }
    }

    /// Writes every byte or throws; a short write is continued, never ignored.
    public static func writeAll(_ fd: Int32, _ bytes: UnsafeRawBufferPointer, path: String = "") throws(SystemError) {
        guard var base = bytes.baseAddress else { return }
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
        while Glibc.fsync(fd) != 0 {
            if currentErrno() != EINTR { throw .last("fsync", path) }
        }
    }

    /// Like fsync, but skips timestamps: enough for a file's bytes and size.
    public static func fdatasync(_ fd: Int32, path: String = "") throws(SystemError) {
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

    public static func close(_ fd: Int32) {
        // Linux closes the descriptor even when close reports EINTR: never retry.
        _ = Glibc.close(fd)
    }

    public static func rename(_ from: String, _ to: String) throws(SystemError) {
        if Glibc.rename(from, to) != 0 { throw .last("rename", "\(from) to \(to)") }
    }

    /// Removes a file; a file that is already gone is not an error.
    public static func unlink(_ path: String) throws(SystemError) {
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
