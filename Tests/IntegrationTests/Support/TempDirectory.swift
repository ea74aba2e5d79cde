import Foundation

/// A fresh directory under the system temp dir, removed when the test is done.
final class TempDirectory {
    let path: String

    init() throws {
        path = NSTemporaryDirectory() + "spool-test-" + UUID().uuidString
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    }

    deinit {
        try? FileManager.default.removeItem(atPath: path)
    }
}
