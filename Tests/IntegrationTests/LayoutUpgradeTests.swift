import Foundation
import SpoolStore
import SpoolTestSupport
import Testing

@Suite struct LayoutUpgradeTests {
    /// A data directory as Spool 0.1 left it: the master moves its objects at start.
    @Test func theMasterMovesOldObjectsUpAtStart() throws {
        let data = try TempDirectory()
        let directory = DataDirectory(data.path + "/data")
        let bytes = Array("stored by an older spoold".utf8)
        let sha = sha256Hex(bytes)
        let old = directory.objectsPath + "/\(sha.prefix(2))/\(sha.dropFirst(2).prefix(2))"
        try FileManager.default.createDirectory(atPath: old, withIntermediateDirectories: true)
        try Data(bytes).write(to: URL(fileURLWithPath: old + "/" + sha))
        let server = try Server(workers: 1, data: data)
        #expect(server.count("objects moved to the one-level layout") == 1, "\(server.log())")
        #expect(try Data(contentsOf: URL(fileURLWithPath: directory.objectFile(sha256: sha))) == Data(bytes))
        #expect(!FileManager.default.fileExists(atPath: old))
        try server.stop()
    }
}
