import Crypto
import NIOCore
import NIOPosix
import SpoolProtocol
import SpoolStore
import SpoolSystem

/// The SHA-256 of a large upload's body, computed on the thread pool while the
/// event loop goes on receiving and writing. Hashing inline cost the event-loop
/// thread about a third of its time per byte (docs/BENCHMARKS.md); here it runs
/// on the other core.
///
/// Chunks are hashed in the order they were added: at most one drain task per
/// body is on the pool at a time, and only that task touches the hasher. The
/// queue is bounded: `add` says when the reader should pause, and the callback
/// given to `whenDrained` says when it may read again, so a hash that falls
/// behind slows the connection instead of growing memory.
final class PipelinedDigest: @unchecked Sendable {
    /// Bytes queued before the reader is asked to pause; it is resumed at half.
    static let highWater = 4 << 20

    private let pool: NIOThreadPool
    private let lock = Lock()
    private var hasher: ResumableSHA256
    private var pending = CircularBuffer<ByteBuffer>()
    private var pendingBytes = 0
    private var draining = false
    private var cancelled = false
    /// Waits for the queue to empty, then gets the hasher (`finish`, `state`).
    private var result: (hashed: @Sendable (ResumableSHA256) -> Void, cancelled: @Sendable () -> Void)?
    private var onDrained: (@Sendable () -> Void)?

    init(continuing hasher: ResumableSHA256, pool: NIOThreadPool) {
        self.hasher = hasher
        self.pool = pool
    }

    /// Queues a chunk. True when the queue is past the high-water mark: the caller
    /// should stop reading and register `whenDrained`.
    func add(_ chunk: ByteBuffer) -> Bool {
        let (start, full) = lock.withLock { () -> (Bool, Bool) in
            pending.append(chunk)
            pendingBytes += chunk.readableBytes
            let start = !draining
            draining = true
            return (start, pendingBytes > Self.highWater)
        }
        if start { pool.submit { _ in self.drain() } }
        return full
    }

    /// Calls `callback` once the queue is back under half the high-water mark
    /// (at once if it already is), on a pool thread.
    func whenDrained(_ callback: @escaping @Sendable () -> Void) {
        let now = lock.withLock { () -> Bool in
            if pendingBytes <= Self.highWater / 2 { return true }
            onDrained = callback
            return false
        }
        if now { callback() }
    }

    /// Completes `promise` with the digest (lowercase hex) once every queued chunk is hashed.
    func finish(_ promise: EventLoopPromise<String>) {
        whenHashed({ hasher in promise.succeed(Checksum.hex(hasher.finalize())) }, cancelled: { promise.fail(Cancelled()) })
    }

    /// Completes `promise` with the hash state of every byte queued, not finalized:
    /// a tus PATCH that ends before the upload does hands it to the next one.
    func state(offset: Int64, _ promise: EventLoopPromise<PrefixHash>) {
        whenHashed({ hasher in promise.succeed(PrefixHash(hasher: hasher, offset: offset)) }, cancelled: { promise.fail(Cancelled()) })
    }

    private func whenHashed(_ body: @escaping @Sendable (ResumableSHA256) -> Void, cancelled: @escaping @Sendable () -> Void) {
        let now = lock.withLock { () -> ResumableSHA256? in
            if draining {
                result = (body, cancelled)
                return nil
            }
            return hasher
        }
        if let now { body(now) }
    }

    /// The body will not be finished (a failed write, a lost connection): drop what is queued.
    func cancel() {
        let (waiting, drained) = lock.withLock { () -> ((@Sendable () -> Void)?, (@Sendable () -> Void)?) in
            cancelled = true
            pending.removeAll()
            pendingBytes = 0
            defer { result = nil; onDrained = nil }
            return (result?.cancelled, onDrained)
        }
        waiting?()
        // Nothing is queued any more: whoever waits to read on (a handler paused
        // for the hash) is told so, and finds out why (a refusal) when it looks.
        // Dropped instead, a body refused while its reading was paused for the
        // hash was never answered: the client waited for its timeout.
        drained?()
    }

    struct Cancelled: Error, CustomStringConvertible {
        var description: String { "the upload's checksum was abandoned" }
    }

    private func drain() {
        while true {
            let next = lock.withLock { () -> ByteBuffer? in
                if cancelled || pending.isEmpty {
                    draining = false
                    return nil
                }
                return pending.removeFirst()
            }
            guard let chunk = next else { break }
            chunk.withUnsafeReadableBytes { hasher.update(bufferPointer: $0) }
            let callback = lock.withLock { () -> (@Sendable () -> Void)? in
                pendingBytes -= chunk.readableBytes
                guard pendingBytes <= Self.highWater / 2, let callback = onDrained else { return nil }
                onDrained = nil
                return callback
            }
            callback?()
        }
        // The queue is empty: a finish that was waiting for it gets its digest now.
        let done = lock.withLock { () -> ((@Sendable (ResumableSHA256) -> Void), ResumableSHA256)? in
            guard let waiting = result, !draining, !cancelled else { return nil }
            result = nil
            return (waiting.hashed, hasher)
        }
        if let (body, hasher) = done { body(hasher) }
    }
}
