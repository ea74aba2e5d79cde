import SpoolSystem

#if canImport(Glibc)
import Glibc
#endif

/// What the client remembers between runs: for each file content (SHA-256 and
/// size) being uploaded, the server's upload id, so running `spool upload` again
/// on the same file resumes instead of starting over. One small file per entry,
/// written by rename, so concurrent `spool` processes never corrupt each other.
public struct ResumeJournal: Sendable {
    public let directory: String

    public init(directory: String) {
        self.directory = directory
    }

    /// `$SPOOL_STATE_DIR`, else `$XDG_STATE_HOME/spool`, else `~/.local/state/spool`.
    public static func defaultDirectory() -> String {
        if let dir = env("SPOOL_STATE_DIR"), !dir.isEmpty { return dir }
        if let state = env("XDG_STATE_HOME"), !state.isEmpty { return state + "/spool" }
        return (env("HOME") ?? "/tmp") + "/.local/state/spool"
    }

    public func lookup(sha256: String, size: Int64) -> String? {
        guard let fd = try? Files.open(path(sha256, size), flags: O_RDONLY) else { return nil }
        defer { Files.close(fd) }
        var buffer = [UInt8](repeating: 0, count: 64)
        let n = read(fd, &buffer, buffer.count)
        guard n > 0 else { return nil }
        let id = String(decoding: buffer.prefix(n), as: UTF8.self).filter { !$0.isWhitespace }
        return id.isEmpty ? nil : id
    }

    /// Best effort: a journal that cannot be written only costs a resume later.
    public func record(sha256: String, size: Int64, id: String) {
        guard (try? Files.makeDirectories(directory, mode: 0o700)) != nil else { return }
        let final = path(sha256, size)
        let temp = final + ".tmp\(getpid())"
        guard let fd = try? Files.open(temp, flags: O_WRONLY | O_CREAT | O_TRUNC, mode: 0o600) else { return }
        let written = Array((id + "\n").utf8).withUnsafeBytes { (try? Files.writeAll(fd, $0)) != nil }
        Files.close(fd)
        if !written || (try? Files.rename(temp, final)) == nil { try? Files.unlink(temp) }
    }

    public func forget(sha256: String, size: Int64) {
        try? Files.unlink(path(sha256, size))
    }

    private func path(_ sha256: String, _ size: Int64) -> String {
        directory + "/\(sha256)-\(size)"
    }

    private static func env(_ name: String) -> String? {
        getenv(name).map { String(cString: $0) }
    }
}
