import Testing

@testable import SpoolProtocol

@Suite struct TusRulesTests {
    @Test func routes() {
        let id = "01M8W5WPHJ6VF86VAWEGX48Z1B"
        #expect(HTTPRoute.parse(method: "POST", target: "/files/") == .tusCreate)
        #expect(HTTPRoute.parse(method: "POST", target: "/files") == .tusCreate)
        #expect(HTTPRoute.parse(method: "PATCH", target: "/files/\(id.lowercased())") == .tus(id: id, method: .patch))
        #expect(HTTPRoute.parse(method: "HEAD", target: "/files/\(id)") == .tus(id: id, method: .head))
        #expect(HTTPRoute.parse(method: "DELETE", target: "/files/\(id)") == .tus(id: id, method: .delete))
        // A name is never taken for an id: tus methods on a name find nothing.
        #expect(HTTPRoute.parse(method: "HEAD", target: "/files/photo.jpg") == .notFound)
        #expect(HTTPRoute.parse(method: "PUT", target: "/files/\(id)") == .upload(name: id))
        #expect(HTTPRoute.parse(method: "GET", target: "/files/") == .methodNotAllowed(allow: "POST"))
        #expect(HTTPRoute.parse(method: "OPTIONS", target: "/files/\(id)") == .tusOptions(allow: "PUT, HEAD, PATCH, DELETE, OPTIONS"))
    }

    @Test func version() {
        #expect(Tus.checkVersion(["1.0.0"]) == nil)
        #expect(Tus.checkVersion([" 1.0.0 "]) == nil)
        #expect(Tus.checkVersion(["0.2.2"])?.status == 412)
        #expect(Tus.checkVersion([])?.status == 412)
    }

    @Test func creationLength() {
        #expect(Tus.creationLength(uploadLength: ["300"], deferLength: []) == .success(.known(300)))
        #expect(Tus.creationLength(uploadLength: ["0"], deferLength: []) == .success(.known(0)))
        #expect(Tus.creationLength(uploadLength: [], deferLength: ["1"]) == .success(.deferred))
        for (length, deferred) in [([], []), (["1"], ["1"]), ([], ["2"]), (["-1"], []), (["1.5"], []), (["+3"], []),
                                   (["99999999999999999999"], []), (["1", "2"], []), ([""], [])] as [([String], [String])] {
            guard case .failure(let refusal) = Tus.creationLength(uploadLength: length, deferLength: deferred) else {
                Issue.record("accepted Upload-Length \(length), Upload-Defer-Length \(deferred)")
                continue
            }
            #expect(refusal.status == 400)
        }
    }

    @Test func offsetAndContentType() {
        #expect(Tus.number(["5"], "Upload-Offset") == .success(5))
        #expect(Tus.number(["x"], "Upload-Offset") == .failure(Tus.Refusal(400, "Upload-Offset must be one non-negative integer")))
        #expect(Tus.checkContentType(["application/offset+octet-stream"]) == nil)
        #expect(Tus.checkContentType(["Application/Offset+Octet-Stream; charset=x"]) == nil)
        #expect(Tus.checkContentType(["application/octet-stream"])?.status == 415)
        #expect(Tus.checkContentType([])?.status == 415)
    }

    @Test func metadata() throws {
        // "photo.jpg", an empty value, and a key with no value (tus-js-client sends these).
        let parsed = try Tus.metadata(["filename cGhvdG8uanBn,empty ,flag"]).get()
        #expect(parsed.pairs.map(\.key) == ["filename", "empty", "flag"])
        #expect(parsed.name == "photo.jpg")
        #expect(parsed.raw == "filename cGhvdG8uanBn,empty ,flag")
        #expect(try Tus.metadata(["name YS50eHQ="]).get().name == "a.txt")
        #expect(try Tus.metadata([]).get().pairs.isEmpty)
        for bad in ["filename !!!", "a YQ==,a YQ==", "a b c", String(repeating: "k YQ==,", count: 700)] {
            guard case .failure(let refusal) = Tus.metadata([bad]) else {
                Issue.record("accepted Upload-Metadata \(bad.prefix(40))")
                continue
            }
            #expect(refusal.status == 400)
        }
    }

    @Test func wholeFileChecksum() throws {
        let hex = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        let b64 = Base64.encode(Hex.bytes(hex) ?? [])
        #expect(try Tus.wholeFileSHA256(Tus.metadata(["sha256 \(b64)"]).get()) == .success(hex))
        let hexB64 = Base64.encode(Array(hex.uppercased().utf8))
        #expect(try Tus.wholeFileSHA256(Tus.metadata(["sha256 \(hexB64)"]).get()) == .success(hex))
        #expect(try Tus.wholeFileSHA256(Tus.metadata(["filename YQ=="]).get()) == .success(nil))
        #expect(try Tus.wholeFileSHA256(Tus.metadata(["sha256 YQ=="]).get()).map { _ in 0 } == .failure(
            Tus.Refusal(400, "Upload-Metadata: sha256 must be the whole file's SHA-256, 32 bytes or 64 hex digits")))
        guard case .failure = try Tus.wholeFileSHA256(Tus.metadata(["sha256"]).get()) else {
            Issue.record("accepted a sha256 key without a value")
            return
        }
    }

    @Test func chunkChecksum() {
        // SHA-1 of "hello": aaf4c61ddcc5e8a2dabede0f3b482cd9aea9434d.
        let sha1 = Base64.encode(Hex.bytes("aaf4c61ddcc5e8a2dabede0f3b482cd9aea9434d") ?? [])
        #expect(Tus.chunkChecksum(["sha1 \(sha1)"]) == .success(Tus.ChunkChecksum(algorithm: .sha1, digest: Hex.bytes("aaf4c61ddcc5e8a2dabede0f3b482cd9aea9434d") ?? [])))
        #expect(Tus.chunkChecksum([]) == .success(nil))
        #expect(Tus.chunkChecksum(["crc32 AAAAAA=="]).map { _ in 0 } == .failure(
            Tus.Refusal(400, "Upload-Checksum: crc32 is not supported; use one of sha1,sha256,md5")))
        #expect(Tus.chunkChecksum(["sha256 \(sha1)"]).map { _ in 0 } == .failure(
            Tus.Refusal(400, "Upload-Checksum: a sha256 digest is 32 bytes of base64")))
        #expect(Tus.chunkChecksum(["sha1"]).map { _ in 0 } == .failure(
            Tus.Refusal(400, "Upload-Checksum is an algorithm, a space and a base64 digest")))
    }

    @Test func httpDates() {
        #expect(Tus.httpDate(epochSeconds: 0) == "Thu, 01 Jan 1970 00:00:00 GMT")
        #expect(Tus.httpDate(epochSeconds: 784_111_777) == "Sun, 06 Nov 1994 08:49:37 GMT")  // RFC 9110's example
        #expect(Tus.httpDate(epochSeconds: 1_709_164_800) == "Thu, 29 Feb 2024 00:00:00 GMT")
    }
}
