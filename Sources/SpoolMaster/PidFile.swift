import SpoolSystem

#if canImport(Glibc)
import Glibc
#endif

/// The master's pid file, guarded by an advisory lock held for the master's life.
/// A stale file (its process gone) has no lock holder, so a new master takes it
/// over; a live one makes a second master fail with the first one's pid.
struct PidFile {
    let path: String
    let fd: Int32

    enum Failure: Error, CustomStringConvertible {
        case alreadyRunning(path: String, pid: String)
        case system(SystemError)

        var description: String {
            switch self {
            case .alreadyRunning(let path, let pid):
                "another spoold (pid \(pid)) is running on this data directory (\(path) is locked); "
                    + "stop it first, or use another --data-dir"
            case .system(let error): error.description
            }
        }
    }

    static func lock(_ path: String) throws(Failure) -> PidFile {
        let fd: Int32
        do { fd = try Files.open(path, flags: O_RDWR | O_CREAT, mode: 0o644) } catch { throw .system(error) }
        if flock(fd, LOCK_EX | LOCK_NB) != 0 {
            var buffer = [UInt8](repeating: 0, count: 32)
            let n = read(fd, &buffer, buffer.count)
            Files.close(fd)
            let pid = String(decoding: buffer.prefix(max(0, n)).filter { $0 >= 48 && $0 <= 57 }, as: UTF8.self)
            throw .alreadyRunning(path: path, pid: pid.isEmpty ? "unknown" : pid)
        }
        return PidFile(path: path, fd: fd)
    }

    func write(pid: Int32) throws(SystemError) {
        guard ftruncate(fd, 0) == 0 else { throw .last("truncate", path) }
        let text = "\(pid)\n"
        let bytes = Array(text.utf8)
        guard pwrite(fd, bytes, bytes.count, 0) == bytes.count else { throw .last("write", path) }
    }

    /// Removes the file, then drops the lock by closing it.
    func remove() {
        try? Files.unlink(path)
        Files.close(fd)
    }
}
