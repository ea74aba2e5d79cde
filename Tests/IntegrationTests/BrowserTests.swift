import Foundation
import SpoolTestSupport
import Testing

/// The upload page (docs/WEB.md) in a real headless Chromium driven by Selenium
/// (Tests/Browser/page.py; scripts/setup installs chromium, chromium-driver and
/// python3-selenium), against a real spoold. One scenario per test; the script
/// says what failed.
@Suite(.serialized) struct BrowserTests {
    static let python = "/usr/bin/python3"
    static var script: String { Binaries.repository + "/Tests/Browser/page.py" }

    @discardableResult
    static func scenario(_ name: String, _ server: Server, _ extra: [String] = []) throws -> TempDirectory {
        guard FileManager.default.isExecutableFile(atPath: "/usr/bin/chromedriver") else {
            throw HarnessError("chromium-driver is not installed: run scripts/setup")
        }
        let files = try TempDirectory()
        let result = try run(
            python, [script, name, "--base", server.httpBase, "--master", "\(server.pid)", "--files", files.path] + extra,
            timeout: 300)
        #expect(result.status == 0, "\(name): \(result.stdout)\(result.stderr)\n\(server.log().suffix(3000))")
        return files
    }

    @Test func threeFilesAtOnceAreStoredWithTheirChecksums() throws {
        let server = try Server(workers: 2)
        let files = try Self.scenario("three", server)
        // The picture of the page mid-upload, kept where docs/WEB.md's can be refreshed from.
        let shot = files.path + "/upload-page.png"
        #expect(FileManager.default.fileExists(atPath: shot))
        try? FileManager.default.removeItem(atPath: Binaries.repository + "/.build/upload-page.png")
        try? FileManager.default.copyItem(atPath: shot, toPath: Binaries.repository + "/.build/upload-page.png")
        try server.stop()
    }

    @Test func aWorkerKilledMidUploadIsNotNoticedByThePage() throws {
        let server = try Server(workers: 1)
        try Self.scenario("kill", server)
        #expect(server.count("upload interrupted by its worker's exit") >= 1, "\(server.log())")
        try server.stop()
    }

    /// The scenarios that need a server and nothing more: (scenario, its server's arguments).
    static let plain: [(String, [String])] = [
        ("reload", []),  // a reload mid-upload goes on from the server's offset
        ("pause", []),  // Pause stops the bytes, Resume goes on
        ("folder", []),  // a folder is sent with its paths
        ("limit", ["--max-file-size", "1M"]),  // over the limit: refused in words, nothing stored
        ("keyboard", []),  // the keyboard reaches everything, a phone's screen fits
    ]

    @Test(arguments: plain) func scenario(_ name: String, _ arguments: [String]) throws {
        let server = try Server(workers: 1, arguments: arguments)
        try Self.scenario(name, server)
        try server.stop()
    }

    @Test func tokensAreAskedForInWordsAndEachSeesItsOwn() throws {
        let server = try Server(workers: 1)
        let mine = try server.createToken(["--name", "alice", "--quota-bytes", "10000"])
        let theirs = try server.createToken(["--name", "bob"])
        #expect(server.waitForAuthRequired())
        let dir = try TempDirectory()
        let put = try HTTPTests.curl(["-f", "-T", writeFile(dir.path + "/theirs.txt", Array("bob's".utf8)), "-H", "Authorization: Bearer \(theirs)",
                                      server.httpBase + "/files/"])
        #expect(put.status == 0, "\(put.stderr)")
        try Self.scenario("token", server, ["--token", mine, "--other-token", theirs])
        try server.stop()
    }

}
