import NIOCore
import Testing
@testable import SpoolProtocol

private let sha = String(repeating: "0f", count: 32)

/// Protocol 2: an UPLOAD's body follows its line at once, without waiting for 150.
@Suite struct BodyAtOnceTests {
    static func version2() -> Session {
        var session = Session()
        _ = run(&session, "HELLO 2\n")
        return session
    }

    @Test func helloAgreesOnVersionTwoAndSaysSo() {
        var session = Session()
        let reply = run(&session, "HELLO 2\n")
        guard case .reply(let hello)? = reply.first else { Issue.record("no reply"); return }
        #expect(hello.fields["proto"] == "2" && hello.fields["features"]?.contains("body-at-once") == true)
        let unmarked = UploadRequest(name: "a", size: 1, sha256: sha)
        #expect(session.bodyFollowsAtOnce(unmarked))
        var old = Session()
        _ = run(&old, "HELLO 1\n")
        #expect(!old.bodyFollowsAtOnce(unmarked))
    }

    @Test func aBodyThatArrivedWithItsLineIsStoredInOneStep() {
        var session = Self.version2()
        let request = UploadRequest(name: "a.txt", size: 4, sha256: sha)
        #expect(run(&session, "UPLOAD 4 \(sha) a.txt\nabcdPING\n") == [.storeUpload(request, body: ByteBuffer(string: "abcd"))])
        #expect(session.isUploading)
        session.wholeUploadFinished(id: "ID", size: 4, reply: Reply(.stored, "id=ID stored"))
        let actions = run(&session, "")
        #expect(actions.first == .reply(Reply(.sendBody, "id=ID offset=0 size=4 send 4 bytes")))
        #expect(codes(actions) == [150, 250, 200])  // the PING behind the body is read as a command
    }

    @Test func anUploadRefusedInOneStepGetsOnlyItsRefusal() {
        var session = Self.version2()
        _ = run(&session, "UPLOAD 2 \(sha) a.txt\nab")
        session.wholeUploadFinished(id: nil, size: 2, reply: Reply(.exceedsLimit, "too big"))
        #expect(codes(run(&session, "PING\n")) == [552, 200])
    }

