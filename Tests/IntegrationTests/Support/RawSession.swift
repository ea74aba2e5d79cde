import Foundation

/// A plain TCP session, as `nc` would have it: bytes out, lines in. No client library.
final class RawSession {
    private let fd: Int32
    private var buffer: [UInt8] = []

    init(port: Int) throws {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        self.fd = fd
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let rc = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard rc == 0 else {
            close(fd)
            throw HarnessError("connect to port \(port) failed")
        }
        var timeout = timeval(tv_sec: 10, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        greetingLine = try readLine()
    }

    private var greetingLine = ""
    var greetingText: String { greetingLine }
    var worker: String { greetingLine.components(separatedBy: "worker=").last ?? "" }

    deinit { close(fd) }

    func send(_ text: String) throws {
        try send(bytes: Array(text.utf8))
    }

    func send(bytes: [UInt8]) throws {
        var offset = 0
        while offset < bytes.count {
            let n = bytes[offset...].withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
            guard n > 0 else { throw HarnessError("send failed") }
            offset += n
        }
    }

    func readLine() throws -> String {
        while true {
            if let newline = buffer.firstIndex(of: 10) {
                let line = String(decoding: buffer[..<newline], as: UTF8.self)
                buffer.removeSubrange(...newline)
                return line
            }
            var chunk = [UInt8](repeating: 0, count: 4096)
            let n = recv(fd, &chunk, chunk.count, 0)
            guard n > 0 else { throw HarnessError("connection closed or timed out; had \(buffer.count) bytes") }
            buffer.append(contentsOf: chunk[0..<n])
        }
    }

    /// A line if one arrives within a moment, else nil (for a peer that may close on us).
    func readLineNow() throws -> String? {
        var pfd = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
        if buffer.firstIndex(of: 10) == nil && poll(&pfd, 1, 10) <= 0 { return nil }
        return try readLine()
    }

    /// Every line of one reply: up to the line whose code is followed by a space.
    func readReply() throws -> [String] {
        var lines: [String] = []
        while true {
            let line = try readLine()
            lines.append(line)
            if line.count == 3 || line.dropFirst(3).first == " " { return lines }
        }
    }

    /// Sends a command and returns its reply lines.
    func ask(_ command: String) throws -> [String] {
        try send(command + "\r\n")
        return try readReply()
    }
}

/// The three-digit code of a reply line.
func code(_ line: String?) -> Int { Int(line?.prefix(3) ?? "") ?? 0 }
