import NIOCore
import Testing
@testable import SpoolProtocol

@Suite struct LineFramerTests {
    private func lines(_ framer: inout LineFramer) -> [Result<String, LineFramer.Failure>] {
        var out: [Result<String, LineFramer.Failure>] = []
        while let line = framer.nextLine() { out.append(line) }
        return out
    }

    @Test func splitsLinesAcrossChunks() {
        var framer = LineFramer()
        framer.append(ByteBuffer(string: "PI"))
        #expect(lines(&framer).isEmpty)
        framer.append(ByteBuffer(string: "NG\r\nQU"))
        #expect(lines(&framer) == [.success("PING")])
        framer.append(ByteBuffer(string: "IT\nHELP\n"))
        #expect(lines(&framer) == [.success("QUIT"), .success("HELP")])
        #expect(framer.bufferedBytes == 0)
    }

    @Test func overlongLineFailsOnceThenResynchronises() {
        var framer = LineFramer(maxLineBytes: 16)
        framer.append(ByteBuffer(string: String(repeating: "x", count: 40)))
        #expect(lines(&framer) == [.failure(.tooLong)])
        framer.append(ByteBuffer(string: String(repeating: "y", count: 40)))
        #expect(lines(&framer).isEmpty)
        framer.append(ByteBuffer(string: "tail\nPING\n"))
        #expect(lines(&framer) == [.success("PING")])
    }

    @Test func lineAtTheLimitPassesAndOneMoreFails() {
        var framer = LineFramer(maxLineBytes: 8)
        framer.append(ByteBuffer(string: "12345678\r\n123456789\n"))
        #expect(lines(&framer) == [.success("12345678"), .failure(.tooLong)])
    }

    @Test func rejectsInvalidUTF8AndControlCharacters() {
        var framer = LineFramer()
        framer.append(ByteBuffer(bytes: [0x50, 0xFF, 0x0A, 0x41, 0x00, 0x42, 0x0A, 0x1B, 0x0A]))
        #expect(lines(&framer) == [.failure(.notUTF8), .failure(.controlCharacters), .failure(.controlCharacters)])
    }

    @Test func bodyBytesAreNeverParsed() {
        var framer = LineFramer()
        framer.append(ByteBuffer(string: "QUIT\nPING\n"))
        #expect(framer.nextBytes(max: 5) == ByteBuffer(string: "QUIT\n"))
        #expect(lines(&framer) == [.success("PING")])
        #expect(framer.nextBytes(max: 5) == nil)
    }
}
