import NIOCore
import NIOEmbedded
import NIOSSL
import NIOTLS
import SpoolSystem

#if canImport(Glibc)
import Glibc
#endif

/// TLS over a blocking socket. NIOSSL is driven as a sans-I/O engine: its handler
/// sits alone on an `EmbeddedChannel`, ciphertext read from the socket goes in as
/// inbound bytes and comes out as plaintext, plaintext written goes out as
/// ciphertext that this class writes to the socket. The client keeps its simple
/// blocking shape, and no event loop or thread is started for one connection.
final class TLSTransport: Transport {
    private var fd: Int32
    private let channel: EmbeddedChannel
    private let handler: NIOSSLClientHandler
    private let events = HandshakeEvents()
    /// Decrypted bytes not yet handed to the reader.
    private var plaintext = ByteBuffer()
    /// Bytes as read from the socket, on their way into the engine.
    private var ciphertext = ByteBuffer()
    private var closedByServer = false
    private let server: String

    init(fd: Int32, server: String, options: ClientTLS, alpn: [String]) throws(ClientError) {
        self.fd = fd
        self.server = server
        var configuration = TLSConfiguration.makeClientConfiguration()
        configuration.minimumTLSVersion = .tlsv12
        configuration.applicationProtocols = alpn
        if options.insecure {
            configuration.certificateVerification = .none
        } else if let caFile = options.caFile {
            guard access(caFile, R_OK) == 0 else { throw .tls("cannot read --cacert \(caFile): \(SystemError.last("open"))") }
            configuration.trustRoots = .file(caFile)
        }
        let host = HostPort(server)?.host ?? server
        let literal = Self.isAddressLiteral(host)
        do {
            let context = try NIOSSLContext(configuration: configuration)
            // A name is checked against the certificate's names only. An address
            // typed as such is checked against its IP entries: NIOSSL matches the
            // peer's address too, which would let a certificate for 127.0.0.1
            // stand for any name that resolves there, as curl never allows.
            handler = try NIOSSLClientHandler(context: context, serverHostname: literal ? nil : host)
            channel = EmbeddedChannel()
            try channel.pipeline.syncOperations.addHandler(handler)
            try channel.pipeline.syncOperations.addHandler(events)
            let peer = literal
                ? try SocketAddress(ipAddress: host, port: HostPort(server)?.port ?? 0)
                : try SocketAddress(unixDomainSocketPath: "/")
            _ = channel.connect(to: peer)
        } catch let error as ClientError {
            throw error
        } catch {
            throw .tls("cannot set up TLS: \(error)")
        }
        try handshake()
    }

    deinit {
        close()
    }

    var descriptor: Int32 { fd }
    var hasBufferedInput: Bool { plaintext.readableBytes > 0 }

    private func handshake() throws(ClientError) {
        try flushCiphertext()
        var first: [UInt8] = []
        while !events.handshakeCompleted {
            let chunk = try readSocket()
            if first.count < 8 { first += chunk.readableBytesView.prefix(8 - first.count) }
            guard chunk.readableBytes > 0 else {
                if let answer = Self.plainTextAnswer(first) { throw .tls(answer) }
                throw .connectionLost("the server closed the connection during the TLS handshake")
            }
            do {
                try feed(chunk)
            } catch {
                throw .tls(Self.plainTextAnswer(first) ?? explain(error))
            }
        }
    }

    /// What a failed handshake means, in words; for a certificate the chain check
    /// refused, why (its dates are the one reason worth telling apart).
    private func explain(_ error: Error) -> String {
        let text = "\(error)"
        if let extra = error as? NIOSSLExtraError, extra == .failedToValidateHostname {
            let host = HostPort(server)?.host ?? server
            return "the server's certificate is not valid for \(host) (the name you connect with must be one of its names)"
        }
        if text.contains("CERTIFICATE_VERIFY_FAILED") {
            let now = time(nil)
            if let leaf = handler.peerCertificate {
                if leaf.notValidAfter < now { return "the server's certificate expired on \(UTCTime.day(seconds: Int(leaf.notValidAfter)))" }
                if leaf.notValidBefore > now { return "the server's certificate is not valid before \(UTCTime.day(seconds: Int(leaf.notValidBefore)))" }
            }
            return "the server's certificate is not signed by a certificate authority this client trusts "
                + "(the system's store, or the one given with --cacert FILE)"
        }
        return "TLS handshake failed: \(text)"
    }

