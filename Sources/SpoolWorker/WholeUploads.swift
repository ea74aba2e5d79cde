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
    typealias Prepared = (batch: PreparedWholeBatch, promises: [EventLoopPromise<WholeOutcome>])

    private let store: Store
    private let pool: NIOThreadPool
    /// Where the outcomes are counted (GET /metrics), as IncomingUpload counts its own.
    private let board: WorkerBoard
    /// Asked before an upload joins a batch.
    private let gate: PreCreateGate?
    private let lock = Lock()
    private var arrived = Stage<Waiting>()
    private var prepared = Stage<Prepared>()

    init(store: Store, pool: NIOThreadPool, board: WorkerBoard, gate: PreCreateGate? = nil) {
        self.gate = gate
        self.store = store
        self.pool = pool
        self.board = board
    }

    /// Succeeds with the upload's outcome once its batch is stored; fails only if
    /// the pool is shutting down (nothing was done then).
    func store(_ upload: WholeUpload, door: UploadDoor, on eventLoop: any EventLoop) -> EventLoopFuture<WholeOutcome> {
        let (board, size, arrivedAt) = (self.board, upload.new.size, UTCTime.monotonic())
        let outcome = gate.map { gate in
            gate.check(upload.new, lengthDeferred: false, door: door, on: eventLoop).flatMap { refusal in
                refusal.map { eventLoop.makeSucceededFuture(.refused($0)) } ?? self.enqueue(upload, on: eventLoop)
            }
        } ?? enqueue(upload, on: eventLoop)
        return outcome.map { outcome in
            Self.count(outcome, door: door, size: size, seconds: UTCTime.monotonic() - arrivedAt, on: board)
            return outcome
        }
    }

    /// Joins the next batch.
    private func enqueue(_ upload: WholeUpload, on eventLoop: any EventLoop) -> EventLoopFuture<WholeOutcome> {
        let promise = eventLoop.makePromise(of: WholeOutcome.self)
        if lock.withLock({ arrived.add((upload, promise)) }) {
            pool.submit { state in self.prepare(active: state == .active) }
        }
        return promise.futureResult
    }

    static func count(_ outcome: WholeOutcome, door: UploadDoor, size: Int64, seconds: Double, on board: WorkerBoard) {
        switch outcome {
        case .stored:
            board.count(.uploadsStarted, door: door)
            board.count(.uploadsCompleted, door: door)
            board.count(.bytesReceived, door: door, by: UInt64(max(0, size)))
            board.observe(.uploadDuration, seconds)
        case .refused:
            board.count(.uploadsRefused)
        case .checksumMismatch:
            board.count(.uploadsStarted, door: door)
            board.count(.bytesReceived, door: door, by: UInt64(max(0, size)))
            board.count(.uploadsFailedChecksum)
        case .cannotOpen, .failed:
            board.count(.uploadsFailedStorage)
        }
    }

    private func prepare(active: Bool) {
        drain(\.arrived) { batch in
            guard active else {
                for item in batch { item.promise.fail(ShuttingDown()) }
                return
            }
            let ready = store.prepareWhole(batch.map(\.upload))
            if lock.withLock({ prepared.add((ready, batch.map(\.promise))) }) {
                pool.submit { _ in self.finish() }
            }
        }
    }

    /// Runs even while the pool shuts down: prepared uploads have rows and files to settle.
    private func finish() {
        drain(\.prepared) { batches in
            let outcomes = store.finishWhole(batches.map(\.batch))
            for (batch, results) in zip(batches, outcomes) {
                for (promise, outcome) in zip(batch.promises, results) { promise.succeed(outcome) }
            }
        }
    }

    /// Takes everything waiting for `stage`, again and again, until nothing is.
    private func drain<Item>(_ stage: ReferenceWritableKeyPath<WholeUploads, Stage<Item>>, _ work: ([Item]) -> Void) {
        while true {
            let items = lock.withLock { self[keyPath: stage].takeAll() }
            if items.isEmpty { return }
            work(items)
        }
    }

    /// What waits for one stage, and whether a task on the pool is taking it.
    private struct Stage<Item> {
        var waiting: [Item] = []
        var running = false

        /// Queues `item`; true when no task runs the stage, so the caller must start one.
        mutating func add(_ item: Item) -> Bool {
            waiting.append(item)
            if running { return false }
            running = true
            return true
        }

        /// Everything waiting; when that is nothing, the task running the stage ends.
        mutating func takeAll() -> [Item] {
            let all = waiting
            waiting = []
            if all.isEmpty { running = false }
            return all
        }
    }

    struct ShuttingDown: Error, CustomStringConvertible {
        var description: String { "the worker is shutting down" }
    }
}
