import SpoolSystem

/// Work from several threads of one process, done together: one batch for
/// everything that arrived while the previous batch was being done (the classic
/// group commit). A thread that finds no batch in progress leads: it takes every
/// waiting entry, hands the batch to `commit`, and wakes the others. Throughput
/// then grows with the number of concurrent uploads instead of being one fsync
/// per upload.
///
/// The store uses it for transactions (one transaction, and for durable ones one
/// sync of the log, per batch; each change in its own savepoint, so one failure
/// fails only its own change) and for making files durable (`DurableFiles`).
final class GroupCommit<Work>: @unchecked Sendable {
    final class Entry {
        let work: Work
        var error: StoreError?
        var done = false
        /// This entry's thread is to lead the next batch.
        var leads = false
        /// Wakes this entry's thread alone: a batch ends by waking its own members
        /// and the next leader, not every thread waiting (with 16 threads, a
        /// broadcast woke a dozen only for them to queue for the mutex and sleep again).
        let turn: Condition.Signal

        init(_ work: Work, turn: Condition.Signal) {
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

    /// Does `work` in a batch shared with whatever else is waiting, and returns
    /// once its batch is done. `commit` does one batch (the store wraps a batch of
    /// changes in its lock and a transaction); an error it throws fails the whole
    /// batch, and an entry's own `error` fails that entry alone.
    func run(
        _ work: Work,
        commit: ([Entry]) throws(StoreError) -> Void
    ) throws(StoreError) {
        if let error = runAll([work], commit: commit).first ?? nil { throw error }
    }

    /// Does every one of `works` in the same batch (they are queued together), and
    /// returns each one's error, nil for those done, in order.
    func runAll(_ works: [Work], commit: ([Entry]) throws(StoreError) -> Void) -> [StoreError?] {
        let turn = condition.makeSignal()  // the caller waits on its first entry; all share its signal
        let entries = works.map { Entry($0, turn: turn) }
        guard let entry = entries.first else { return [] }
        condition.lock()
        waiting.append(contentsOf: entries)
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
                if item.turn !== turn { item.turn.signal() }
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
        return entries.map(\.error)
    }
}
