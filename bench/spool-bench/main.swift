// Micro-benchmarks for costs too small to see end to end.
// `spool-bench progress [MiB]`: what publishing upload progress to the scoreboard
// adds to a worker's receive path (write a chunk to a file, hash it).
// `spool-bench small-files [COUNT] [DIR]`: the ceiling for many small files (P2).
import Crypto
import Foundation
import Synchronization
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
            let now = Scoreboard.nowMilliseconds()  // as the worker does: one clock read per chunk
            board.beat(at: now)
            board.publish(slot: 0, received: received, rate: 0, at: now)
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

/// This machine's ceilings for the bytes an upload moves: SHA-256 in memory,
/// loopback TCP, and writing to disk with an fsync. Prints `name MB/s` lines.
func ceiling(_ arguments: [String]) throws {
    let mib = arguments.first.flatMap(Int.init) ?? 1024
    let directory = arguments.dropFirst().first ?? NSTemporaryDirectory()
    let block = [UInt8]((0..<(1 << 20)).map { UInt8(truncatingIfNeeded: $0 &* 2_654_435_761 >> 11) })

    var hasher = SHA256()
    var start = UTCTime.monotonic()
    for _ in 0..<mib { block.withUnsafeBytes { hasher.update(bufferPointer: $0) } }
    _ = hasher.finalize()
    print("sha256 \(Int(Double(mib << 20) / (UTCTime.monotonic() - start) / 1e6))")

    let path = directory + "/spool-bench-disk-\(getpid())"
    let fd = try Files.open(path, flags: O_WRONLY | O_CREAT | O_TRUNC)
    start = UTCTime.monotonic()
    for _ in 0..<mib { try block.withUnsafeBytes { try Files.writeAll(fd, $0) } }
    try Files.fsync(fd)
    print("disk_fsync \(Int(Double(mib << 20) / (UTCTime.monotonic() - start) / 1e6))")
    Files.close(fd)
    try Files.unlink(path)

    print("loopback \(Int(try loopback(mib: mib, block: block) / 1e6))")
}

/// Bytes per second through one TCP connection on 127.0.0.1.
func loopback(mib: Int, block: [UInt8]) throws -> Double {
    let listener = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    var length = socklen_t(MemoryLayout<sockaddr_in>.size)
    _ = withUnsafeMutablePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { pointer -> Int32 in
            _ = bind(listener, pointer, length)
            return getsockname(listener, pointer, &length)
        }
    }
    listen(listener, 1)
    let port = address.sin_port
    let reader = Thread {
        let fd = accept(listener, nil, nil)
        var buffer = [UInt8](repeating: 0, count: 1 << 20)
        while read(fd, &buffer, buffer.count) > 0 {}
        close(fd)
    }
    reader.start()
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    var target = sockaddr_in()
    target.sin_family = sa_family_t(AF_INET)
    target.sin_port = port
    target.sin_addr.s_addr = inet_addr("127.0.0.1")
    _ = withUnsafePointer(to: &target) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
    }
    let start = UTCTime.monotonic()
    for _ in 0..<mib { try block.withUnsafeBytes { try Files.writeAll(fd, $0) } }
    shutdown(fd, Int32(SHUT_WR))
    var byte: UInt8 = 0
    _ = read(fd, &byte, 1)  // the reader closes once it has everything
    let elapsed = UTCTime.monotonic() - start
    close(fd)
    close(listener)
    return Double(mib << 20) / elapsed
}

