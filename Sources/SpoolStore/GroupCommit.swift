import SpoolSystem

/// Durable commits from several threads of one process, made together: one
/// transaction and one fsync of the log for everything that arrived while the
/// previous commit was on its way to disk (the classic group commit). A thread
/// that finds no commit in progress leads: it takes every waiting change, runs
/// each in its own savepoint (so one failure fails only its own change), commits,
/// and wakes the others. Throughput then grows with the number of concurrent
/// uploads instead of being one fsync per upload.
final class GroupCommit: @unchecked Sendable {
    final class Entry {
        let work: (Database) throws(StoreError) -> Void
        var error: StoreError?
        var done = false

        init(_ work: @escaping (Database) throws(StoreError) -> Void) {
            self.work = work
        }
    }

    private let condition = Condition()
    private var waiting: [Entry] = []
    private var leading = false

    /// Runs `work` in a durable transaction shared with whatever else is waiting.
    /// `commit` runs one batch: the store wraps it in its lock and a transaction.
    func run(
        _ work: @escaping (Database) throws(StoreError) -> Void,
        commit: ([Entry]) throws(StoreError) -> Void
    ) throws(StoreError) {
        let entry = Entry(work)
        condition.lock()
        waiting.append(entry)
        while !entry.done {
            if leading {
                condition.wait()
                continue
            }
            leading = true
            let batch = waiting
            waiting = []
            condition.unlock()
            var failure: StoreError?
            do { try commit(batch) } catch { failure = error }
            condition.lock()
            for item in batch {
                if let failure { item.error = failure }
                item.done = true
            }
            leading = false
            condition.broadcast()
        }
        condition.unlock()
        if let error = entry.error { throw error }
    }
}
