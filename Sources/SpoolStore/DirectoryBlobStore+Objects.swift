#if canImport(Glibc)
import Glibc
#endif
import Crypto
import SpoolProtocol
import SpoolSystem

extension DirectoryBlobStore {
    public func objectSize(sha256: String) -> Int64? {
        (try? Files.size(directory.objectFile(sha256: sha256))) ?? nil
    }

    public func removeObject(sha256: String) throws(SystemError) -> Bool {
        do {
            try Files.unlink(directory.objectFile(sha256: sha256))
            return true
        } catch where error.errno == ENOENT {
            return false
        }
    }

    /// The entries of objects/xx/ that are not directories.
    public func objectNames() throws(SystemError) -> [String] {
        var found: [String] = []
        for a in try Files.list(directory.objectsPath).sorted() {
            let level1 = directory.objectsPath + "/" + a
            for name in try Files.list(level1).sorted() where !Files.isDirectory(level1 + "/" + name) {
                found.append(name)
            }
        }
        return found
    }

    public func hashObject(sha256: String) throws(SystemError) -> String {
        let path = directory.objectFile(sha256: sha256)
        let fd = try Files.open(path, flags: O_RDONLY)
        defer { Files.close(fd) }
        let size = try Files.size(fd: fd, path: path)
        return Checksum.hex(try Self.hash(fd: fd, from: 0, to: size, continuing: ResumableSHA256(), path: path).finalize())
    }

    /// The object's file: the caller sends the range from it.
    public func openObject(sha256: String, size: Int64, range: Range<Int64>) throws(SystemError) -> ObjectBytes {
        let path = directory.objectFile(sha256: sha256)
        let fd = try Files.open(path, flags: O_RDONLY)
        do throws(SystemError) {
            let actual = try Files.size(fd: fd, path: path)
            guard actual == size else {
                throw SystemError("read", "\(path) (\(actual) bytes, its record says \(size))", errno: EIO)
            }
        } catch {
            Files.close(fd)
            throw error
        }
        return .file(fd)
    }

    public var quarantinePath: String { directory.spoolPath + "/quarantine" }

    public func quarantineObject(sha256: String) throws(SystemError) -> String {
        try quarantine(directory.objectFile(sha256: sha256), into: "objects")
    }

    public func quarantineStaging(named name: String) throws(SystemError) -> String {
        try quarantine(directory.tempPath + "/" + name, into: "tmp")
    }

    private func quarantine(_ path: String, into folder: String) throws(SystemError) -> String {
        let target = quarantinePath + "/" + folder
        let name = path.split(separator: "/").last.map(String.init) ?? "file"
        var destination = target + "/" + name
        var n = 1
        while Files.exists(destination) {
            destination = target + "/\(name).\(n)"
            n += 1
        }
        try Files.makeDirectories(target)
        try Files.rename(path, destination)
        try Files.fsyncDirectory(target)
        return destination
    }

    public func objectLocation(sha256: String) -> String { directory.objectFile(sha256: sha256) }
    public func stagingLocation(named name: String) -> String { directory.tempPath + "/" + name }

    /// Free bytes for an unprivileged writer on the spool's file system.
    public func freeBytes() throws(SystemError) -> Int64 {
        var st = statvfs()
        guard statvfs(directory.spoolPath, &st) == 0 else { throw .last("statvfs", directory.spoolPath) }
        return Int64(st.f_bavail) * Int64(st.f_frsize)
    }
}
