import Foundation
import Testing

/// The fuzz target's seed corpus (and any crash found and added there) replays
/// cleanly through the same checks, in the ordinary build.
@Suite struct FuzzCorpusTests {
    @Test func corpusReplaysWithoutBreakingAnInvariant() throws {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent()
        let corpus = root.appendingPathComponent("fuzz/corpus").path
        let count = try FileManager.default.contentsOfDirectory(atPath: corpus).count
        #expect(count >= 5)
        let result = try run(Binaries.directory + "/spool-fuzz", [corpus])
        #expect(result.status == 0, "\(result.stdout)\(result.stderr)")
        #expect(result.stdout == "replayed \(count) inputs\n")
    }
}
