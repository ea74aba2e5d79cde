import NIOCore

import Testing
@testable import SpoolProtocol

private let sha = String(repeating: "0f", count: 32)

/// Drives a session the way ConnectionHandler does, without a socket.
private func drain(_ session: inout Session) -> [Session.Action] {
    var actions: [Session.Action] = []
    while let action = session.next() { actions.append(action) }
    return actions
}

private func feed(_ session: inout Session, _ text: String) -> [Session.Action] {
    session.receive(ByteBuffer(string: text))
    return drain(&session)
}

@Suite struct SessionTests {
    @Test func uploadFlowFramesTheBodyByDeclaredLength() {
        var session = Session()
        let request = UploadRequest(name: "a.txt", size: 10, sha256: sha)
        #expect(feed(&session, "UPLOAD 10 \(sha) a.txt\nPING\n") == [.beginUpload(request)])
        #expect(session.isUploading)
        // Nothing more happens until the upload is open, even though bytes wait.
        #expect(feed(&session, "QUIT\nxxxx") == [])

        session.uploadOpened(id: "ID1", size: 10, offset: 0)
        let actions = drain(&session)
        #expect(codes(actions) == [150])
        // "PING\nQUIT\nx" is the body: ten bytes, commands or not.
        let body = actions.compactMap { if case .writeBody(let b) = $0 { String(buffer: b) } else { nil } }.joined()
        #expect(body == "PING\nQUIT\n")
        #expect(actions.last == .finishUpload(declared: nil))
        #expect(feed(&session, "PING\n") == [])

        session.uploadFinished(Reply(.stored, "id=ID1 stored"))
        // Then the bytes left after the body form the next line: "xxxxPING" is not a command.
        #expect(codes(drain(&session)) == [250, 500])
        #expect(!session.isUploading)
    }

    @Test func aTLSHelloOnThePlainPortIsToldSoAndClosed() {
        var session = Session()
        // A TLS record header: handshake (22), version 3.1, then the ClientHello.
        var hello = ByteBuffer(bytes: [0x16, 0x03, 0x01, 0x00, 0x05])
        hello.writeString("hello\nPING\n")
        session.receive(hello)
        let actions = drain(&session)
        #expect(codes(actions) == [500])
        #expect(actions.last == .close)
        if case .reply(let reply) = actions.first { #expect(reply.text.contains("not TLS")) }
        // The same byte later in a connection is only a bad line.
        var later = Session()
        #expect(codes(feed(&later, "PING\n")) == [200])
        later.receive(ByteBuffer(bytes: [0x16, 0x0A]))
        #expect(drain(&later).last != .close)
    }

    @Test func bodySplitAcrossReadsIsWrittenInPieces() {
        var session = Session()
        _ = feed(&session, "UPLOAD 6 \(sha) a\n")
        session.uploadOpened(id: "I", size: 6, offset: 0)
        #expect(codes(drain(&session)) == [150])
        #expect(feed(&session, "abc") == [.writeBody(ByteBuffer(string: "abc"))])
        #expect(feed(&session, "defPING\n") == [.writeBody(ByteBuffer(string: "def")), .finishUpload(declared: nil)])
    }

    @Test func emptyUploadFinishesWithoutABody() {
        var session = Session()
        _ = feed(&session, "UPLOAD 0 \(sha) empty\n")
        session.uploadOpened(id: "E", size: 0, offset: 0)
        let actions = drain(&session)
        #expect(codes(actions) == [150])
        #expect(actions.last == .finishUpload(declared: nil))
    }

    @Test func refusedUploadSendsNoBodyState() {
        var session = Session()
        _ = feed(&session, "UPLOAD 3 \(sha) a\nPING\n")
        session.uploadRefused(Reply(.storageError, "busy"))
        #expect(codes(drain(&session)) == [451, 200])
    }

    @Test func writeFailureDrainsTheRestOfTheBodyThenReports() {
        var session = Session()
        _ = feed(&session, "UPLOAD 8 \(sha) a\n")
        session.uploadOpened(id: "F", size: 8, offset: 0)
        _ = drain(&session)
        #expect(feed(&session, "abc") == [.writeBody(ByteBuffer(string: "abc"))])
        session.bodyFailed(Reply(.storageError, "disk full"))
        #expect(feed(&session, "de") == [])
        #expect(codes(feed(&session, "fghPING\n")) == [451, 200])
    }

    @Test func writeFailureOnTheLastChunkCancelsTheFinish() {
        var session = Session()
        _ = feed(&session, "UPLOAD 2 \(sha) a\n")
        session.uploadOpened(id: "F", size: 2, offset: 0)
        _ = drain(&session)
        session.receive(ByteBuffer(string: "ab"))
        #expect(session.next() == .writeBody(ByteBuffer(string: "ab")))
        session.bodyFailed(Reply(.storageError, "disk full"))
        #expect(codes(drain(&session)) == [451])
    }

    @Test func quitRepliesThenClosesAndIgnoresTheRest() {
        var session = Session()
        let actions = feed(&session, "QUIT\nPING\n")
        #expect(codes(actions) == [221])
        #expect(actions.last == .close)
        #expect(feed(&session, "PING\n") == [])
    }

    @Test func badLinesGetRepliesAndTheSessionGoesOn() {
        var session = Session()
        let actions = feed(&session, "NOPE\n\n   \nUPLOAD x\n\u{01}\nHELP PING\nPING\n")
        #expect(codes(actions) == [500, 501, 500, 214, 200])
    }

    @Test func helloNegotiatesDownToOurVersion() {
        var session = Session()
        let actions = feed(&session, "HELLO 9\n")
        #expect(codes(actions) == [200])
        #expect(session.protocolVersion == ProtocolInfo.version)
    }

    @Test func helpIsAMultiLineReply() {
        var session = Session()
        let replies = feed(&session, "HELP\n").compactMap { if case .reply(let r) = $0 { r } else { nil } }
        #expect(replies.count == Help.order.count + 2)
        #expect(replies.dropLast().allSatisfy { !$0.isLast })
        #expect(replies.last?.isLast == true)
    }
}

@Suite struct SessionDrainTests {
    @Test func idleConnectionIsToldAndClosedWhenQuiet() {
        var session = Session()
        session.drain()
        #expect(codes(feed(&session, "PING\n")) == [200])  // still served until it goes quiet
        session.closeIfIdle()
        let actions = drain(&session)
        #expect(codes(actions) == [421])
        #expect(actions.last == .close)
    }

