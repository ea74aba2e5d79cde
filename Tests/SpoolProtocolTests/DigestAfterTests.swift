import NIOCore
import Testing
@testable import SpoolProtocol

private let sha = String(repeating: "0f", count: 32)

/// `UPLOAD <size> - <name>`: the checksum follows the body as `DIGEST <sha256>`.
@Suite struct DigestAfterTests {
    static func opened(size: Int64) -> Session {
        var session = Session()
        _ = run(&session, "UPLOAD \(size) - a.bin\n")
        session.uploadOpened(id: "ID", size: size, offset: 0)
        _ = run(&session, "")
        return session
    }

    @Test func theDashParsesAsAChecksumToCome() throws {
        let request = UploadRequest(name: "a.bin", size: 3, sha256: nil)
        #expect(try CommandParser.parse("UPLOAD 3 - a.bin") == .upload(request))
        #expect(request.line == "UPLOAD 3 - a.bin\n")
        #expect(throws: CommandError.self) { try CommandParser.parse("UPLOAD 3 -- a.bin") }
    }

    @Test func theVerdictWaitsForTheDigestLine() {
        var session = Self.opened(size: 4)
        #expect(run(&session, "abcd") == [.writeBody(ByteBuffer(string: "abcd"))])
        #expect(session.isUploading)
        #expect(run(&session, "DIGEST \(sha.uppercased())\nPING\n") == [.finishUpload(declared: sha)])
        session.uploadFinished(Reply(.stored, "id=ID stored"))
        #expect(run(&session, "").map { if case .reply(let r) = $0 { r.code.rawValue } else { 0 } } == [250, 200])
    }

    @Test func anythingElseAfterTheBodyAbandonsTheUpload() {
        var session = Self.opened(size: 2)
        #expect(run(&session, "xyPING\n") == [.writeBody(ByteBuffer(string: "xy")), .abandonUpload(reason: "expected DIGEST <sha256> after the body")])
        session.uploadFinished(Reply(.checksumMismatch, "id=ID expected DIGEST; nothing stored"))
        #expect(run(&session, "PING\n").count == 2)  // the 554, then the next command is read as one
    }

    @Test func anEmptyDeferredUploadGoesStraightToTheDigest() {
        var session = Self.opened(size: 0)
        #expect(run(&session, "DIGEST \(sha)\n") == [.finishUpload(declared: sha)])
    }

    @Test func aFailedWriteStillReadsTheDigestLineBeforeReplying() {
        var session = Self.opened(size: 4)
        #expect(run(&session, "ab") == [.writeBody(ByteBuffer(string: "ab"))])
        session.bodyFailed(Reply(.storageError, "id=ID disk full"))
        #expect(run(&session, "cd") == [])  // dropped, and the reply waits for the DIGEST line
        let actions = run(&session, "DIGEST \(sha)\nPING\n")
        #expect(actions == [.reply(Reply(.storageError, "id=ID disk full")), .reply(Reply(.ok, "pong"))])
    }

    @Test func aResumeAlwaysNamesItsChecksum() {
        var session = Session()
        #expect(run(&session, "RESUME 01ARZ3NDEKTSV4RRFFQ69G5FAV \(sha)\n") == [.resumeUpload(id: "01ARZ3NDEKTSV4RRFFQ69G5FAV", sha256: sha)])
        session.uploadOpened(id: "ID", size: 2, offset: 0)
        #expect(run(&session, "hi").suffix(2) == [.writeBody(ByteBuffer(string: "hi")), .finishUpload(declared: nil)])
    }

    @Test func helloAnnouncesTheFeature() {
        var session = Session()
        let actions = run(&session, "HELLO 1\n")
        guard case .reply(let reply) = actions.first else { Issue.record("no reply"); return }
        #expect(reply.text.contains("digest-after"))
    }
}
