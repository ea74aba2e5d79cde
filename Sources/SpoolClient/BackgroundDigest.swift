import Foundation
import SpoolSystem

/// Hashes a file on its own thread while the caller sends it: for an upload whose
/// checksum goes after the body (`digest-after`), the file is then read once by
/// the hash and once by sendfile at the same time, instead of hashed first.
/// Both read through the page cache with their own offsets (pread, sendfile).
final class BackgroundDigest: @unchecked Sendable {
    private let condition = Condition()
    private var result: Result<FileDigest, SystemError>?

    init(fd: Int32, path: String) {
        let thread = Thread { [self] in
            let outcome = Result { () throws(SystemError) -> FileDigest in try FileDigest.of(fd: fd, path: path) }
            condition.lock()
            result = outcome
            condition.broadcast()
            condition.unlock()
        }
        thread.start()
    }

    /// Waits for the hash. Must be called before the file descriptor is closed.
    func wait() throws(SystemError) -> FileDigest {
        condition.lock()
        defer { condition.unlock() }
        while true {
            if let result { return try result.get() }
            condition.wait()
        }
    }
}
