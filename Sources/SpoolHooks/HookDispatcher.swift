import Logging
import SpoolStore
import SpoolSystem

#if canImport(Glibc)
import Glibc
#endif

/// Delivers the event log to the notification hooks, at least once and in the
/// log's order: reads the events after its cursor, runs the hook of each, and
/// moves the cursor past an event only once its hook has succeeded. A failed
/// delivery is tried again, after a wait that doubles each time, for as long as
/// it takes; later events wait behind it, so each upload's events arrive in
/// order. A crash between a hook's success and the cursor's move delivers that
/// event again: hooks must tolerate a repeat (docs/HOOKS.md).
///
/// One process runs it for the whole server (the master supervises it), and it
/// holds a lock file while it does, so that two masters (a USR2 upgrade) never
/// deliver at once.
public struct HookDispatcher {
    let store: Store
    let hooks: HookConfiguration
    let logger: Logger
    /// True when the dispatcher should end (its master is gone).
    let shouldStop: () -> Bool
    /// Where deliveries and failures are counted for /metrics: the master's board.
    public var board: WorkerBoard?
    var cursor: Int64 = 0

    static let batch = 100
    static let idle = 0.2

    public init(store: Store, hooks: HookConfiguration, logger: Logger, shouldStop: @escaping () -> Bool) {
        self.store = store
        self.hooks = hooks
        self.logger = logger
        self.shouldStop = shouldStop
    }

    /// Takes the lock, then delivers until `shouldStop`.
    public mutating func run(lockPath: String) {
        guard let lock = takeLock(lockPath) else { return }
        defer { close(lock) }
        while !shouldStop() {
            do {
                cursor = try store.startHookCursor()
                logger.info("hook dispatcher started", metadata: ["cursor": "\(cursor)"])
                try deliverAll()
                return
            } catch {
                logger.error("hook dispatcher: cannot read the event log; trying again", metadata: ["error": "\(error)"])
                pause(1)
            }
        }
    }

    private mutating func deliverAll() throws(StoreError) {
        while !shouldStop() {
            let events = try store.events(after: cursor, limit: Self.batch)
            if events.isEmpty {
                // Caught up; an administrator may have moved the cursor back (a replay).
                if let stored = try store.hookCursor(), stored != cursor {
                    logger.info("hook cursor moved by an administrator", metadata: ["cursor": "\(stored)"])
                    cursor = stored
                    continue
                }
                pause(Self.idle)
                continue
            }
            try deliver(events)
        }
    }

    /// One batch, in order. Events no hook hears are passed over; the cursor moves
    /// past them with the next delivery (one commit), or at the end of the batch.
    /// Returns early when the cursor was moved by someone else.
    private mutating func deliver(_ events: [UploadEvent]) throws(StoreError) {
        var skipped: Int64?
        for event in events {
            if shouldStop() { return }
            guard let hook = HookName(eventKind: event.kind), let command = hooks.command(for: hook) else {
                skipped = event.seq
                continue
            }
            guard try deliver(event, hook: hook, command: command) else {
                cursor = try store.hookCursor() ?? cursor
                return
            }
            guard try advance(to: event.seq) else { return }
            skipped = nil
        }
        if let last = skipped { _ = try advance(to: last) }
    }

    /// False when someone else moved the cursor (`admin hooks --replay-from`): read on from there.
    private mutating func advance(to seq: Int64) throws(StoreError) -> Bool {
        if try store.advanceHookCursor(from: cursor, to: seq) {
            cursor = seq
            return true
        }
        if let moved = try store.hookCursor() { cursor = moved } else { cursor = try store.startHookCursor() }
        logger.info("hook cursor moved by an administrator", metadata: ["cursor": "\(cursor)"])
        return false
    }

    /// Runs the event's hook until it succeeds. False when delivery stopped
    /// without success: the dispatcher is stopping, or the cursor was moved.
    private func deliver(_ event: UploadEvent, hook: HookName, command: HookCommand) throws(StoreError) -> Bool {
        var attempt = 1
        while true {
            let delivery = try Delivery.make(event, hook: hook, store: store)
            let started = UTCTime.monotonic()
            let result = HookRunner.run(
                command, input: HookJSON.line(delivery), timeout: hooks.timeout, environment: delivery.environment)
            let metadata: Logger.Metadata = [
                "hook": "\(hook.rawValue)", "event": "\(event.seq)", "id": "\(event.uploadID)", "attempt": "\(attempt)",
            ]
            board?.count(result.succeeded ? .hookDeliveries : .hookFailures)
            if result.succeeded {
                logger.debug("hook delivered", metadata: metadata.merging(["seconds": "\(UTCTime.monotonic() - started)"]) { $1 })
                return true
            }
            let wait = min(hooks.backoff * Double(1 << min(attempt - 1, 20)), HookConfiguration.maxBackoff)
            logger.warning("hook failed; trying again", metadata: metadata.merging([
                "outcome": "\(result.summary)", "retry_in": "\(DurationText.format(wait))",
            ]) { $1 })
            try store.recordHookFailure(HookFailure(
                at: UTCTime.now(), seq: event.seq, hook: hook.rawValue, attempt: attempt, outcome: result.summary))
            let until = UTCTime.monotonic() + wait
            while UTCTime.monotonic() < until {
                if shouldStop() { return false }
                let now = try store.hookCursor()
                if now != cursor { return false }
                pause(min(0.1, until - UTCTime.monotonic()))
            }
            attempt += 1
        }
    }

    private func pause(_ seconds: Double) {
        guard seconds > 0 else { return }
        usleep(UInt32(seconds * 1_000_000))
    }

    /// Waits for the lock as long as another process holds it, unless told to stop.
    private func takeLock(_ path: String) -> Int32? {
        let fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o640)
        guard fd >= 0 else {
            logger.error("hook dispatcher: cannot open its lock file", metadata: ["error": "\(SystemError.last("open", path))"])
            return nil
        }
        var waiting = false
        while flock(fd, LOCK_EX | LOCK_NB) != 0 {
            if shouldStop() {
                close(fd)
                return nil
            }
            if !waiting {
                logger.info("hook dispatcher waiting for another to finish (an upgrade?)", metadata: ["lock": "\(path)"])
                waiting = true
            }
            pause(0.1)
        }
        return fd
    }
}
