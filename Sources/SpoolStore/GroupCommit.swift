import SpoolSystem

/// Commits from several threads of one process, made together: one transaction
/// (and, for durable ones, one fsync of the log) for everything that arrived while
/// the previous batch was being committed (the classic group commit). A thread
/// that finds no batch in progress leads: it takes every waiting change, runs
/// each in its own savepoint (so one failure fails only its own change), commits,
/// and wakes the others. Throughput then grows with the number of concurrent
/// uploads instead of being one fsync per upload.
final class GroupCommit: @unchecked Sendable {
    final class Entry {
        let work: (Database) throws(StoreError) -> Void
        var error: StoreError?
        var done = false
        /// This entry's thread is to lead the next batch.
        var leads = false
        /// Wakes this entry's thread alone: a batch ends by waking its own members
        /// and the next leader, not every thread waiting (with 16 threads, a
        /// broadcast woke a dozen only for them to queue for the mutex and sleep again).
        let turn: Condition.Signal

        init(_ work: @escaping (Database) throws(StoreError) -> Void, turn: Condition.Signal) {
            self.work = work
            self.turn = turn
        }
    }

    private let condition = Condition()
    private var waiting: [Entry] = []
    private var leading = false

    /// Changes queued for the next batch (for tests).
    var waitingCount: Int {
        condition.lock()
        defer { condition.unlock() }
        return waiting.count
    }

    /// Runs `work` in a transaction shared with whatever else is waiting.
    /// `commit` runs one batch: the store wraps it in its lock and a transaction (and syncs the log).
    func run(
        _ work: @escaping (Database) throws(StoreError) -> Void,
        commit: ([Entry]) throws(StoreError) -> Void
    ) throws(StoreError) {
        let entry = Entry(work, turn: condition.makeSignal())
        condition.lock()
        waiting.append(entry)
        if !leading {
            leading = true
            entry.leads = true
        }
        while !entry.done && !entry.leads { entry.turn.wait() }
        if !entry.done {
            let batch = waiting
            waiting = []
            condition.unlock()
            var failure: StoreError?
            do { try commit(batch) } catch { failure = error }
            condition.lock()
            for item in batch {
                if let failure { item.error = failure }
                item.done = true
                if item !== entry { item.turn.signal() }
            }
            // Whoever arrived during this batch leads the next one.
            if let next = waiting.first {
                next.leads = true
                next.turn.signal()
            } else {
                leading = false
            }
        }
        condition.unlock()
        if let error = entry.error { throw error }
    }
}
