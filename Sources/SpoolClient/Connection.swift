import CSpoolSys
import NIOCore
import SpoolProtocol
import SpoolSystem

#if canImport(Glibc)
import Glibc
#endif

/// A blocking connection to a Spool server: lines out, replies in, file bodies by sendfile.
public final class Connection {
    public let address: String
    private var fd: Int32
    private var framer = LineFramer()
    /// The greeting the server sent on connect.
    public private(set) var greeting = Reply(.ready, "")
    private var agreed: (version: Int, features: Set<String>)?
    /// The highest protocol version this connection offers in `HELLO`.
    public let maxVersion: Int

    /// Connects, reads the greeting, and with a token authenticates (AUTH) before returning.
    /// `maxVersion` caps the protocol version offered (to talk as an older client would).
    public init(server: String, token: String? = nil, maxVersion: Int = ProtocolInfo.version) throws(ClientError) {
        self.maxVersion = maxVersion
        address = server
        fd = try TCP.connect(server)
        let hello = try readReply()
        guard hello.code == .ready else { throw .refused(hello) }
        greeting = hello
        if let token {
            try send(line: "AUTH \(token)")
            let answer = try readReply()
            guard answer.code == .authenticated else { throw .refused(answer) }
        }
    }

    deinit {
        close()
    }

    /// What the server offers beyond protocol version 1 (`HELLO`'s `features=`),
    /// asked once per connection.
    public func features() throws(ClientError) -> Set<String> {
        try hello().features
    }

    /// The protocol version both sides speak on this connection (1 before `HELLO`, and with a server that knows no other).
    public func protocolVersion() throws(ClientError) -> Int {
        try hello().version
    }

    private func hello() throws(ClientError) -> (version: Int, features: Set<String>) {
        if let agreed { return agreed }
        try send(line: "HELLO \(maxVersion)")
        let reply = try readReply()
        var found: (version: Int, features: Set<String>) = (1, [])
        if reply.code == .ok {
            found.version = reply.fields["proto"].flatMap(Int.init) ?? 1
            found.features = Set((reply.fields["features"] ?? "").split(separator: ",").map(String.init))
        }
        agreed = found
        return found
    }

    /// Closes the socket now; later calls fail as a lost connection.
    public func close() {
        if fd >= 0 { Glibc.close(fd) }
        fd = -1
    }

    /// Sends raw bytes as they are: part of a body, or anything a test wants to send.
    public func send(bytes: some Collection<UInt8>) throws(ClientError) {
        let ok = Array(bytes).withUnsafeBytes { raw in (try? Files.writeAll(fd, raw)) != nil }
        if !ok { throw .connectionLost("cannot send: \(SystemError.last("send"))") }
    }

    /// Sends one control line (the LF is added when missing).
    public func send(line: String) throws(ClientError) {
        try send(bytes: (line.hasSuffix("\n") ? line : line + "\n").utf8)
    }

    /// Reads one whole reply; for a multi-line reply, the continuation lines are in `lines`.
    public func readReply() throws(ClientError) -> Reply {
        try readReplyLines().last ?? Reply(.badLine, "")
    }

    /// The next reply line, final or continuation (WATCH pushes continuation lines one at a time).
    public func readReplyLine() throws(ClientError) -> Reply {
        let text = try readLine()
        guard let reply = Reply.parse(Substring(text)) else {
            throw .protocolViolation("not a reply line: \"\(text.prefix(80))\"")
        }
        return reply
    }

    /// Every line of the next reply, the final one last.
    public func readReplyLines() throws(ClientError) -> [Reply] {
        var lines: [Reply] = []
        while true {
            let text = try readLine()
            guard let reply = Reply.parse(Substring(text)) else {
                throw .protocolViolation("not a reply line: \"\(text.prefix(80))\"")
            }
            lines.append(reply)
            if reply.isLast { return lines }
        }
    }

    /// The socket, for a caller that waits on it with poll(2) (the chat prompt).
    public var descriptor: Int32 { fd }

    /// Lines already received and not yet read; empty when more must be read from the socket.
    public func bufferedLines() throws(ClientError) -> [String] {
        var lines: [String] = []
        while let next = framer.nextLine() {
            switch next {
            case .success(let line): lines.append(line)
            case .failure(let failure): throw .protocolViolation(failure.reply.text)
            }
        }
        return lines
    }

    /// Reads once from the socket (blocking until something arrives) and returns
    /// the complete lines received so far; empty when a line is still partial.
    public func receiveLines() throws(ClientError) -> [String] {
        try fill()
        return try bufferedLines()
    }

    private func readLine() throws(ClientError) -> String {
        while true {
            switch framer.nextLine() {
            case .success(let line)?: return line
            case .failure(let failure)?: throw .protocolViolation(failure.reply.text)
            case nil: break
            }
            try fill()
        }
    }

    private func fill() throws(ClientError) {
        while true {
            var chunk = [UInt8](repeating: 0, count: 4096)
            let n = recv(fd, &chunk, chunk.count, 0)
            if n < 0 {
                if currentErrno() == EINTR { continue }
                throw .connectionLost("while reading: \(SystemError.last("recv"))")
            }
            if n == 0 { throw .connectionLost("the server closed the connection") }
            framer.append(ByteBuffer(bytes: chunk[0..<n]))
            return
        }
    }

    /// Sends `count` bytes of an open file from `offset` with sendfile(2), at most
    /// `limitRate` bytes per second when given, reporting the bytes sent so far.
    public func sendFile(fd file: Int32, offset: Int64, count: Int64, limitRate: Int64? = nil, progress: (Int64) -> Void)
        throws(ClientError)
    {
        var position = off_t(offset)
        let end = offset + count
        let started = UTCTime.monotonic()
        let chunkLimit = limitRate.map { max(4096, $0 / 20) } ?? (4 << 20)
        while Int64(position) < end {
            let chunk = Int(min(end - Int64(position), chunkLimit))
            let n = sendfile(fd, file, &position, chunk)
            if n < 0 {
                if currentErrno() == EINTR { continue }
                throw .connectionLost("while sending: \(SystemError.last("sendfile"))")
            }
            if n == 0 { throw .file(SystemError("read", "file shrank while uploading", errno: EIO)) }
            let sent = Int64(position) - offset
            progress(sent)
            if let limitRate, limitRate > 0 {
                let ahead = Double(sent) / Double(limitRate) - (UTCTime.monotonic() - started)
                if ahead > 0 { usleep(UInt32(min(ahead, 5) * 1_000_000)) }
            }
        }
    }
}
