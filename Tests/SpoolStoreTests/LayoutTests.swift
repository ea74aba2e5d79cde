import Foundation
import SpoolSystem
import SpoolTestSupport
import Testing
@testable import SpoolStore

@Suite struct LayoutTests {
    @Test func aNewDataDirectoryHasAll256ObjectDirectories() throws {
        let dir = try TempDirectory()
        let data = DataDirectory(dir.path + "/data")
        try data.prepare()
        let names = try Files.list(data.objectsPath).sorted()
        #expect(names.count == 256 && names.first == "00" && names.last == "ff")
        let sha = "ab" + String(repeating: "0", count: 62)
        #expect(data.objectFile(sha256: sha) == data.objectsPath + "/ab/" + sha)
        #expect(try data.upgradeLayout() == 0)  // the marker says there is nothing to scan
    }

    /// A data directory as Spool 0.1 left it (objects/ab/cd/<sha256>, no marker),
    /// caught by a crash in the middle of an upgrade: one object already moved up,
    /// one two-level directory already empty.
    @Test func objectsOfTheTwoLevelLayoutMoveUpWithTheirBytes() throws {
        let dir = try TempDirectory()
        let data = DataDirectory(dir.path + "/data")
        let objects: [(sha: String, bytes: Data)] = [
            ("abcd" + String(repeating: "1", count: 60), Data("first".utf8)),
            ("abcd" + String(repeating: "2", count: 60), Data("second".utf8)),
            ("ff00" + String(repeating: "3", count: 60), Data("third".utf8)),
        ]
        func oldDirectory(_ sha: String) -> String {
            data.objectsPath + "/\(sha.prefix(2))/\(sha.dropFirst(2).prefix(2))"
        }
        for (sha, bytes) in objects.prefix(2) {
            try FileManager.default.createDirectory(atPath: oldDirectory(sha), withIntermediateDirectories: true)
            try bytes.write(to: URL(fileURLWithPath: oldDirectory(sha) + "/" + sha))
        }
        let (movedSHA, movedBytes) = objects[2]
        try FileManager.default.createDirectory(atPath: oldDirectory(movedSHA), withIntermediateDirectories: true)
        try movedBytes.write(to: URL(fileURLWithPath: data.objectFile(sha256: movedSHA)))

        try data.prepare()
        #expect(!data.layoutIsCurrent)  // an existing objects/ is left to the master, under its lock
        #expect(try data.upgradeLayout() == 2)
        for (sha, bytes) in objects {
            #expect(!Files.exists(oldDirectory(sha)))
            #expect(try Data(contentsOf: URL(fileURLWithPath: data.objectFile(sha256: sha))) == bytes)
        }
        #expect(try Files.list(data.objectsPath + "/ab").sorted() == objects.prefix(2).map(\.sha).sorted())
        #expect(try data.upgradeLayout() == 0)
    }

    @Test func theUpgradeCountsWhatItMoved() throws {
        let dir = try TempDirectory()
        let data = DataDirectory(dir.path + "/data")
        let sha = "0102" + String(repeating: "4", count: 60)
        let old = data.objectsPath + "/01/02"
        try FileManager.default.createDirectory(atPath: old, withIntermediateDirectories: true)
        try Data("x".utf8).write(to: URL(fileURLWithPath: old + "/" + sha))
        #expect(try data.upgradeLayout() == 1)
        #expect(Files.exists(data.objectFile(sha256: sha)))
    }

    @Test func aStoreRefusesTheOldLayoutUntilTheServerHasMovedIt() throws {
        let dir = try TempDirectory()
        let data = DataDirectory(dir.path + "/data")
        _ = try Store.openMigrating(directory: data)
        try FileManager.default.removeItem(atPath: data.spoolPath + "/layout-2")
        #expect(throws: StoreError.layoutBehind(path: data.objectsPath)) { try Store(directory: data) }
        try data.upgradeLayout()
        _ = try Store(directory: data)
    }
}
