import Testing
@testable import SpoolProtocol

/// The parts of HTTP that are pure rules: routes, digest headers, ranges, names.
@Suite struct HTTPRulesTests {
    @Test func routesKeepIdsAndNamesApart() {
        #expect(HTTPRoute.parse(method: "PUT", target: "/files/photos/a%20b.jpg") == .upload(name: "photos/a b.jpg"))
        // A name that looks like an id is still a name: ids live under /uploads/ only.
        #expect(HTTPRoute.parse(method: "PUT", target: "/files/01M8W5WPHJ6VF86VAWEGX48Z1B") == .upload(name: "01M8W5WPHJ6VF86VAWEGX48Z1B"))
        #expect(HTTPRoute.parse(method: "GET", target: "/uploads/01m8w5wphj6vf86vawegx48z1b/content?x=1")
            == .download(id: "01M8W5WPHJ6VF86VAWEGX48Z1B", headOnly: false))
        #expect(HTTPRoute.parse(method: "HEAD", target: "/uploads/01M8W5WPHJ6VF86VAWEGX48Z1B") == .record(id: "01M8W5WPHJ6VF86VAWEGX48Z1B", headOnly: true))
        #expect(HTTPRoute.parse(method: "GET", target: "/uploads/not-an-id/content") == .notFound)
        #expect(HTTPRoute.parse(method: "GET", target: "/files/a.txt") == .methodNotAllowed(allow: "PUT, HEAD, PATCH, DELETE"))
        #expect(HTTPRoute.parse(method: "DELETE", target: "/uploads/01M8W5WPHJ6VF86VAWEGX48Z1B") == .methodNotAllowed(allow: "GET, HEAD"))
        // The upload page: / and files of one plain component; anything else is not one of its files.
        #expect(HTTPRoute.parse(method: "GET", target: "/") == .page(path: "/", headOnly: false))
        #expect(HTTPRoute.parse(method: "HEAD", target: "/app.js?v=2") == .page(path: "/app.js", headOnly: true))
        #expect(HTTPRoute.parse(method: "PUT", target: "/app.js") == .methodNotAllowed(allow: "GET, HEAD"))
        for other in ["/x", "/.env", "/a/b.js", "/App.js", "/a%2Fb.js", "/a b.js"] {
            #expect(HTTPRoute.parse(method: "GET", target: other) == .notFound, "\(other)")
        }
        #expect(HTTPRoute.parse(method: "GET", target: "/healthz") == .health(ready: false, headOnly: false))
        #expect(HTTPRoute.parse(method: "HEAD", target: "/readyz?verbose") == .health(ready: true, headOnly: true))
        #expect(HTTPRoute.parse(method: "POST", target: "/readyz") == .methodNotAllowed(allow: "GET, HEAD"))
        for bad in ["/files/", "/files/../etc/passwd", "/files/a%2", "/files/%FF", "/files/a%0Ab"] {
            guard case .badTarget = HTTPRoute.parse(method: "PUT", target: bad) else {
                Issue.record("\(bad) should be refused")
                continue
            }
        }
    }

    @Test func digestHeadersCarrySHA256InBase64() {
        let hex = "75d84647392fdcfb4fc5bd1e89eb49683b409e804b190bb39701cc92ceb2a409"
        let header = DigestHeader.header(sha256: hex)
        #expect(header == "sha-256=:ddhGRzkv3PtPxb0eietJaDtAnoBLGQuzlwHMks6ypAk=:")
        #expect(DigestHeader.parse([header]) == .sha256(hex))
        #expect(DigestHeader.parse(["sha-512=:AAAA:, SHA-256=:ddhGRzkv3PtPxb0eietJaDtAnoBLGQuzlwHMks6ypAk=:"]) == .sha256(hex))
        #expect(DigestHeader.parse(["sha-512=:AAAA:"]) == .absent)
        #expect(DigestHeader.parse([]) == .absent)
        #expect(DigestHeader.parse(["sha-256=:AAAA:"]) == .malformed, "not 32 bytes")
        #expect(DigestHeader.parse(["sha-256=ddhG"]) == .malformed, "not a byte sequence")
    }

    @Test func base64RoundTripsEveryLength() {
        for count in 0..<40 {
            let bytes = (0..<count).map { UInt8(($0 * 37 + count) & 0xFF) }
            #expect(Base64.decode(Base64.encode(bytes)) == bytes)
        }
        #expect(Base64.encode(Array("foobar".utf8)) == "Zm9vYmFy" && Base64.encode(Array("fo".utf8)) == "Zm8=")
        for bad in ["Zm9", "Zm9v!A==", "Z===", "Zm=v"] { #expect(Base64.decode(bad) == nil, "\(bad)") }
    }

    @Test func rangesAreOneSatisfiableSpanOrTheWholeFile() {
        #expect(ByteRange.parse("bytes=10-19", size: 100) == .part(10..<20))
        #expect(ByteRange.parse("bytes=90-", size: 100) == .part(90..<100))
        #expect(ByteRange.parse("bytes=-5", size: 100) == .part(95..<100))
        #expect(ByteRange.parse("bytes=50-500", size: 100) == .part(50..<100))
        #expect(ByteRange.parse("bytes=100-", size: 100) == .unsatisfiable)
        #expect(ByteRange.parse("bytes=0-1,5-6", size: 100) == .whole, "several ranges: the whole file")
        #expect(ByteRange.parse("items=0-1", size: 100) == .whole)
        #expect(ByteRange.parse("bytes=9-3", size: 100) == .whole)
    }

    @Test func aBodyIsFramedOneWayOrRefused() {
        func framing(_ lengths: [String], _ codings: [String] = []) -> BodyFraming {
            BodyFraming.parse(contentLength: lengths, transferEncoding: codings)
        }
        #expect(framing(["5"]) == .length(5))
        #expect(framing(["0"]) == .length(0))
        #expect(framing(["5", "5"]) == .length(5) && framing(["5, 5"]) == .length(5), "one length, repeated")
        #expect(framing([], ["chunked"]) == .chunked && framing([], [" Chunked "]) == .chunked)
        #expect(framing([]) == BodyFraming.none)
        for lengths in [["5", "6"], ["5, 6"], ["+5"], ["5x"], [""], ["-1"], ["0x10"], ["99999999999999999999"]] {
            guard case .ambiguous = framing(lengths) else {
                Issue.record("\(lengths) should be ambiguous")
                continue
            }
        }
        if case .ambiguous = framing(["5"], ["chunked"]) {} else { Issue.record("both framings at once") }
        #expect(framing([], ["gzip, chunked"]) == .unsupported("gzip, chunked"))
        #expect(framing([], ["chunked", "chunked"]) == .unsupported("chunked, chunked"))
    }

    @Test func optionsSaysWhatAPathAllowsAndLongTargetsAreRefused() {
        #expect(HTTPRoute.parse(method: "OPTIONS", target: "/files/") == .tusOptions(allow: "POST, OPTIONS"))
        #expect(HTTPRoute.parse(method: "OPTIONS", target: "/uploads") == .options(allow: "GET, OPTIONS"))
        #expect(HTTPRoute.parse(method: "OPTIONS", target: "/uploads/01M8W5WPHJ6VF86VAWEGX48Z1B/content") == .options(allow: "GET, HEAD, OPTIONS"))
        #expect(HTTPRoute.parse(method: "OPTIONS", target: "/elsewhere") == .notFound)
        let long = "/names/" + String(repeating: "a", count: HTTPRoute.maxTargetBytes)
        #expect(HTTPRoute.parse(method: "GET", target: long) == .targetTooLong)
        #expect(HTTPRoute.parse(method: "GET", target: String(long.prefix(HTTPRoute.maxTargetBytes))) != .targetTooLong)
    }

    @Test func crossOriginCallsAreOffUntilOriginsAreGiven() {
        let off = CORSPolicy()
        #expect(off.responseHeaders(origin: "https://a.example").isEmpty)
        #expect(off.preflight(origin: "https://a.example", requestMethod: "PUT") == .refused("cross-origin requests are off (--cors-origin)"))
        #expect(off.preflight(origin: nil, requestMethod: "PUT") == .notPreflight)
        #expect(off.preflight(origin: "https://a.example", requestMethod: nil) == .notPreflight)

        let one = CORSPolicy(origins: ["https://a.example"])
        guard case .allowed(let headers) = one.preflight(origin: "https://a.example", requestMethod: "PUT") else {
            Issue.record("a listed origin's preflight is allowed")
            return
        }
        #expect(headers["Access-Control-Allow-Origin"] == "https://a.example" && headers["Access-Control-Allow-Headers"]?.contains("Authorization") == true)
        #expect(one.preflight(origin: "https://b.example", requestMethod: "PUT") == .refused("origin https://b.example is not allowed (--cors-origin)"))
        #expect(one.preflight(origin: "https://a.example", requestMethod: "TRACE") == .refused("method TRACE is not allowed across origins"))
        let answer = Dictionary(uniqueKeysWithValues: one.responseHeaders(origin: "https://a.example"))
        #expect(answer["Access-Control-Allow-Origin"] == "https://a.example" && answer["Vary"] == "Origin")
        #expect(answer["Access-Control-Expose-Headers"]?.contains("Repr-Digest") == true)
        #expect(one.responseHeaders(origin: "https://b.example").map(\.0) == ["Vary"])
        let any = Dictionary(uniqueKeysWithValues: CORSPolicy(origins: ["*"]).responseHeaders(origin: "https://z.example"))
        #expect(any["Access-Control-Allow-Origin"] == "*")

        for good in ["*", "https://a.example", "http://127.0.0.1:8080"] { #expect(CORSPolicy.isValidOrigin(good), "\(good)") }
        for bad in ["a.example", "https://a.example/", "ftp://a.example", "https://", "https://u@a.example"] {
            #expect(!CORSPolicy.isValidOrigin(bad), "\(bad)")
        }
    }

    @Test func aResponseHeadIsReadUpToItsBlankLine() {
        let text = "HTTP/1.1 206 Partial Content\r\nContent-Length: 5\r\nETag: \"ab\"\r\nX-Twice: 1\r\nx-twice: 2\r\n\r\nhello"
        guard case .head(let head, let length) = ResponseHead.parse(Array(text.utf8)) else {
            Issue.record("a whole head")
            return
        }
        #expect(head.status == 206 && head.reason == "Partial Content" && length == text.utf8.count - 5)
        #expect(head.headers["content-length"] == "5" && head.headers["etag"] == "\"ab\"" && head.headers["x-twice"] == "1")
        #expect(ResponseHead.parse(Array("HTTP/1.1 200 OK\r\nA: b\r\n".utf8)) == .incomplete)
        for bad in ["SPOOL 200 OK\r\n\r\n", "HTTP/1.1 2000 OK\r\n\r\n", "HTTP/1.1 200 OK\r\nno colon\r\n\r\n"] {
            guard case .malformed = ResponseHead.parse(Array(bad.utf8)) else {
                Issue.record("\(bad.debugDescription) is malformed")
                continue
            }
        }
        guard case .malformed = ResponseHead.parse([UInt8](repeating: 65, count: ResponseHead.maxBytes + 1)) else {
            Issue.record("an endless head is refused")
            return
        }
    }

    @Test func aDownloadsNameIsReadBackSafely() {
        let header = ContentDisposition.attachment(name: "photos/résumé \"1\".pdf")
        #expect(ContentDisposition.fileName(from: header) == "résumé \"1\".pdf")
        #expect(ContentDisposition.fileName(from: "attachment; filename=\"plain.txt\"") == "plain.txt")
        #expect(ContentDisposition.fileName(from: "attachment; filename*=UTF-8''..%2F..%2Fetc%2Fpasswd") == "passwd")
        #expect(ContentDisposition.fileName(from: "attachment; filename=\"..\"") == nil)
        #expect(ContentDisposition.fileName(from: "attachment; filename*=UTF-8''a%0Ab") == nil)
        #expect(ContentDisposition.fileName(from: "attachment") == nil)
    }

    @Test func aDownloadIsNamedForOldAndNewClients() {
        #expect(ContentDisposition.attachment(name: "photos/résumé \"1\".pdf")
            == "attachment; filename=\"r_sum_ _1_.pdf\"; filename*=UTF-8''r%C3%A9sum%C3%A9%20%221%22.pdf")
    }
}
