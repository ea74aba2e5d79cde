import CSpoolSys
import NIOCore
import SpoolProtocol
import SpoolSystem

#if canImport(Glibc)
import Glibc
#endif

/// A blocking connection to a Spool server: lines out, replies in, file bodies by
/// sendfile (or, over TLS, read and encrypted in pieces).
public final class Connection {
    public let address: String
    private let transport: any Transport
    private var framer = LineFramer()
    /// The greeting the server sent on connect.
    public private(set) var greeting = Reply(.ready, "")
    private var agreed: (version: Int, features: Set<String>)?
    /// The highest protocol version this connection offers in `HELLO`.
    public let maxVersion: Int

    /// Connects, reads the greeting, and with a token authenticates (AUTH) before returning.
    /// `maxVersion` caps the protocol version offered (to talk as an older client would).
    public init(server: String, token: String? = nil, maxVersion: Int = ProtocolInfo.version, tls: ClientTLS? = nil)
        throws(ClientError)
    {
        self.maxVersion = maxVersion
        address = server
        transport = try Transports.connect(server, tls: tls)
        let hello: Reply
        do { hello = try readReply() } catch {
            // A TLS door waits for our hello and closes at its deadline: say what that silence likely meant.
            if tls == nil, case .connectionLost(let detail) = error {
                throw .connectionLost(detail + " before greeting us (if this port speaks TLS, add --tls)")
            }
            throw error
        }
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
        transport.close()
    }

    /// Sends raw bytes as they are: part of a body, or anything a test wants to send.
    public func send(bytes: some Collection<UInt8>) throws(ClientError) {
        try transport.send(Array(bytes))
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
    public var descriptor: Int32 { transport.descriptor }

    /// Whether received bytes wait that poll(2) on `descriptor` would not report (TLS).
    public var hasBufferedInput: Bool { transport.hasBufferedInput }

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
        var chunk = [UInt8](repeating: 0, count: 4096)
        let n = try transport.receive(into: &chunk)
        if n == 0 { throw .connectionLost("the server closed the connection") }
        framer.append(ByteBuffer(bytes: chunk[0..<n]))
    }

    /// Sends `count` bytes of an open file from `offset` (with sendfile(2) in plain
    /// text), at most `limitRate` bytes per second when given, reporting the bytes sent so far.
    public func sendFile(fd file: Int32, offset: Int64, count: Int64, limitRate: Int64? = nil, progress: (Int64) -> Void)
        throws(ClientError)
    {
        let started = UTCTime.monotonic()
        let piece = Int(limitRate.map { max(4096, $0 / 20) } ?? (4 << 20))
        var total: Int64 = 0
        try transport.sendFile(fd: file, offset: offset, count: count, piece: piece) { sent throws(ClientError) in
            total = sent
            progress(sent)
            if let limitRate, limitRate > 0 {
                let ahead = Double(sent) / Double(limitRate) - (UTCTime.monotonic() - started)
                if ahead > 0 { usleep(UInt32(min(ahead, 5) * 1_000_000)) }
            }
        }
        if total < count { throw .file(SystemError("read", "file shrank while uploading", errno: EIO)) }
    }
}