    /// The server answered in plain text (a greeting, an HTTP status) where a TLS reply was due.
    private static func plainTextAnswer(_ first: [UInt8]) -> String? {
        let text = String(decoding: first, as: UTF8.self)
        guard text.hasPrefix("220 ") || text.hasPrefix("HTTP/") || text.hasPrefix("500 ") else { return nil }
        return "the server answered in plain text: it does not speak TLS on this port (leave out --tls, or use its TLS port)"
    }

    func send(_ bytes: UnsafeRawBufferPointer) throws(ClientError) {
        var buffer = channel.allocator.buffer(capacity: bytes.count)
        buffer.writeBytes(bytes)
        try write(buffer)
    }

    private func write(_ buffer: ByteBuffer) throws(ClientError) {
        do { try channel.writeAndFlush(buffer).wait() } catch { throw .connectionLost("TLS: \(error)") }
        try flushCiphertext()
    }

    func receive(into buffer: UnsafeMutableRawBufferPointer) throws(ClientError) -> Int {
        while plaintext.readableBytes == 0 {
            if closedByServer { return 0 }
            let chunk = try readSocket()
            if chunk.readableBytes == 0 {
                closedByServer = true
                return 0
            }
            do { try feed(chunk) } catch NIOSSLError.uncleanShutdown {
                closedByServer = true
            } catch {
                throw .connectionLost("TLS: \(error)")
            }
        }
        let n = min(buffer.count, plaintext.readableBytes)
        plaintext.withUnsafeReadableBytes { source in
            buffer.copyMemory(from: UnsafeRawBufferPointer(rebasing: source.prefix(n)))
        }
        plaintext.moveReaderIndex(forwardBy: n)
        return n
    }

    /// Reads the file a piece at a time and sends it encrypted (sendfile cannot:
    /// the bytes must pass through the cipher).
    func sendFile(fd file: Int32, offset: Int64, count: Int64, piece: Int, sent: (Int64) throws(ClientError) -> Void) throws(ClientError) {
        var done: Int64 = 0
        var buffer = channel.allocator.buffer(capacity: min(piece, 256 << 10))
        while done < count {
            buffer.clear()
            let want = Int(min(Int64(buffer.capacity), count - done))
            let n = buffer.writeWithUnsafeMutableBytes(minimumWritableBytes: want) { raw in
                max(0, pread(file, raw.baseAddress, want, off_t(offset + done)))
            }
            if n == 0 { return }
            try write(buffer)
            done += Int64(n)
            try sent(done)
        }
    }

    func close() {
        guard fd >= 0 else { return }
        // Say goodbye properly (close_notify) when we can, but never wait for the
        // server's: the engine's shutdown timer is run at once, which ends it.
        channel.close(promise: nil)
        try? flushCiphertext()
        channel.embeddedEventLoop.advanceTime(by: .hours(1))
        Glibc.close(fd)
        fd = -1
    }

    // MARK: - The engine

    private func feed(_ bytes: ByteBuffer) throws {
        try channel.writeInbound(bytes)
        while var piece = try channel.readInbound(as: ByteBuffer.self) {
            plaintext.writeBuffer(&piece)
        }
        try flushCiphertext()
    }

    private func flushCiphertext() throws(ClientError) {
        do {
            while let out = try channel.readOutbound(as: ByteBuffer.self) {
                let ok = out.withUnsafeReadableBytes { raw in (try? Files.writeAll(fd, raw)) != nil }
                if !ok { throw ClientError.connectionLost("cannot send: \(SystemError.last("send"))") }
            }
        } catch let error as ClientError {
            throw error
        } catch {
            throw .connectionLost("TLS: \(error)")
        }
    }

    /// Reads what the socket has into the one buffer the engine is fed from
    /// (the engine copies what it keeps, so the buffer is reused for every read).
    private func readSocket() throws(ClientError) -> ByteBuffer {
        ciphertext.clear()
        while true {
            var result = 0
            ciphertext.writeWithUnsafeMutableBytes(minimumWritableBytes: 64 << 10) { raw in
                result = recv(fd, raw.baseAddress, raw.count, 0)
                return max(0, result)
            }
            if result >= 0 { return ciphertext }
            if currentErrno() == EINTR { continue }
            throw .connectionLost("while reading: \(SystemError.last("recv"))")
        }
    }

    private static func isAddressLiteral(_ host: String) -> Bool {
        var v4 = in_addr()
        var v6 = in6_addr()
        return inet_pton(AF_INET, host, &v4) == 1 || inet_pton(AF_INET6, host, &v6) == 1
    }
}

/// Notes the end of the handshake, the one event the engine's driver waits for.
final class HandshakeEvents: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    private(set) var handshakeCompleted = false

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if case .handshakeCompleted = event as? TLSUserEvent { handshakeCompleted = true }
        context.fireUserInboundEventTriggered(event)
    }
}
