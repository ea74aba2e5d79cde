import Foundation
import SpoolTestSupport
import Testing

/// The upload page's files as HTTP serves them (docs/WEB.md): ETag and 304,
/// gzip when asked for, the Content-Security-Policy; and the live progress the
/// page's list shows for an upload still arriving by another protocol.
@Suite struct WebPageTests {
    static func head(_ url: String, _ extra: [String] = []) throws -> (status: Int, headers: [String: String], bytes: Int) {
        let dir = try TempDirectory()
        let result = try HTTPTests.curl(["-D", dir.path + "/h", "-o", dir.path + "/b", "-w", "%{http_code} %{size_download}"] + extra + [url])
        var headers: [String: String] = [:]
        for line in ((try? String(contentsOfFile: dir.path + "/h", encoding: .utf8)) ?? "").components(separatedBy: "\r\n") {
            guard let colon = line.firstIndex(of: ":") else { continue }
            headers[line[..<colon].lowercased()] = line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
        }
        let figures = result.stdout.split(separator: " ")
        return (Int(figures.first ?? "") ?? 0, headers, Int(figures.last ?? "") ?? 0)
    }

    @Test func thePageIsServedWithItsETagGzipAndPolicy() throws {
        let server = try Server(workers: 1)
        let page = try Self.head(server.httpBase + "/")
        #expect(page.status == 200 && page.headers["content-type"] == "text/html; charset=utf-8")
        #expect(page.headers["content-security-policy"]?.hasPrefix("default-src 'none'; script-src 'self'") == true)
        #expect(page.headers["x-content-type-options"] == "nosniff" && page.headers["cache-control"] == "no-cache")
        let html = try HTTPTests.curl([server.httpBase + "/"]).stdout
        #expect(html.contains("<script src=\"/app.js\" defer></script>") && !html.contains("<script>") && !html.contains("style="),
                "no inline script or style")

        let plain = try Self.head(server.httpBase + "/app.js")
        let gzipped = try Self.head(server.httpBase + "/app.js", ["-H", "Accept-Encoding: gzip, br"])
        #expect(plain.headers["content-encoding"] == nil && gzipped.headers["content-encoding"] == "gzip")
        #expect(gzipped.bytes * 2 < plain.bytes, "gzip pays: \(gzipped.bytes) of \(plain.bytes) bytes")
        #expect(try Self.head(server.httpBase + "/app.js", ["-H", "Accept-Encoding: gzip;q=0"]).headers["content-encoding"] == nil)
        #expect(plain.headers["vary"] == "Accept-Encoding" && plain.headers["content-type"] == "text/javascript; charset=utf-8")

        let etag = try #require(plain.headers["etag"])
        #expect(try Self.head(server.httpBase + "/app.js", ["-H", "If-None-Match: \(etag)"]).status == 304)
        #expect(try Self.head(server.httpBase + "/app.js", ["-H", "If-None-Match: \"other\""]).status == 200)
        #expect(try Self.head(server.httpBase + "/app.css").headers["content-type"] == "text/css; charset=utf-8")
        #expect(try Self.head(server.httpBase + "/nothing.js").status == 404)
        #expect(try Self.head(server.httpBase + "/", ["-X", "POST"]).status == 405)
        try server.stop()
    }

    @Test func theListShowsTheLiveBytesOfALineProtocolUpload() throws {
        let server = try Server(workers: 1)
        let nc = try RawSession(port: server.port)
        #expect(code(try nc.ask("UPLOAD 1000000 \(String(repeating: "0", count: 64)) arriving.bin").first) == 150)
        try nc.send(bytes: [UInt8](repeating: 7, count: 300_000))
        let live = eventually(timeout: 10) {
            let text = (try? HTTPTests.curl([server.httpBase + "/uploads"]).stdout) ?? ""
            return text.contains("\"received\":300000") && text.contains("\"state\":\"receiving\"")
        }
        #expect(live, "the bytes so far, not the row's 0")
        try server.stop()
    }
}
