#if canImport(Glibc)
import Glibc
#endif

/// Logging goes to standard error. With a log file, the file is opened and put in
/// place of descriptor 2, so every process (and every line, written whole) goes
/// there; reopening after a rotation is the same call again (USR1).
public enum LogFile {
    public static func redirectStandardError(to path: String) throws(SystemError) {
        let fd = try Files.open(path, flags: O_WRONLY | O_APPEND | O_CREAT, mode: 0o644)
        defer { Files.close(fd) }
        guard dup2(fd, STDERR_FILENO) >= 0 else { throw .last("dup2", path) }
    }
}
