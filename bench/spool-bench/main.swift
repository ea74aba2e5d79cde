// Micro-benchmarks for costs too small to see end to end.
// `spool-bench progress [MiB]`: what publishing upload progress to the scoreboard
// adds to a worker's receive path (write a chunk to a file, hash it).
import Crypto
import Foundation
import SpoolSystem

#if canImport(Glibc)
import Glibc
#endif

func receivePath(totalMiB: Int, chunk: Int, publish: WorkerBoard?) throws -> Double {
    let path = NSTemporaryDirectory() + "spool-bench-\(getpid())"
    let fd = try Files.open(path, flags: O_WRONLY | O_CREAT | O_TRUNC)
    defer {
        Files.close(fd)
        try? Files.unlink(path)
    }
    var bytes = [UInt8](repeating: 0, count: chunk)
    for i in bytes.indices { bytes[i] = UInt8(truncatingIfNeeded: i &* 2_654_435_761 >> 13) }
    var hasher = SHA256()
    var received: Int64 = 0
    let chunks = totalMiB * (1 << 20) / chunk
    let start = UTCTime.monotonic()
    for n in 0..<chunks {
        try bytes.withUnsafeBytes { raw in
            try Files.writeAll(fd, raw)
            hasher.update(bufferPointer: raw)
        }
        received += Int64(chunk)
        if let board = publish {
            _ = Scoreboard.nowMilliseconds()  // the rate window check reads the clock per chunk too
            board.beat()
            board.publish(slot: 0, received: received, rate: 0)
        }
        // Keep the page cache from filling: rewind every 256 MiB.
        if (n + 1) % (256 * (1 << 20) / chunk) == 0 { lseek(fd, 0, SEEK_SET) }
    }
    _ = hasher.finalize()
    return Double(chunks * chunk) / (UTCTime.monotonic() - start)
}

func progress(_ arguments: [String]) throws {
    let totalMiB = arguments.first.flatMap(Int.init) ?? 2048
    let board = try Scoreboard.create().board(0)
    board.claim(slot: 0, id: "BENCH", received: 0, size: Int64(totalMiB) << 20)
    print("receive path: write + SHA-256 of \(totalMiB) MiB, median of 5 runs each, alternating")
    print("| chunk | without progress (MB/s) | with progress (MB/s) | ratio |")
    print("|---|---|---|---|")
    for chunk in [16 << 10, 64 << 10] {
        var without: [Double] = []
        var with: [Double] = []
        for _ in 0..<5 {
            without.append(try receivePath(totalMiB: totalMiB, chunk: chunk, publish: nil))
            with.append(try receivePath(totalMiB: totalMiB, chunk: chunk, publish: board))
        }
        let a = without.sorted()[2] / 1e6, b = with.sorted()[2] / 1e6
        print("| \(chunk >> 10) KiB | \(Int(a)) | \(Int(b)) | \(String(format: "%.3f", b / a)) |")
    }
}

let arguments = Array(CommandLine.arguments.dropFirst())
switch arguments.first {
case "progress":
    do { try progress(Array(arguments.dropFirst())) } catch {
        FileHandle.standardError.write(Data("spool-bench: \(error)\n".utf8))
        exit(1)
    }
default:
    FileHandle.standardError.write(Data("usage: spool-bench progress [MiB]\n".utf8))
    exit(2)
}
