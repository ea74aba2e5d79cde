import SpoolProtocol
import SpoolSystem

#if canImport(Glibc)
import Glibc
#endif

/// One blocking HTTP/1.1 request on its own connection (`Connection: close`):
/// the request out, the response head in, then the body read by the caller in
/// pieces, so a large download never sits in memory.
final class HTTPExchange {
    private let transport: any Transport
    let head: ResponseHead
    /// Body bytes that came with the head.
    private var pending: [UInt8]
    /// Body bytes still to come, from `Content-Length`.
    private(set) var remaining: Int64

    init(server: String, method: String, path: String, headers: [String: String], tls: ClientTLS? = nil) throws(ClientError) {
        transport = try Transports.connect(server, tls: tls, alpn: ["http/1.1"])
        (head, pending) = try Self.start(transport, server: server, method: method, path: path, headers: headers)
        if method == "HEAD" || head.status == 204 || head.status == 304 {
            remaining = 0
            pending = []
        } else {
            remaining = (head.headers["content-length"].flatMap { Int64($0) } ?? Int64.max) - Int64(pending.count)
        }
    }

    /// Sends the request and reads up to the end of the response head.
    private static func start(
        _ transport: any Transport, server: String, method: String, path: String, headers: [String: String]
    ) throws(ClientError) -> (ResponseHead, [UInt8]) {
        var request = "\(method) \(path) HTTP/1.1\r\nHost: \(server)\r\nUser-Agent: spool\r\nConnection: close\r\n"
        for (name, value) in headers.sorted(by: { $0.key < $1.key }) { request += "\(name): \(value)\r\n" }
        request += "\r\n"
        try transport.send(Array(request.utf8))
        var received: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 16 << 10)
        while true {
            let n = try receive(transport, &buffer)
            if n == 0 { throw .connectionLost("the server closed the connection before answering") }
            received += buffer[0..<n]
            switch ResponseHead.parse(received) {
            case .incomplete: continue
            case .malformed(let reason): throw .protocolViolation(reason)
            case .head(let head, let length): return (head, Array(received[length...]))
            }
        }
    }

    /// The next piece of the body, at most `buffer.count` bytes; empty at its end.
    func read(into buffer: inout [UInt8]) throws(ClientError) -> Int {
        if !pending.isEmpty {
            let n = min(pending.count, buffer.count)
            buffer.replaceSubrange(0..<n, with: pending[0..<n])
            pending.removeFirst(n)
            return n
        }
        guard remaining > 0 else { return 0 }
        let n = try Self.receive(transport, &buffer, limit: Int(min(Int64(buffer.count), remaining)))
        if n == 0 {
            if remaining == Int64.max { remaining = 0; return 0 }  // no length: the body ends with the connection
            throw .connectionLost("the server closed the connection \(remaining) bytes early")
        }
        if remaining != Int64.max { remaining -= Int64(n) }
        return n
    }

    /// The whole body as text, for a short answer (an error's message).
    func text(limit: Int = 4096) -> String {
        var buffer = [UInt8](repeating: 0, count: limit)
        var out: [UInt8] = []
        while out.count < limit, let n = try? read(into: &buffer), n > 0 { out += buffer[0..<n] }
        return String(decoding: out.prefix(limit), as: UTF8.self).trimming("\r\n ")
    }

    private static func receive(_ transport: any Transport, _ buffer: inout [UInt8], limit: Int? = nil) throws(ClientError) -> Int {
        try transport.receive(into: &buffer, limit: limit)
    }
}
