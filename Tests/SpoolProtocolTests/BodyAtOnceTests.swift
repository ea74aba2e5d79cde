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
        #expect(session.bodyFollowsAtOnce)
        var old = Session()
        _ = run(&old, "HELLO 1\n")
        #expect(!old.bodyFollowsAtOnce)
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

    @Test func aRefusedUploadsBodyIsReadAndDroppedBeforeTheRefusal() {
        var session = Self.version2()
        _ = run(&session, "UPLOAD 6 \(sha) a.txt\nPIN")
        session.uploadRefused(Reply(.insufficientStorage, "disk full"))
        #expect(run(&session, "") == [])  // three of six bytes dropped; the refusal waits for the rest
        #expect(codes(run(&session, "G\n\nPING\n")) == [452, 200])
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
}
