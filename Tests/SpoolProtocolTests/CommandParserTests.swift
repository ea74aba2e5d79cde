import Testing
@testable import SpoolProtocol

private let sha = String(repeating: "ab", count: 32)

@Suite struct CommandParserTests {
    @Test(arguments: [
        ("PING", Command.ping),
        ("ping", .ping),
        ("  PiNg  ", .ping),
        ("QUIT", .quit),
        ("HEALTH", .health),
        ("health", .health),
        ("HELP", .help(topic: nil)),
        ("help upload", .help(topic: "UPLOAD")),
        ("HELLO 1", .hello(version: 1)),
        ("HELLO 7", .hello(version: 7)),
        ("UPLOAD 0 \(sha) empty.txt", .upload(UploadRequest(name: "empty.txt", size: 0, sha256: sha))),
        ("UPLOAD 5 \(sha.uppercased()) a", .upload(UploadRequest(name: "a", size: 5, sha256: sha))),
        ("upload\t12\t\(sha)\tx", .upload(UploadRequest(name: "x", size: 12, sha256: sha))),
        ("UPLOAD 9223372036854775807 \(sha) big", .upload(UploadRequest(name: "big", size: .max, sha256: sha))),
        ("UPLOAD 1 \(sha) my%20file%20%C3%A9t%C3%A9.txt", .upload(UploadRequest(name: "my file été.txt", size: 1, sha256: sha))),
        ("UPLOAD 1 \(sha) photos/2026/a.jpg", .upload(UploadRequest(name: "photos/2026/a.jpg", size: 1, sha256: sha))),
        ("UPLOAD 1 \(sha) 100%25", .upload(UploadRequest(name: "100%", size: 1, sha256: sha))),
        ("RESUME 01M88XGHFJMYHF3QTXNNMEH250 \(sha)", .resume(id: "01M88XGHFJMYHF3QTXNNMEH250", sha256: sha)),
        ("resume 01m88xghfjmyhf3qtxnnmeh250 \(sha.uppercased())", .resume(id: "01M88XGHFJMYHF3QTXNNMEH250", sha256: sha)),
    ])
    func validLines(line: String, expected: Command) throws {
        #expect(try CommandParser.parse(line) == expected)
    }

    @Test(arguments: [
        ("", 500),
        ("FOO", 500),
        ("UPLOADX 1 \(sha) a", 500),
        ("HELLO", 501),
        ("HELLO 0", 501),
        ("HELLO -1", 501),
        ("HELLO one", 501),
        ("HELP A B", 501),
        ("UPLOAD", 501),
        ("UPLOAD 1 \(sha)", 501),
        ("UPLOAD 1 \(sha) a b", 501),
        ("UPLOAD -1 \(sha) a", 501),
        ("UPLOAD +1 \(sha) a", 501),
        ("UPLOAD 1.5 \(sha) a", 501),
        ("UPLOAD 0x10 \(sha) a", 501),
        ("UPLOAD 9223372036854775808 \(sha) a", 501),
        ("UPLOAD 99999999999999999999 \(sha) a", 501),
        ("UPLOAD ten \(sha) a", 501),
        ("UPLOAD 1 abc a", 501),
        ("UPLOAD 1 \(sha)0 a", 501),
        ("UPLOAD 1 \(String(repeating: "g", count: 64)) a", 501),
        ("UPLOAD 1 \(sha) %", 501),
        ("UPLOAD 1 \(sha) %4", 501),
        ("UPLOAD 1 \(sha) %zz", 501),
        ("UPLOAD 1 \(sha) %00", 501),
        ("UPLOAD 1 \(sha) a%0Ab", 501),
        ("UPLOAD 1 \(sha) %FF", 501),
        ("UPLOAD 1 \(sha) %C3", 501),
        ("UPLOAD 1 \(sha) ../../etc/passwd", 501),
        ("UPLOAD 1 \(sha) /abs/path", 501),
        ("UPLOAD 1 \(sha) .", 501),
        ("UPLOAD 1 \(sha) ..", 501),
        ("UPLOAD 1 \(sha) a//b", 501),
        ("UPLOAD 1 \(sha) a/", 501),
        ("UPLOAD 1 \(sha) \(String(repeating: "n", count: 1025))", 501),
        ("RESUME", 501),
        ("RESUME 01M88XGHFJMYHF3QTXNNMEH250", 501),
        ("RESUME short \(sha)", 501),
        ("RESUME 01M88XGHFJMYHF3QTXNNMEH25U \(sha)", 501),
        ("RESUME 01M88XGHFJMYHF3QTXNNMEH250 nothex", 501),
        ("RESUME 01M88XGHFJMYHF3QTXNNMEH250 \(sha) extra", 501),
    ])
    func invalidLines(line: String, code: Int) {
        #expect(throws: CommandError.self) { try CommandParser.parse(line) }
        do {
            _ = try CommandParser.parse(line)
        } catch {
            #expect(error.reply.code.rawValue == code, "\(line.prefix(60)) -> \(error.reply)")
            #expect(!error.reply.text.isEmpty)
        }
    }

    @Test func nameAtTheLimitIsAccepted() throws {
        let name = String(repeating: "n", count: UploadName.maxBytes)
        #expect(try CommandParser.parse("UPLOAD 1 \(sha) \(name)") == .upload(UploadRequest(name: name, size: 1, sha256: sha)))
    }

    @Test func unknownVerbIsEchoedSafely() {
        do {
            _ = try CommandParser.parse("F\u{7F}O\u{1B}")
            Issue.record("expected an error")
        } catch {
            #expect(error.reply.text == "unknown command \"F?O?\"; try HELP")
        }
    }

    @Test func uploadLineRoundTrips() throws {
        for name in ["plain.txt", "with space", "été/über 100% = ok", "a=b&c"] {
            let request = UploadRequest(name: name, size: 42, sha256: sha)
            let line = String(request.line.dropLast())
            #expect(!line.dropFirst("UPLOAD 42 ".count + 65).contains(" "), "name must be one token: \(line)")
            #expect(try CommandParser.parse(line) == .upload(request))
        }
    }
}
