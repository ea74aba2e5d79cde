import NIOCore
import Testing
@testable import SpoolProtocol

private let sha = String(repeating: "0f", count: 32)

/// Protocol 3: an UPLOAD's body follows its line at once only when the line ends
/// with `--at-once`; any other UPLOAD waits for the `150`, as in version 1. Either
/// way the server knows whether a body is coming, so a refusal is answered at once
/// and the next line is read as a command.
@Suite struct MarkedBodyTests {
    static func version3() -> Session {
        var session = Session()
        let hello = run(&session, "HELLO 3\n")
        guard case .reply(let reply)? = hello.first, reply.fields["proto"] == "3" else {
            Issue.record("HELLO 3 was not agreed: \(hello)")
            return session
        }
        return session
    }

    @Test func theMarkIsPartOfTheLineAndParsesBack() throws {
        let marked = UploadRequest(name: "a b.txt", size: 5, sha256: sha, bodyAtOnce: true)
        #expect(marked.line == "UPLOAD 5 \(sha) a%20b.txt --at-once\n")
        #expect(try CommandParser.parse(String(marked.line.dropLast())) == .upload(marked))
        #expect(try CommandParser.parse("upload 5 - a.txt --AT-ONCE") == .upload(UploadRequest(name: "a.txt", size: 5, sha256: nil, bodyAtOnce: true)))
        #expect(throws: CommandError.self) { try CommandParser.parse("UPLOAD 5 - a.txt --now") }
        #expect(throws: CommandError.self) { try CommandParser.parse("UPLOAD 5 - a.txt --at-once extra") }
    }

    @Test func anUnmarkedUploadWaitsForTheGoAheadAndItsRefusalComesAtOnce() {
        var session = Self.version3()
        let request = UploadRequest(name: "big.bin", size: 20 << 20, sha256: nil)
        #expect(run(&session, request.line) == [.beginUpload(request)])
        session.uploadRefused(Reply(.exceedsLimit, "over the limit"))
        #expect(codes(run(&session, "")) == [552])
        #expect(codes(run(&session, "PING\n")) == [200], "no body was expected: the next line is a command")
    }

    @Test func anUnmarkedSmallUploadIsNotStoredInOneStep() {
        var session = Self.version3()
        let request = UploadRequest(name: "a.txt", size: 4, sha256: sha)
        #expect(run(&session, request.line) == [.beginUpload(request)])
        session.uploadOpened(id: "ID", size: 4, offset: 0)
        #expect(run(&session, "abcd") == [
            .reply(Reply(.sendBody, "id=ID offset=0 size=4 send 4 bytes")),
            .writeBody(ByteBuffer(string: "abcd")), .finishUpload(declared: nil),
        ])
    }

    @Test func aMarkedUploadWhoseBodyIsHereIsStoredInOneStep() {
        var session = Self.version3()
        let request = UploadRequest(name: "a.txt", size: 4, sha256: sha, bodyAtOnce: true)
        #expect(run(&session, request.line + "abcdPING\n") == [.storeUpload(request, body: ByteBuffer(string: "abcd"))])
    }

    @Test func aMarkedUploadRefusedHasItsBodyAndDigestDropped() {
        var session = Self.version3()
        let request = UploadRequest(name: "a.txt", size: 6, sha256: nil, bodyAtOnce: true)
        _ = run(&session, request.line + "abc")
        session.uploadRefused(Reply(.insufficientStorage, "disk full"))
        #expect(codes(run(&session, "")) == [452])
        #expect(codes(run(&session, "defDIGEST \(sha)\nPING\n")) == [200])
    }

    @Test func aMalformedLineDropsABodyOnlyWhenMarked() {
        var session = Self.version3()
        #expect(codes(run(&session, "UPLOAD 5 nothex a.txt\nPING\n")) == [501, 200])
        #expect(codes(run(&session, "UPLOAD 5 \(sha) ../x\nPING\n")) == [501, 200])
        #expect(codes(run(&session, "UPLOAD 5 nothex a.txt --at-once\nPING\nPING\n")) == [501, 200])
        #expect(codes(run(&session, "UPLOAD 3 - ../x --at-once\nabcDIGEST \(sha)\nPING\n")) == [501, 200])
    }

    @Test func anUnauthenticatedUploadIsRefusedAtOnceUnlessItsBodyIsComing() {
        var session = Self.version3()
        session.anonymousAllowed = false
        #expect(codes(run(&session, "UPLOAD 5 \(sha) a.txt\nPING\n")) == [530, 200])
        #expect(codes(run(&session, "UPLOAD 5 \(sha) a.txt --at-once\nPING\nPING\n")) == [530, 200])
    }

    @Test func versionOneTakesTheMarkToo() {
        let session = Session()
        let request = UploadRequest(name: "a.txt", size: 4, sha256: sha, bodyAtOnce: true)
        #expect(session.bodyFollowsAtOnce(request))
        #expect(!session.bodyFollowsAtOnce(UploadRequest(name: "a.txt", size: 4, sha256: sha)))
    }

    @Test func aRefusedBodyThatStopsComingIsCutOffWithItsOwnReason() {
        var session = Self.version3()
        _ = run(&session, UploadRequest(name: "a", size: 100, sha256: sha, bodyAtOnce: true).line + "abc")
        session.uploadRefused(Reply(.exceedsLimit, "too big"))
        #expect(codes(run(&session, "")) == [552])
        session.checkTimeouts(Session.Timeouts(idle: 300, line: 30, stall: 5), quietFor: 6, partialLineFor: nil)
        let actions = run(&session, "")
        #expect(actions == [.reply(Reply(.unavailable, "closing: the body of a refused upload stopped for 5 s")), .close])
    }
}