/// This machine's ceiling for P2: `count` files of 4 KiB created in 16 new
/// directories under `directory` by one thread per core (open, write, close),
/// then made durable by one `syncfs`, as `nginx + sync` does. No network, no
/// hashing, no database: what storing small files costs the kernel and the disk
/// alone. Prints `small_files <files/s>`.
func smallFiles(_ arguments: [String]) throws {
    let count = arguments.first.flatMap(Int.init) ?? 5000
    let directory = arguments.dropFirst().first ?? NSTemporaryDirectory()
    let root = directory + "/spool-bench-small-\(getpid())"
    for d in 0..<16 { _ = try Files.makeDirectories(root + "/\(d)", durable: false) }
    let anchor = try Files.open(root, flags: O_RDONLY)
    defer { Files.close(anchor) }
    try Files.syncFileSystem(anchor, path: root)
    let threads = max(1, Int(sysconf(Int32(_SC_NPROCESSORS_ONLN))))
    let failures = Mutex<[String]>([])
    let done = DispatchGroup()
    let start = UTCTime.monotonic()
    for t in 0..<threads {
        done.enter()
        Thread {
            defer { done.leave() }
            var body = [UInt8](repeating: 0, count: 4096)
            do {
                for i in stride(from: t, to: count, by: threads) {
                    let path = root + "/\(i % 16)/f\(i)"
                    let fd = try Files.open(path, flags: O_WRONLY | O_CREAT | O_EXCL)
                    withUnsafeBytes(of: i) { for (k, byte) in $0.enumerated() { body[k] = byte } }
                    defer { Files.close(fd) }
                    try body.withUnsafeBytes { try Files.writeAll(fd, $0, path: path) }
                }
            } catch {
                failures.withLock { $0.append("\(error)") }
            }
        }.start()
    }
    done.wait()
    try Files.syncFileSystem(anchor, path: root)
    let elapsed = UTCTime.monotonic() - start
    if let failure = failures.withLock({ $0.first }) { throw BenchError(failure) }
    print("small_files \(Int(Double(count) / elapsed))")
}

/// `spool-bench sha256 [MiB]`: the hash whose state can be saved (S3 resumes)
/// against swift-crypto's, over the same bytes in 64 KiB pieces, in memory.
func sha256(_ arguments: [String]) {
    let totalMiB = arguments.first.flatMap(Int.init) ?? 1024
    var bytes = [UInt8](repeating: 0, count: 64 << 10)
    for i in bytes.indices { bytes[i] = UInt8(truncatingIfNeeded: i &* 2_654_435_761 >> 13) }
    let pieces = totalMiB * 16
    func rate(_ body: (UnsafeRawBufferPointer) -> Void) -> Double {
        let start = UTCTime.monotonic()
        bytes.withUnsafeBytes { raw in for _ in 0..<pieces { body(raw) } }
        return Double(pieces * bytes.count) / (UTCTime.monotonic() - start) / 1e6
    }
    var runs: [String: [Double]] = [:]
    for _ in 0..<5 {
        var crypto = SHA256()
        runs["swift-crypto SHA256", default: []].append(rate { crypto.update(bufferPointer: $0) })
        _ = crypto.finalize()
        var ours = ResumableSHA256()
        runs["ResumableSHA256", default: []].append(rate { ours.update(bufferPointer: $0) })
        _ = ours.finalize()
        var portable = ResumableSHA256(portable: true)
        runs["ResumableSHA256, portable rounds", default: []].append(rate { portable.update(bufferPointer: $0) })
        _ = portable.finalize()
    }
    let baseline = runs["swift-crypto SHA256", default: [1]].sorted()[2]
    print("SHA-256 of \(totalMiB) MiB in 64 KiB pieces, median of 5 runs each, alternating")
    print("| hash | MB/s | vs swift-crypto |")
    print("|---|---|---|")
    for name in ["swift-crypto SHA256", "ResumableSHA256", "ResumableSHA256, portable rounds"] {
        let median = runs[name, default: [0, 0, 0]].sorted()[2]
        print("| \(name) | \(Int(median)) | \(String(format: "%.2f", median / baseline)) |")
    }
}

struct BenchError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

let arguments = Array(CommandLine.arguments.dropFirst())
do {
    switch arguments.first {
    case "progress": try progress(Array(arguments.dropFirst()))
    case "ceiling": try ceiling(Array(arguments.dropFirst()))
    case "small-files": try smallFiles(Array(arguments.dropFirst()))
    case "sha256": sha256(Array(arguments.dropFirst()))
    default:
        FileHandle.standardError.write(Data("usage: spool-bench progress [MiB] | ceiling [MiB] [DIR] | small-files [COUNT] [DIR] | sha256 [MiB]\n".utf8))
        exit(2)
    }
} catch {
    FileHandle.standardError.write(Data("spool-bench: \(error)\n".utf8))
    exit(1)
}