    @Test func uploadInProgressFinishesThenTheConnectionCloses() {
        var session = Session()
        _ = feed(&session, "UPLOAD 4 \(sha) a\n")
        session.uploadOpened(id: "D", size: 4, offset: 0)
        _ = drain(&session)
        session.drain()
        session.closeIfIdle()  // not idle: mid-upload
        #expect(feed(&session, "ab") == [.writeBody(ByteBuffer(string: "ab"))])
        #expect(feed(&session, "cdPING\n") == [.writeBody(ByteBuffer(string: "cd")), .finishUpload(declared: nil)])
        session.uploadFinished(Reply(.stored, "id=D stored"))
        let actions = drain(&session)
        #expect(codes(actions) == [250, 421])
        #expect(actions.last == .close)
    }

    @Test func uploadBeingOpenedIsRefusedPolitelyWhenItFails() {
        var session = Session()
        _ = feed(&session, "UPLOAD 4 \(sha) a\n")
        session.drain()
        session.closeIfIdle()
        #expect(drain(&session).isEmpty)
        session.uploadRefused(Reply(.storageError, "no"))
        let actions = drain(&session)
        #expect(codes(actions) == [451, 421])
        #expect(actions.last == .close)
    }
}

@Suite struct SessionLimitsTests {
    let limits = Session.Timeouts(idle: 300, line: 30, stall: 120)

    @Test func idleConnectionsCloseAfterTheIdleTime() {
        var session = Session()
        session.checkTimeouts(limits, quietFor: 299, partialLineFor: nil)
        #expect(drain(&session).isEmpty)
        session.checkTimeouts(limits, quietFor: 301, partialLineFor: nil)
        let actions = drain(&session)
        #expect(actions == [.reply(Reply(.unavailable, "closing: idle for 300 s")), .close])
    }

    @Test func anUnfinishedLineHasItsOwnDeadline() {
        var session = Session()
        _ = feed(&session, "PIN")
        #expect(session.hasPartialLine)
        session.checkTimeouts(limits, quietFor: 1, partialLineFor: 29)
        #expect(drain(&session).isEmpty)
        session.checkTimeouts(limits, quietFor: 1, partialLineFor: 31)
        #expect(codes(drain(&session)) == [421])
    }

    @Test func aStalledBodyClosesButAnAnswerInProgressDoesNot() {
        var session = Session()
        _ = feed(&session, "UPLOAD 10 \(sha) a\n")
        session.checkTimeouts(limits, quietFor: 1000, partialLineFor: nil)
        #expect(drain(&session).isEmpty, "opening: the server is the one working")
        session.uploadOpened(id: "S", size: 10, offset: 0)
        _ = drain(&session)
        session.checkTimeouts(limits, quietFor: 119, partialLineFor: nil)
        #expect(drain(&session).isEmpty)
        session.checkTimeouts(limits, quietFor: 121, partialLineFor: nil)
        let actions = drain(&session)
        #expect(codes(actions) == [421] && actions.last == .close)
    }
}

@Suite struct SessionAuthTests {
    @Test func withoutAnonymousAccessUploadsAndQuestionsNeedAuth() {
        var session = Session()
        session.anonymousAllowed = false
        #expect(codes(feed(&session, "PING\nHELP PING\nLIST\nUPLOAD 1 \(sha) a\nSTATS\n")) == [200, 214, 530, 530, 530])
        #expect(feed(&session, "AUTH spool_x\n") == [.authenticate(secret: "spool_x")])
        session.authenticated(as: Session.Identity(token: "alice", admin: false))
        #expect(drain(&session) == [.reply(Reply(.authenticated, "authenticated as alice"))])
        #expect(feed(&session, "LIST\n") == [.query(.list(count: 20, json: false))])
    }

    @Test func threeFailuresCloseTheConnection() {
        var session = Session()
        for attempt in 1...3 {
            #expect(feed(&session, "AUTH nope\n") == [.authenticate(secret: "nope")])
            session.authenticationFailed()
            let actions = drain(&session)
            #expect(codes(actions) == (attempt < 3 ? [535] : [535, 421]))
            if attempt == 3 { #expect(actions.last == .close) }
        }
    }
}
