import Foundation
import SpoolTestSupport

/// A data directory on a file system of its own (a tmpfs of `megabytes`), so a
/// test can fill it up without the free space of the machine's disk, which the
/// tests running beside it change all the time, deciding what happens.
final class SmallDisk {
    let directory: TempDirectory
    var dataPath: String { directory.path + "/data" }

    init(megabytes: Int) throws {
        directory = try TempDirectory()
        try FileManager.default.createDirectory(atPath: directory.path + "/data", withIntermediateDirectories: true)
        let mounted = try run("/bin/mount", ["-t", "tmpfs", "-o", "size=\(megabytes)m", "tmpfs", directory.path + "/data"])
        guard mounted.status == 0 else { throw HarnessError("cannot mount a tmpfs (tests run as root): \(mounted.stderr)") }
    }

    deinit {
        _ = try? run("/bin/umount", ["-l", dataPath])
    }
}
