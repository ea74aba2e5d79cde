import Testing
@testable import SpoolProtocol

@Suite struct ReplyTests {
    @Test func encodesFinalAndContinuationLines() {
        #expect(Reply(.ok, "pong").line == "200 pong\n")
        #expect(Reply(.help, "commands:", isLast: false).line == "214-commands:\n")
        let lines = Reply.lines(.help, ["a", "b", "c"]).map(\.line).joined()
        #expect(lines == "214-a\n214-b\n214 c\n")
    }

    @Test func parsesWhatItEncodes() {
        for reply in [Reply(.sendBody, "id=X offset=0"), Reply(.checksumMismatch, "no"), Reply(.help, "x", isLast: false)] {
            #expect(Reply.parse(Substring(reply.line.dropLast())) == reply)
        }
        #expect(Reply.parse("299 from the future")?.code == .unknown(299))
        #expect(Reply.parse("221")?.code == .closing)
    }

    @Test(arguments: ["", "20", "abc hello", "2x0 ok", "200_ok", "200x"])
    func rejectsNonReplies(line: String) {
        #expect(Reply.parse(Substring(line)) == nil)
    }

    @Test func fieldsAreDecoded() {
        let reply = Reply(.stored, "id=01ABC size=5 sha256=ff name=my%20file stored")
        #expect(reply.fields == ["id": "01ABC", "size": "5", "sha256": "ff", "name": "my file"])
    }

    @Test func fieldsKeepWhatDoesNotDecodeAndSplitOnlyOnSpaces() {
        let reply = Reply(.uploadStatus, "name=%C3%A9t%C3%A9  bad=50%zz odd=%FF raw=été x=a=b =empty novalue")
        #expect(reply.fields == ["name": "été", "bad": "50%zz", "odd": "%FF", "raw": "été", "x": "a=b", "": "empty"])
    }

    @Test func everyKnownCodeRoundTrips() {
        for value in 100...599 {
            if let code = ReplyCode(rawValue: value) { #expect(code.rawValue == value) }
        }
    }
}

@Suite struct PercentCodingTests {
    @Test(arguments: ["", "abc", "a b", "100%", "x=y", "été", "日本語.txt", "emoji 🎉", "a/b/c.tar.gz"])
    func roundTrips(value: String) {
        let encoded = PercentCoding.encode(value)
        #expect(!encoded.contains(" ") && !encoded.contains("="))
        #expect(PercentCoding.decode(encoded) == value)
    }

    @Test func plainNamesNeedNoEncoding() {
        #expect(PercentCoding.encode("report-2026_v2.pdf") == "report-2026_v2.pdf")
    }
}

@Suite struct UploadIDTests {
    @Test func idsAreValidUniqueAndSortByTime() {
        var rng = SystemRandomNumberGenerator()
        let early = UploadID.generate(milliseconds: 1_700_000_000_000, using: &rng)
        let late = UploadID.generate(milliseconds: 1_700_000_000_001, using: &rng)
        let same = UploadID.generate(milliseconds: 1_700_000_000_001, using: &rng)
        #expect(early.count == 26 && UploadID.isValid(early))
        #expect(early < late)
        #expect(late != same)
        #expect(!UploadID.isValid("not-an-id"))
    }
}
