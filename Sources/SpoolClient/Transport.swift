import CSpoolSys
import SpoolSystem

#if canImport(Glibc)
import Glibc
#endif

/// How the client checks a TLS server: against the system's trust store unless
/// `caFile` names the certificate authorities to trust instead; `insecure` skips
/// every check (never the default; `spool` says so on standard error).
public struct ClientTLS: Sendable {
    public var caFile: String?
    public var insecure: Bool

    public init(caFile: String? = nil, insecure: Bool = false) {
        self.caFile = caFile
        self.insecure = insecure
    }
}

/// A blocking byte stream to a server: plain TCP, or TLS over it. Lines, HTTP and
/// bodies are all written and read through one, so every command works over both.
public protocol Transport: AnyObject {
    /// The socket, for a caller that waits on it with poll(2).
    var descriptor: Int32 { get }
    /// Received bytes already decrypted and waiting, which poll(2) on the socket cannot see.
    var hasBufferedInput: Bool { get }
    func send(_ bytes: UnsafeRawBufferPointer) throws(ClientError)
    /// Reads what has arrived, blocking until something has; 0 when the server closed the stream.
    func receive(into buffer: UnsafeMutableRawBufferPointer) throws(ClientError) -> Int
    /// Sends `count` bytes of an open file from `offset`, calling `sent` after each piece
    /// with the bytes sent so far; returns early if the file is shorter.
    func sendFile(fd: Int32, offset: Int64, count: Int64, piece: Int, sent: (Int64) throws(ClientError) -> Void) throws(ClientError)
    func close()
}

public enum Transports {
    /// Connects to HOST:PORT, and with `tls` completes a TLS handshake before returning.
    /// `alpn` names the protocol to agree on (`http/1.1` for the HTTP door).
    public static func connect(_ server: String, tls: ClientTLS?, alpn: [String] = []) throws(ClientError) -> any Transport {
        let fd = try TCP.connect(server)
        guard let tls else { return PlainTransport(fd: fd) }
        do {
            return try TLSTransport(fd: fd, server: server, options: tls, alpn: alpn)
        } catch {
            Glibc.close(fd)
            throw error
        }
    }
}

/// TCP as it is: file bodies go out with sendfile(2), from the page cache to the socket.
final class PlainTransport: Transport {
    private var fd: Int32

    init(fd: Int32) {
        self.fd = fd
    }

    deinit {
        close()
    }

    var descriptor: Int32 { fd }
    var hasBufferedInput: Bool { false }

    func send(_ bytes: UnsafeRawBufferPointer) throws(ClientError) {
        do { try Files.writeAll(fd, bytes) } catch { throw .connectionLost("cannot send: \(error)") }
    }

    func receive(into buffer: UnsafeMutableRawBufferPointer) throws(ClientError) -> Int {
        while true {
            let n = recv(fd, buffer.baseAddress, buffer.count, 0)
            if n >= 0 { return n }
            if currentErrno() == EINTR { continue }
            throw .connectionLost("while reading: \(SystemError.last("recv"))")
        }
    }

    func sendFile(fd file: Int32, offset: Int64, count: Int64, piece: Int, sent: (Int64) throws(ClientError) -> Void) throws(ClientError) {
        var position = off_t(offset)
        let end = offset + count
        while Int64(position) < end {
            let n = Glibc.sendfile(fd, file, &position, Int(min(end - Int64(position), Int64(piece))))
            if n < 0 {
                if currentErrno() == EINTR { continue }
                throw .connectionLost("while sending: \(SystemError.last("sendfile"))")
            }
            if n == 0 { return }
            try sent(Int64(position) - offset)
        }
    }

    func close() {
        if fd >= 0 { Glibc.close(fd) }
        fd = -1
    }
}

extension Transport {
    func send(_ bytes: [UInt8]) throws(ClientError) {
        try bytes.withUnsafeBytes { raw in Result { () throws(ClientError) in try send(raw) } }.get()
    }

    /// Reads into `buffer` (at most `limit` bytes); 0 when the server closed the stream.
    func receive(into buffer: inout [UInt8], limit: Int? = nil) throws(ClientError) -> Int {
        try buffer.withUnsafeMutableBytes { raw in
            Result { () throws(ClientError) in
                try receive(into: UnsafeMutableRawBufferPointer(rebasing: raw[0..<min(limit ?? raw.count, raw.count)]))
            }
        }.get()
    }
}
