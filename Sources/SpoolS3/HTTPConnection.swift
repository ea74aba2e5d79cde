import CSpoolSys
import SpoolSystem

#if canImport(Glibc)
import Glibc
#endif

/// What a request sends after its head.
public enum RequestBody: Sendable {
    case empty
    case bytes([UInt8])
    /// `count` bytes of a file from `offset`, sent with sendfile (no copy through us).
    case file(fd: Int32, offset: Int64, count: Int64)

    var count: Int64 {
        switch self {
        case .empty: 0
        case .bytes(let bytes): Int64(bytes.count)
        case .file(_, _, let count): count
        }
    }
}

public struct HTTPResponse: Sendable {
    public var status: Int
    public var headers: [(name: String, value: String)]
    /// The body, unless it went to the caller's sink.
    public var body: [UInt8]

    public func header(_ name: String) -> String? {
        headers.first { $0.name.caseInsensitiveCompare(name) }?.value
    }

    public var text: Substring { Substring(String(decoding: body, as: UTF8.self)) }
}

extension String {
    fileprivate func caseInsensitiveCompare(_ other: String) -> Bool { lowercased() == other.lowercased() }
}

/// One blocking HTTP/1.1 connection to the store, kept alive between requests.
/// The blob store runs on the store's thread pool, where blocking is the rule,
/// so a socket with timeouts is all it takes (no event loop of its own).
final class HTTPConnection {
    let fd: Int32
    private var buffer = [UInt8](repeating: 0, count: 64 << 10)
    private var start = 0, end = 0
    /// False once the connection cannot carry another request.
    private(set) var reusable = true
    /// Requests this connection has carried: a failure on one already used may
    /// be the store closing an idle connection, worth one retry on a new one.
    private(set) var used = 0

    init(host: String, port: Int, timeout: Int) throws(S3Error) {
        do {
            fd = try Sockets.connect(host: host, port: port, timeout: timeout)
        } catch {
            throw .transport(SystemError(error.operation, "\(host):\(port)", errno: error.errno))
        }
    }

    deinit { Glibc.close(fd) }

    /// Sends a request and reads its answer. A 2xx body goes to `sink` when one
    /// is given (a download); any other body is kept in the response (S3's error XML).
    func exchange(
        head: String, body: RequestBody, expectsBody: Bool = true,
        sink: ((UnsafeRawBufferPointer) throws(S3Error) -> Void)? = nil
    ) throws(S3Error) -> HTTPResponse {
        try readBody(of: begin(head: head, body: body), expectsBody: expectsBody, sink: sink)
    }

    /// Reads the body of an answer whose head `begin` read (see `exchange`).
    func readBody(
        of head: HTTPResponse, expectsBody: Bool = true, sink: ((UnsafeRawBufferPointer) throws(S3Error) -> Void)? = nil
    ) throws(S3Error) -> HTTPResponse {
        var response = head
        let length = response.header("Content-Length").flatMap { Int64($0.trimmingCharacters()) }
        let chunked = response.header("Transfer-Encoding")?.lowercased().contains("chunked") ?? false
        let closes = response.header("Connection")?.lowercased() == "close"
        let deliver: (UnsafeRawBufferPointer) throws(S3Error) -> Void
        var kept: [UInt8] = []
        if let sink, (200..<300).contains(response.status) {
            deliver = sink
        } else {
            deliver = { (bytes: UnsafeRawBufferPointer) throws(S3Error) in
                guard kept.count + bytes.count <= 16 << 20 else { throw .malformed(operation: "read", detail: "an answer over 16 MiB") }
                kept.append(contentsOf: bytes)
            }
        }
        if !expectsBody || response.status == 204 || response.status == 304 || (100..<200).contains(response.status) {
            reusable = !closes
        } else if chunked {
            try readChunked(deliver)
            reusable = !closes
        } else if let length {
            try readExactly(length, deliver)
            reusable = !closes
        } else {
            try readToClose(deliver)
        }
        response.body = kept
        return response
    }

    /// Sends a request and reads the head of its answer, leaving the body to be
    /// read (`exchange`, or `readSome` a piece at a time for a download).
    func begin(head: String, body: RequestBody) throws(S3Error) -> HTTPResponse {
        used += 1
        reusable = false  // until the answer has been read to its end
        try send(Array(head.utf8))
        switch body {
        case .empty: break
        case .bytes(let bytes): try send(bytes)
        case .file(let file, let offset, let count): try sendFile(file, offset: offset, count: count)
        }
        return try readHead()
    }

    /// Reads at most `max` bytes of a body of `left` bytes still to come (a
    /// download a piece at a time); when `left` reaches 0 the connection can carry
    /// another request unless the answer said it closes.
    func readSome(max: Int, left: inout Int64, closes: Bool, _ deliver: (UnsafeRawBufferPointer) -> Void) throws(S3Error) -> Int {
        guard left > 0 else { return 0 }
        if start == end, try !fill() {
            throw .transport(SystemError("recv", "the answer ended \(left) bytes early", errno: ECONNRESET))
        }
        let take = Int(min(Int64(min(end - start, max)), left))
        buffer.withUnsafeBytes { deliver(UnsafeRawBufferPointer(rebasing: $0[start..<(start + take)])) }
        start += take
        left -= Int64(take)
        if left == 0 { reusable = !closes }
        return take
    }

