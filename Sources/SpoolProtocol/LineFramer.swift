import NIOCore

/// Splits a byte stream into control lines and raw body bytes.
///
/// The framer never interprets body bytes: the session asks for lines while it
/// expects commands and for at most N bytes while it expects a body. That is the
/// whole answer to TCP's "sticky packets": the length is declared, not guessed.
public struct LineFramer {
    public enum Failure: Error, Equatable, Sendable {
        case tooLong
        case notUTF8
        case controlCharacters

        public var reply: Reply {
            switch self {
            case .tooLong: Reply(.badLine, "line too long; the limit is \(ProtocolInfo.maxLineBytes) bytes")
            case .notUTF8: Reply(.badLine, "line is not valid UTF-8")
            case .controlCharacters: Reply(.badLine, "line contains control characters")
            }
        }
    }

    private var buffer: ByteBuffer?
    /// After an over-long line, bytes are dropped up to the next LF, so the stream resynchronises.
    private var discardingLine = false
    private let maxLineBytes: Int

    public init(maxLineBytes: Int = ProtocolInfo.maxLineBytes) {
        self.maxLineBytes = maxLineBytes
    }

    public var bufferedBytes: Int { buffer?.readableBytes ?? 0 }

    /// Whether a whole line (or an over-long one) is waiting.
    public var hasLine: Bool {
        guard let buffer else { return false }
        return buffer.readableBytesView.contains(UInt8(ascii: "\n")) || buffer.readableBytes > maxLineBytes + 1
    }

    public mutating func append(_ bytes: ByteBuffer) {
        // No copy in the common case: body bytes arrive into an empty buffer.
        guard var existing = buffer, existing.readableBytes > 0 else {
            buffer = bytes
            return
        }
        buffer = nil  // drop our reference first so the append does not copy on write
        var incoming = bytes
        existing.writeBuffer(&incoming)
        buffer = existing
    }

    /// The next complete line without its CR/LF, a framing failure, or nil when more bytes are needed.
    public mutating func nextLine() -> Result<String, Failure>? {
        guard var buf = buffer else { return nil }
        defer { buffer = buf }
        while true {
            let view = buf.readableBytesView
            guard let lf = view.firstIndex(of: UInt8(ascii: "\n")) else {
                if discardingLine {
                    buf.moveReaderIndex(forwardBy: buf.readableBytes)
                    return nil
                }
                if buf.readableBytes > maxLineBytes + 1 {  // +1: room for a CR
                    discardingLine = true
                    buf.moveReaderIndex(forwardBy: buf.readableBytes)
                    return .failure(.tooLong)
                }
                return nil
            }
            let length = lf - view.startIndex
            if discardingLine {
                discardingLine = false
                buf.moveReaderIndex(forwardBy: length + 1)
                continue
            }
            guard let slice = buf.readSlice(length: length + 1) else { return nil }
            var lineBytes = slice.readableBytesView.dropLast()
            if lineBytes.last == UInt8(ascii: "\r") { lineBytes = lineBytes.dropLast() }
            if lineBytes.count > maxLineBytes { return .failure(.tooLong) }
            guard let line = String(validating: lineBytes, as: UTF8.self) else { return .failure(.notUTF8) }
            if line.utf8.contains(where: { ($0 < 0x20 && $0 != 0x09) || $0 == 0x7F }) {
                return .failure(.controlCharacters)
            }
            return .success(line)
        }
    }

    /// Up to `max` raw bytes, or nil when nothing is buffered.
    public mutating func nextBytes(max: Int) -> ByteBuffer? {
        guard var buf = buffer, buf.readableBytes > 0, max > 0 else { return nil }
        let slice = buf.readSlice(length: min(max, buf.readableBytes))
        buffer = buf.readableBytes > 0 ? buf : nil
        return slice
    }
}
