import Foundation
import Testing

/// Crash images of a loaded server, as a power cut leaves them (Tests/PowerLoss/powerloss.py:
/// the data directory on XFS and on ext4 on a loop device, cloned with a reflink
/// while 16 clients upload): every acknowledged upload is complete with its bytes
/// on every image. A longer run is done by hand (`--images 20`).
@Suite struct PowerLossTests {
    static func powerloss(_ arguments: [String]) throws -> Finished {
        try run("/usr/bin/python3", [Binaries.repository + "/Tests/PowerLoss/powerloss.py",
                                     "--spoold", Binaries.spoold, "--spool", Binaries.spool] + arguments, timeout: 600)
    }

    @Test func everyAcknowledgedUploadSurvivesOnXFSAndExt4() throws {
        let result = try Self.powerloss(["--images", "4", "--interval", "1.5"])
        #expect(result.status == 0, "\(result.stdout)\n\(result.stderr)")
        #expect(result.stdout.contains("powerloss: 8 crash images"), "\(result.stdout)")
    }

    /// The check can fail: a disk whose syncs do nothing (`SPOOL_FAULT=sync:skip`)
    /// loses acknowledged uploads, and the script must say so.
    @Test func aDiskThatSkipsSyncsIsCaught() throws {
        let result = try Self.powerloss(["--images", "1", "--fs", "xfs", "--lying-disk"])
        #expect(result.status == 0, "\(result.stdout)\n\(result.stderr)")
        #expect(result.stdout.contains("problem:"), "\(result.stdout)")
    }
}
