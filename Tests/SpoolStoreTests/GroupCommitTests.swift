import Foundation
import Synchronization
import SpoolTestSupport
import Testing
@testable import SpoolStore

/// Many threads hand changes to one GroupCommit: every call returns once its
/// change is committed, changes are batched, and errors reach their own callers.
@Suite struct GroupCommitTests {
    @Test func everyChangeIsCommittedOnceAndCallersShareBatches() throws {
        let dir = try TempDirectory()
        let path = dir.path + "/t.db"
        let group = GroupCommit()
        let batches = Mutex<[Int]>([])
        let applied = Mutex(0)
        let threads = 16, rounds = 40
        let failures = Mutex(0)
        DispatchQueue.concurrentPerform(iterations: threads) { t in
            // The leader commits with its own connection, as each worker thread uses the store's.
            guard let db = try? Database(path: path) else { Issue.record("cannot open \(path)"); return }
            for r in 0..<rounds {
                let poisoned = (t * rounds + r) % 7 == 0
                do {
                    try group.run({ _ throws(StoreError) in
                        if poisoned { throw .sqlite(operation: "test", code: 1, message: "poisoned \(t)/\(r)") }
                        applied.withLock { $0 += 1 }
                    }, commit: { batch throws(StoreError) in
                        batches.withLock { $0.append(batch.count) }
                        usleep(200)  // long enough for others to queue behind this batch
                        for entry in batch {
                            do throws(StoreError) { try entry.work(db) } catch { entry.error = error }
                        }
                    })
                    #expect(!poisoned)
                } catch {
                    #expect(poisoned, "\(error)")
                    failures.withLock { $0 += 1 }
                }
            }
        }
        let total = threads * rounds
        let poisonedCount = (0..<total).filter { $0 % 7 == 0 }.count
        #expect(failures.withLock { $0 } == poisonedCount)
        #expect(applied.withLock { $0 } == total - poisonedCount)
        #expect(batches.withLock { $0 }.reduce(0, +) == total)
    }

    /// Changes that arrive while a batch is being committed all go in the next one.
    @Test func changesArrivingDuringABatchShareTheNext() throws {
        let dir = try TempDirectory()
        let path = dir.path + "/t.db"
        let group = GroupCommit()
        let batches = Mutex<[Int]>([])
        let others = 7
        let first = Thread {
            guard let db = try? Database(path: path) else { return }
            try? group.run({ _ throws(StoreError) in }, commit: { batch throws(StoreError) in
                batches.withLock { $0.append(batch.count) }
                // Hold this batch until every other change is queued behind it.
                let deadline = Date().addingTimeInterval(10)
                while group.waitingCount < others && Date() < deadline { usleep(1000) }
                for entry in batch { try entry.work(db) }
            })
        }
        first.start()
        while batches.withLock({ $0.isEmpty }) { usleep(1000) }
        let done = Mutex(0)
        for _ in 0..<others {
            Thread {
                guard let db = try? Database(path: path) else { return }
                try? group.run({ _ throws(StoreError) in }, commit: { batch throws(StoreError) in
                    batches.withLock { $0.append(batch.count) }
                    for entry in batch { try entry.work(db) }
                })
                done.withLock { $0 += 1 }
            }.start()
        }
        let deadline = Date().addingTimeInterval(20)
        while done.withLock({ $0 }) < others && Date() < deadline { usleep(1000) }
        #expect(batches.withLock { $0 } == [1, others])
    }

    @Test func aFailedCommitFailsEveryChangeInItsBatch() throws {
        let dir = try TempDirectory()
        let db = try Database(path: dir.path + "/t.db")
        let group = GroupCommit()
        #expect(throws: StoreError.self) {
            try group.run({ _ throws(StoreError) in }, commit: { _ throws(StoreError) in
                throw .sqlite(operation: "COMMIT", code: 10, message: "disk I/O error")
            })
        }
        // The group is not stuck after a failure: the next change leads its own batch.
        var ran = false
        try group.run({ _ throws(StoreError) in ran = true }, commit: { batch throws(StoreError) in
            for entry in batch { try entry.work(db) }
        })
        #expect(ran)
    }
}
