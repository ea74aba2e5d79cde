import Foundation
import SpoolTestSupport
import Testing

/// `spoold serve --log-format json`: every line master and workers write is one
/// JSON object with the fixed fields and the metadata beside them.
@Suite struct LogFormatJSONTests {
    @Test func everyLineIsAJSONObjectWithTheSameFieldsAsText() throws {
        let server = try Server(workers: 2, arguments: ["--log-format", "json"])
        let files = try TempDirectory()
        let file = writeFile(files.path + "/a.bin", pseudoRandomBytes(count: 10_000, seed: 3))
        let uploaded = try run(Binaries.spool, ["upload", "--quiet", "--server", server.address, file])
        #expect(uploaded.status == 0, "\(uploaded.stderr)")
        try server.stop()

        let lines = server.log().split(separator: "\n")
        #expect(lines.count > 10)
        var objects: [[String: Any]] = []
        for line in lines {
            let object = try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any]
            try #require(object != nil, "not a JSON object: \(line)")
            objects.append(object ?? [:])
        }
        for object in objects {
            #expect(object["time"] is String && object["pid"] is Int && object["level"] is String
                && object["label"] is String && object["message"] is String, "\(object)")
        }
        let listening = objects.filter { $0["message"] as? String == "listening" }
        #expect(listening.count == 2 && listening.allSatisfy { $0["address"] is String && $0["kind"] is String })
        // Metadata named like a fixed field keeps both: the worker's own pid field.
        #expect(objects.contains { $0["message"] as? String == "worker ready" && $0["meta_pid"] is String })
        #expect(objects.contains { $0["message"] as? String == "upload stored" && $0["size"] as? String == "10000" })
    }

    @Test func anUnknownFormatIsRefused() throws {
        let result = try run(Binaries.spoold, ["serve", "--log-format", "xml", "--data-dir", "/nonexistent"])
        #expect(result.status == 64 && result.stderr.contains("--log-format: expected text or json, got \"xml\""), "\(result.stderr)")
    }
}
