import NIOCore
import NIOPosix
import SpoolStore
import SpoolSystem

/// This worker's small uploads whose whole body has arrived, stored in batches
/// by a two-stage pipeline on the pool. The first stage takes every upload
/// waiting, records their rows and writes their files (`Store.prepareWhole`); the
/// second takes every batch the first has prepared meanwhile and makes them
/// durable with one sync and one commit (`Store.finishWhole`). While one batch
/// waits for the disk the next is being written, and the batches that pile up
/// behind a slow sync share the next one. Outcomes are delivered in arrival order.
final class WholeUploads: @unchecked Sendable {
    typealias Waiting = (upload: WholeUpload, promise: EventLoopPromise<WholeOutcome>)

    private let store: Store
    private let pool: NIOThreadPool
    private let lock = Lock()
    private var arrived: [Waiting] = []
    private var prepared: [(batch: PreparedWholeBatch, promises: [EventLoopPromise<WholeOutcome>])] = []
    private var preparing = false
    private var finishing = false

    init(store: Store, pool: NIOThreadPool) {
        self.store = store
        self.pool = pool
    }

    /// Succeeds with the upload's outcome once its batch is stored; fails only if
    /// the pool is shutting down (nothing was done then).
    func store(_ upload: WholeUpload, on eventLoop: any EventLoop) -> EventLoopFuture<WholeOutcome> {
        let promise = eventLoop.makePromise(of: WholeOutcome.self)
        let start = lock.withLock { () -> Bool in
            arrived.append((upload, promise))
            if preparing { return false }
            preparing = true
            return true
        }
        if start { pool.submit { state in self.prepare(active: state == .active) } }
        return promise.futureResult
    }

    private func prepare(active: Bool) {
        while true {
            let batch = lock.withLock { () -> [Waiting] in
                let batch = arrived
                arrived = []
                if batch.isEmpty { preparing = false }
                return batch
            }
            if batch.isEmpty { return }
            guard active else {
                for item in batch { item.promise.fail(ShuttingDown()) }
                continue
            }
            let ready = store.prepareWhole(batch.map(\.upload))
            let start = lock.withLock { () -> Bool in
                prepared.append((ready, batch.map(\.promise)))
                if finishing { return false }
                finishing = true
                return true
            }
            if start { pool.submit { _ in self.finish() } }
        }
    }

    /// Runs even while the pool shuts down: prepared uploads have rows and files to settle.
    private func finish() {
        while true {
            let batches = lock.withLock { () -> [(batch: PreparedWholeBatch, promises: [EventLoopPromise<WholeOutcome>])] in
                let batches = prepared
                prepared = []
                if batches.isEmpty { finishing = false }
                return batches
            }
            if batches.isEmpty { return }
            let outcomes = store.finishWhole(batches.map(\.batch))
            for (batch, results) in zip(batches, outcomes) {
                for (promise, outcome) in zip(batch.promises, results) { promise.succeed(outcome) }
            }
        }
    }

    struct ShuttingDown: Error, CustomStringConvertible {
        var description: String { "the worker is shutting down" }
    }
}
