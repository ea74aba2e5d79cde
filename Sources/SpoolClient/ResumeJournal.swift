import SpoolSystem

#if canImport(Glibc)
import Glibc
#endif

/// What the client remembers between runs: for each file being uploaded, the
/// server's upload id, so running `spool upload` again on the same file resumes
/// instead of starting over. An upload declared with its checksum is known by its
/// content (SHA-256 and size); one whose checksum goes after the body, by the file
/// itself (device, inode, size and modification time), since its hash is not
/// known when it starts. One small file per entry, written by rename, so
/// concurrent `spool` processes never corrupt each other.
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

    public func lookup(sha256: String, size: Int64) -> String? { lookup(key: "\(sha256)-\(size)") }
    public func record(sha256: String, size: Int64, id: String) { record(key: "\(sha256)-\(size)", id: id) }
    public func forget(sha256: String, size: Int64) { forget(key: "\(sha256)-\(size)") }

    public func lookup(file: FileIdentity) -> String? { lookup(key: file.key) }
    public func record(file: FileIdentity, id: String) { record(key: file.key, id: id) }
    public func forget(file: FileIdentity) { forget(key: file.key) }

    private func lookup(key: String) -> String? {
        guard let fd = try? Files.open(path(key), flags: O_RDONLY) else { return nil }
        defer { Files.close(fd) }
        var buffer = [UInt8](repeating: 0, count: 64)
        let n = read(fd, &buffer, buffer.count)
        guard n > 0 else { return nil }
        let id = String(decoding: buffer.prefix(n), as: UTF8.self).filter { !$0.isWhitespace }
        return id.isEmpty ? nil : id
    }

    /// Best effort: a journal that cannot be written only costs a resume later.
    private func record(key: String, id: String) {
        guard (try? Files.makeDirectories(directory, mode: 0o700)) != nil else { return }
        let final = path(key)
        let temp = final + ".tmp\(getpid())"
        guard let fd = try? Files.open(temp, flags: O_WRONLY | O_CREAT | O_TRUNC, mode: 0o600) else { return }
        let written = Array((id + "\n").utf8).withUnsafeBytes { (try? Files.writeAll(fd, $0)) != nil }
        Files.close(fd)
        if !written || (try? Files.rename(temp, final)) == nil { try? Files.unlink(temp) }
    }

    private func forget(key: String) {
        try? Files.unlink(path(key))
    }

    private func path(_ key: String) -> String {
        directory + "/" + key
    }

    private static func env(_ name: String) -> String? {
        getenv(name).map { String(cString: $0) }
    }
}

/// Which file this is, as far as the file system can tell without reading it.
public struct FileIdentity: Sendable, Equatable {
    public let device: UInt64
    public let inode: UInt64
    public let size: Int64
    public let modifiedNanoseconds: Int64

    public init(fd: Int32, path: String) throws(SystemError) {
        var info = stat()
        guard fstat(fd, &info) == 0 else { throw .last("stat", path) }
        device = UInt64(info.st_dev)
        inode = UInt64(info.st_ino)
        size = Int64(info.st_size)
        modifiedNanoseconds = Int64(info.st_mtim.tv_sec) * 1_000_000_000 + Int64(info.st_mtim.tv_nsec)
    }

    var key: String { "file-\(device)-\(inode)-\(size)-\(modifiedNanoseconds)" }
}
