import SpoolSystem

/// What the store's durability steps take, for a worker's GET /metrics. A worker
/// installs an observer at start; elsewhere (the master, admin commands) there is
/// none and nothing is measured.
public final class StoreTimings: @unchecked Sendable {
    public enum Step: Sendable {
        /// A batch of durable changes: its transaction and COMMIT. `batch`: how many.
        case commit
        /// The write-ahead log's sync after it.
        case logSync
        /// Uploaded files made durable (fsync for one, syncfs for several). `batch`: how many.
        case fileSync
    }

    public typealias Observer = @Sendable (_ step: Step, _ seconds: Double, _ batch: Int) -> Void

    public static let shared = StoreTimings()
    private let lock = Lock()
    private var observer: Observer?

    public func observe(_ observer: Observer?) {
        lock.withLock { self.observer = observer }
    }

    /// Runs `work` and reports how long it took, when anyone listens.
    func time<T, E: Error>(_ step: Step, batch: Int, _ work: () throws(E) -> T) throws(E) -> T {
        guard let observer = lock.withLock({ observer }) else { return try work() }
        let start = UTCTime.monotonic()
        let result = try work()
        observer(step, UTCTime.monotonic() - start, batch)
        return result
    }
}
