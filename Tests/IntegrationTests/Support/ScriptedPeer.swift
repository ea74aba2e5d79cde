import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// A listening socket on 127.0.0.1 whose one connection a test drives by hand,
/// to see exactly what the `spool` client sends and when.
final class ScriptedPeer {
    private let fd: Int32
    let port: Int

    init() throws {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        self.fd = fd
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = 0
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                bind(fd, $0, length) == 0 && listen(fd, 1) == 0 && getsockname(fd, $0, &length) == 0
            }
        }
        guard bound else {
            close(fd)
            throw HarnessError("cannot listen on 127.0.0.1")
        }
        port = Int(UInt16(bigEndian: address.sin_port))
    }

    deinit { close(fd) }

    /// The client's connection, within 10 s.
    func accept() throws -> Peer {
        var pfd = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
        guard poll(&pfd, 1, 10_000) == 1 else { throw HarnessError("no client connected") }
        let client = Glibc.accept(fd, nil, nil)
        guard client >= 0 else { throw HarnessError("accept failed") }
        return Peer(fd: client)
    }

    final class Peer {
        private let fd: Int32
        private var buffer: [UInt8] = []

        init(fd: Int32) { self.fd = fd }
        deinit { close(fd) }

        func send(_ text: String) throws {
            let bytes = Array(text.utf8)
            let n = bytes.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
            guard n == bytes.count else { throw HarnessError("send failed") }
        }

        /// Whatever arrives within `timeout` seconds, or nil if nothing does.
        private func fill(timeout: Double) throws -> Bool {
            var pfd = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            guard poll(&pfd, 1, Int32(timeout * 1000)) == 1 else { return false }
            var chunk = [UInt8](repeating: 0, count: 65536)
            let n = recv(fd, &chunk, chunk.count, 0)
            guard n > 0 else { throw HarnessError("the client closed the connection") }
            buffer += chunk[0..<n]
            return true
        }

        func readLine(timeout: Double = 10) throws -> String {
            while true {
                if let newline = buffer.firstIndex(of: 10) {
                    let line = String(decoding: buffer[..<newline], as: UTF8.self)
                    buffer.removeSubrange(...newline)
                    return line
                }
                guard try fill(timeout: timeout) else { throw HarnessError("no line within \(timeout) s") }
            }
        }

        /// Exactly `count` bytes, or nil if they have not all come within `timeout` seconds.
        func read(count: Int, timeout: Double = 10) throws -> [UInt8]? {
            while buffer.count < count {
                guard try fill(timeout: timeout) else { return nil }
            }
            defer { buffer.removeFirst(count) }
            return Array(buffer[0..<count])
        }
    }
}
