import Crypto
import SpoolProtocol
import SpoolSystem

#if canImport(Glibc)
import Glibc
#endif

/// Size and SHA-256 of a file, read in 1 MiB blocks (never the whole file at once).
public struct FileDigest: Sendable, Equatable {
    public let size: Int64
    public let sha256: String

    public static func of(path: String) throws(SystemError) -> FileDigest {
        let fd = try Files.open(path, flags: O_RDONLY)
        defer { Files.close(fd) }
        return try of(fd: fd, path: path)
    }

    public static func of(fd: Int32, path: String) throws(SystemError) -> FileDigest {
        var hasher = SHA256()
        var size: Int64 = 0
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 1 << 20, alignment: 16)
        defer { buffer.deallocate() }
        var offset: off_t = 0
        while true {
            let n = pread(fd, buffer.baseAddress, buffer.count, offset)
            if n < 0 {
                if currentErrno() == EINTR { continue }
                throw .last("read", path)
            }
            if n == 0 { break }
            hasher.update(bufferPointer: UnsafeRawBufferPointer(rebasing: buffer[0..<n]))
            size += Int64(n)
            offset += off_t(n)
        }
        return FileDigest(size: size, sha256: Checksum.hex(hasher.finalize()))
    }

    /// A small file's bytes and their digest, from one read: the bytes are then sent as they are.
    public static func contents(fd: Int32, path: String, size: Int64) throws(SystemError) -> (FileDigest, [UInt8]) {
        var bytes = [UInt8](repeating: 0, count: Int(size))
        var done = 0
        while done < bytes.count {
            let n = bytes.withUnsafeMutableBytes { pread(fd, $0.baseAddress.map { $0 + done }, $0.count - done, off_t(done)) }
            if n < 0 {
                if currentErrno() == EINTR { continue }
                throw .last("read", path)
            }
            if n == 0 { throw SystemError("read", "\(path) shrank while uploading", errno: EIO) }
            done += n
        }
        return (FileDigest(size: size, sha256: Checksum.hex(SHA256.hash(data: bytes))), bytes)
    }
}
