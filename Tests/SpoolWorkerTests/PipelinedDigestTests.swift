import Crypto
import NIOCore
import NIOPosix
import SpoolProtocol
import SpoolSystem
import Testing
@testable import SpoolWorker

@Suite struct PipelinedDigestTests {
    /// Chunks of distinct bytes, so that hashing them out of order gives a different digest.
    static func chunks(count: Int, size: Int) -> [ByteBuffer] {
        (0..<count).map { n in ByteBuffer(bytes: (0..<size).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ n &* 7) }) }
    }

    static func expected(prefix: [UInt8], _ chunks: [ByteBuffer]) -> String {
        var hasher = SHA256()
        hasher.update(data: prefix)
        for chunk in chunks { hasher.update(data: Array(chunk.readableBytesView)) }
        return Checksum.hex(hasher.finalize())
    }

    /// A started pool and one event loop (for promises); shut both down after use.
    static func threads(pool size: Int) -> (NIOThreadPool, MultiThreadedEventLoopGroup) {
        let pool = NIOThreadPool(numberOfThreads: size)
        pool.start()
        return (pool, MultiThreadedEventLoopGroup(numberOfThreads: 1))
    }

    static func shutDown(_ pool: NIOThreadPool, _ group: MultiThreadedEventLoopGroup) {
        try? pool.syncShutdownGracefully()
        try? group.syncShutdownGracefully()
    }

    @Test func hashesEveryChunkInOrderAfterAPrefix() throws {
        let (pool, loop) = Self.threads(pool: 4)
        defer { Self.shutDown(pool, loop) }
        let prefix = Array("bytes a resumed upload already had".utf8)
        var start = ResumableSHA256()
        start.update(prefix)
        let digest = PipelinedDigest(continuing: start, pool: pool)
        let chunks = Self.chunks(count: 200, size: 10_000)
        for chunk in chunks { _ = digest.add(chunk) }
        let promise = loop.next().makePromise(of: String.self)
        digest.finish(promise)
        #expect(try promise.futureResult.wait() == Self.expected(prefix: prefix, chunks))
    }

    @Test func aFullQueueAsksTheReaderToPauseUntilItDrains() throws {
        // One pool thread, held busy: nothing is hashed until it is released.
        let (pool, loop) = Self.threads(pool: 1)
        defer { Self.shutDown(pool, loop) }
        let gate = Gate.holding(pool)
        let digest = PipelinedDigest(continuing: ResumableSHA256(), pool: pool)
        let chunks = Self.chunks(count: 9, size: 512 << 10)  // 4.5 MiB: past the high-water mark
        let asked = chunks.map { digest.add($0) }
        #expect(asked.prefix(8).allSatisfy { !$0 })  // 4 MiB exactly is not past it
        #expect(asked.last == true)

        let drained = loop.next().makePromise(of: Void.self)
        digest.whenDrained { drained.succeed() }
        gate.open()
        try drained.futureResult.wait()
        let result = loop.next().makePromise(of: String.self)
        digest.finish(result)
        #expect(try result.futureResult.wait() == Self.expected(prefix: [], chunks))
    }

    /// A reader paused until the queue drains must hear of a cancel (the upload
    /// refused meanwhile), or it stays paused: a refused body of unknown length was
    /// never answered, about one time in four, until the client gave up.
    @Test func aCancelWakesAReaderWaitingForTheQueueToDrain() throws {
        let (pool, loop) = Self.threads(pool: 1)
        defer { Self.shutDown(pool, loop) }
        let gate = Gate.holding(pool)
        defer { gate.open() }
        let digest = PipelinedDigest(continuing: ResumableSHA256(), pool: pool)
        #expect(Self.chunks(count: 9, size: 512 << 10).map { digest.add($0) }.last == true)
        let drained = loop.next().makePromise(of: Void.self)
        digest.whenDrained { drained.succeed() }
        // Not woken within 10 s (it never would be): a failure, not a hang.
        loop.next().scheduleTask(in: .seconds(10)) { drained.fail(PipelinedDigest.Cancelled()) }
        digest.cancel()  // while the pool thread is still held: nothing was hashed
        #expect(throws: Never.self) { try drained.futureResult.wait() }
    }

    @Test func aCancelledDigestFailsAWaitingFinish() throws {
        let (pool, loop) = Self.threads(pool: 1)
        defer { Self.shutDown(pool, loop) }
        let gate = Gate.holding(pool)
        let digest = PipelinedDigest(continuing: ResumableSHA256(), pool: pool)
        _ = digest.add(ByteBuffer(string: "queued behind the busy thread"))
        let result = loop.next().makePromise(of: String.self)
        digest.finish(result)
        digest.cancel()
        #expect(throws: PipelinedDigest.Cancelled.self) { try result.futureResult.wait() }
        gate.open()
    }
}

/// Holds a pool thread until the test opens it.
final class Gate: @unchecked Sendable {
    private let condition = Condition()
    private var isOpen = false

    /// A gate whose holder is the pool's next free thread.
    static func holding(_ pool: NIOThreadPool) -> Gate {
        let gate = Gate()
        pool.submit { _ in gate.waitUntilOpen() }
        return gate
    }

    func waitUntilOpen() {
        condition.lock()
        while !isOpen { condition.wait() }
        condition.unlock()
    }

    func open() {
        condition.lock()
        isOpen = true
        condition.broadcast()
        condition.unlock()
    }
}