    @Test func aBodyStillOnItsWayIsWrittenAsItComes() {
        var session = Self.version2()
        #expect(run(&session, "UPLOAD 4 \(sha) a.txt\nab") == [.beginUpload(UploadRequest(name: "a.txt", size: 4, sha256: sha))])
        session.uploadOpened(id: "ID", size: 4, offset: 0)
        #expect(run(&session, "cd") == [
            .reply(Reply(.sendBody, "id=ID offset=0 size=4 send 4 bytes")),
            .writeBody(ByteBuffer(string: "abcd")), .finishUpload(declared: nil),
        ])
    }

    @Test func aRefusedUploadIsAnsweredAtOnceAndItsBodyDropped() {
        var session = Self.version2()
        _ = run(&session, "UPLOAD 6 \(sha) a.txt\nPIN")
        session.uploadRefused(Reply(.insufficientStorage, "disk full"))
        // The refusal goes out now, whether the client reads it now or after sending;
        // three of six bytes are dropped, and the rest when they come.
        #expect(codes(run(&session, "")) == [452])
        #expect(codes(run(&session, "G\n\nPING\n")) == [200])
    }

    @Test func aRefusedUploadWithItsChecksumToComeDropsTheDigestLineToo() {
        var session = Self.version2()
        _ = run(&session, "UPLOAD 2 - a.txt\n")
        session.uploadRefused(Reply(.insufficientStorage, "disk full"))
        #expect(codes(run(&session, "xyDIGEST \(sha)\nPING\n")) == [452, 200])
    }

    @Test func anEmptyRefusedUploadHasNothingToDrop() {
        var session = Self.version2()
        _ = run(&session, "UPLOAD 0 - a.txt\n")
        session.uploadRefused(Reply(.insufficientStorage, "disk full"))
        #expect(codes(run(&session, "DIGEST \(sha)\nPING\n")) == [452, 200])
    }

    @Test func aResumeIsNotFollowedByABody() {
        var session = Self.version2()
        _ = run(&session, "RESUME 01M88Z99K7WC0KHZJ57X11XW77 \(sha)\n")
        session.uploadRefused(Reply(.notFound, "no such upload"))
        #expect(codes(run(&session, "PING\n")) == [550, 200])
    }

    @Test func aMalformedUploadLineStillHasItsBodyDropped() {
        var session = Self.version2()
        #expect(codes(run(&session, "UPLOAD 5 nothex a.txt\nPING\nPING\n")) == [501, 200])
        #expect(codes(run(&session, "UPLOAD 3 - \nabcDIGEST \(sha)\nPING\n")) == [501, 200])
    }

    @Test func anUnauthenticatedUploadHasItsBodyDropped() {
        var session = Self.version2()
        session.anonymousAllowed = false
        #expect(codes(run(&session, "UPLOAD 5 \(sha) a.txt\nPING\nPING\n")) == [530, 200])
    }

    @Test func versionOneStillWaitsForTheGoAhead() {
        var session = Session()
        #expect(run(&session, "UPLOAD 4 \(sha) a.txt\nabcd") == [.beginUpload(UploadRequest(name: "a.txt", size: 4, sha256: sha))])
        session.uploadRefused(Reply(.insufficientStorage, "disk full"))
        let actions = run(&session, "")
        #expect(codes(actions).first == 452)  // and "abcd" is read as a (bad) command: the client had no business sending it
    }

    @Test func aLargeBodyIsNeverHeldWhole() {
        var session = Self.version2()
        let size = Session.wholeBodyLimit + 1
        let body = String(repeating: "x", count: Int(size))
        let actions = run(&session, "UPLOAD \(size) \(sha) big\n" + body)
        #expect(actions == [.beginUpload(UploadRequest(name: "big", size: size, sha256: sha))])
    }

    // MARK: - Several small uploads at once

    static func upload(_ n: Int) -> (line: String, action: Session.Action) {
        let body = "body\(n)"
        let request = UploadRequest(name: "f\(n)", size: Int64(body.utf8.count), sha256: sha)
        return ("UPLOAD \(body.utf8.count) \(sha) f\(n)\n\(body)", .storeUpload(request, body: ByteBuffer(string: body)))
    }

    @Test func smallUploadsSentBackToBackAreStoredTogetherAndAnsweredInOrder() {
        var session = Self.version2()
        let uploads = (0..<3).map(Self.upload)
        let actions = run(&session, uploads.map(\.line).joined() + "PING\n")
        #expect(actions == uploads.map(\.action), "all three at once; the PING waits")
        for n in 0..<3 {
            session.wholeUploadFinished(id: "ID\(n)", size: 5, reply: Reply(.stored, "id=ID\(n) stored"))
        }
        let replies = run(&session, "")
        #expect(codes(replies) == [150, 250, 150, 250, 150, 250, 200])
        #expect(replies.compactMap { if case .reply(let r) = $0 { r.fields["id"] } else { nil } } == ["ID0", "ID0", "ID1", "ID1", "ID2", "ID2"])
        #expect(!session.isStoring)
    }

    @Test func anythingButAnotherWholeUploadWaitsForTheReplies() {
        var session = Self.version2()
        let first = Self.upload(0)
        // A second upload whose body has not all arrived yet, then a command.
        #expect(run(&session, first.line + "UPLOAD 10 \(sha) g\nabc") == [first.action])
        #expect(session.isStoring)
        session.wholeUploadFinished(id: "ID0", size: 5, reply: Reply(.stored, "id=ID0 stored"))
        #expect(run(&session, "") == [
            .reply(Reply(.sendBody, "id=ID0 offset=0 size=5 send 5 bytes")), .reply(Reply(.stored, "id=ID0 stored")),
            .beginUpload(UploadRequest(name: "g", size: 10, sha256: sha)),
        ])
    }

    @Test func atMostSoManyAreStoredAtOnce() {
        var session = Self.version2()
        let uploads = (0...Session.storingLimit).map(Self.upload)
        let actions = run(&session, uploads.map(\.line).joined())
        #expect(actions.count == Session.storingLimit, "the last one waits for a reply")
        session.wholeUploadFinished(id: "ID0", size: 5, reply: Reply(.stored, "id=ID0 stored"))
        #expect(run(&session, "").last == uploads.last?.action)

        var bytes = Self.version2()
        let big = Int(Session.wholeBodyLimit)
        let line = "UPLOAD \(big) \(sha) big\n" + String(repeating: "y", count: big)
        let fit = Int(Session.storingBytesLimit) / big
        #expect(run(&bytes, String(repeating: line, count: fit + 1)).count == fit, "one more would pass the bytes limit")
    }

    @Test func aDrainingSessionTakesNoMoreAndClosesAfterTheLastReply() {
        var session = Self.version2()
        let uploads = (0..<2).map(Self.upload)
        #expect(run(&session, uploads[0].line) == [uploads[0].action])
        session.drain()
        #expect(run(&session, uploads[1].line) == [])
        session.wholeUploadFinished(id: "ID0", size: 5, reply: Reply(.stored, "id=ID0 stored"))
        #expect(codes(run(&session, "")) == [150, 250, 421])
    }
}