    // MARK: Sending

    private func send(_ bytes: [UInt8]) throws(S3Error) {
        do { try Sockets.sendAll(fd, bytes) } catch { throw .transport(error) }
    }

    private func sendFile(_ file: Int32, offset: Int64, count: Int64) throws(S3Error) {
        var position = off_t(offset)
        var left = count
        while left > 0 {
            let n = sendfile(fd, file, &position, Int(min(left, 1 << 30)))
            if n < 0 {
                if currentErrno() == EINTR { continue }
                throw .transport(.last("sendfile"))
            }
            if n == 0 { throw .transport(SystemError("sendfile", "the file ended early", errno: EIO)) }
            left -= Int64(n)
        }
    }

    // MARK: Receiving

    /// Refills the buffer; false at the end of the stream.
    private func fill() throws(S3Error) -> Bool {
        if start == end { start = 0; end = 0 }
        if end == buffer.count {
            buffer.removeSubrange(0..<start)
            end -= start
            start = 0
            if end == buffer.count { buffer.append(contentsOf: [UInt8](repeating: 0, count: buffer.count)) }
        }
        while true {
            let n = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress! + end, $0.count - end, 0) }
            if n < 0 {
                if currentErrno() == EINTR { continue }
                throw .transport(.last("recv"))
            }
            end += n
            return n > 0
        }
    }

    private func readLine() throws(S3Error) -> String {
        while true {
            if let newline = buffer[start..<end].firstIndex(of: UInt8(ascii: "\n")) {
                var line = buffer[start..<newline]
                if line.last == UInt8(ascii: "\r") { line = line.dropLast() }
                start = newline + 1
                return String(decoding: line, as: UTF8.self)
            }
            guard end - start < 64 << 10 else { throw .malformed(operation: "read", detail: "a header line over 64 KiB") }
            guard try fill() else { throw .transport(SystemError("recv", "the store closed the connection", errno: ECONNRESET)) }
        }
    }

    private func readHead() throws(S3Error) -> HTTPResponse {
        while true {
            let statusLine = try readLine()
            let fields = statusLine.split(separator: " ", maxSplits: 2)
            guard fields.count >= 2, fields[0].hasPrefix("HTTP/1."), let status = Int(fields[1]) else {
                throw .malformed(operation: "read", detail: "status line \(statusLine.prefix(80))")
            }
            var headers: [(name: String, value: String)] = []
            while true {
                let line = try readLine()
                if line.isEmpty { break }
                guard let colon = line.firstIndex(of: ":") else { continue }
                headers.append((String(line[..<colon]), String(line[line.index(after: colon)...]).trimmingCharacters()))
            }
            if status == 100 { continue }
            return HTTPResponse(status: status, headers: headers, body: [])
        }
    }

    private func readExactly(_ length: Int64, _ deliver: (UnsafeRawBufferPointer) throws(S3Error) -> Void) throws(S3Error) {
        var left = length
        while left > 0 {
            if start == end, try !fill() {
                throw .transport(SystemError("recv", "the answer ended \(left) bytes early", errno: ECONNRESET))
            }
            let take = Int(min(Int64(end - start), left))
            try hand(start..<(start + take), to: deliver)
            start += take
            left -= Int64(take)
        }
    }

    /// Gives the buffered bytes in `range` to `deliver` (withUnsafeBytes does not carry a typed error).
    private func hand(_ range: Range<Int>, to deliver: (UnsafeRawBufferPointer) throws(S3Error) -> Void) throws(S3Error) {
        let failed = buffer.withUnsafeBytes { raw -> S3Error? in
            do throws(S3Error) { try deliver(UnsafeRawBufferPointer(rebasing: raw[range])) } catch { return error }
            return nil
        }
        if let failed { throw failed }
    }

    private func readChunked(_ deliver: (UnsafeRawBufferPointer) throws(S3Error) -> Void) throws(S3Error) {
        while true {
            let line = try readLine()
            let sizeText = line.split(separator: ";").first.map { String($0).trimmingCharacters() } ?? ""
            guard let size = Int64(sizeText, radix: 16), size >= 0 else {
                throw .malformed(operation: "read", detail: "chunk size \(line.prefix(40))")
            }
            if size == 0 {
                while try !readLine().isEmpty {}  // trailers
                return
            }
            try readExactly(size, deliver)
            _ = try readLine()
        }
    }

    private func readToClose(_ deliver: (UnsafeRawBufferPointer) throws(S3Error) -> Void) throws(S3Error) {
        while true {
            if start < end {
                let (from, to) = (start, end)
                try hand(from..<to, to: deliver)
                start = end
            }
            guard try fill() else { return }
        }
    }
}

extension String {
    func trimmingCharacters() -> String {
        var s = self[...]
        while s.first == " " || s.first == "\t" { s = s.dropFirst() }
        while s.last == " " || s.last == "\t" || s.last == "\r" { s = s.dropLast() }
        return String(s)
    }
}
