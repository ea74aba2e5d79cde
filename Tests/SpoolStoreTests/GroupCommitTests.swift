import Foundation
import Synchronization
import SpoolTestSupport
import Testing
@testable import SpoolStore

/// Many threads hand changes to one GroupCommit: every call returns once its
/// change is committed, changes are batched, and errors reach their own callers.
@Suite struct GroupCommitTests {
    @Test func everyChangeIsCommittedOnceAndCallersShareBatches() throws {
        // Each change is a number; every seventh is poisoned and fails alone.
        let group = GroupCommit<Int>()
        let batches = Mutex<[Int]>([])
        let applied = Mutex(0)
        let threads = 16, rounds = 40
        let failures = Mutex(0)
        DispatchQueue.concurrentPerform(iterations: threads) { t in
            for r in 0..<rounds {
                let change = t * rounds + r
                let poisoned = change % 7 == 0
                do {
                    try group.run(change, commit: { batch throws(StoreError) in
                        batches.withLock { $0.append(batch.count) }
                        usleep(200)  // long enough for others to queue behind this batch
                        for entry in batch {
                            if entry.work % 7 == 0 {
                                entry.error = .sqlite(operation: "test", code: 1, message: "poisoned \(entry.work)")
                            } else {
                                applied.withLock { $0 += 1 }
                            }
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
        let group = GroupCommit<Int>()
        let batches = Mutex<[Int]>([])
        let others = 7
        let first = Thread {
            try? group.run(0, commit: { batch throws(StoreError) in
                batches.withLock { $0.append(batch.count) }
                // Hold this batch until every other change is queued behind it.
                let deadline = Date().addingTimeInterval(10)
                while group.waitingCount < others && Date() < deadline { usleep(1000) }
            })
        }
        first.start()
        while batches.withLock({ $0.isEmpty }) { usleep(1000) }
        let done = Mutex(0)
        for _ in 0..<others {
            Thread {
                try? group.run(1, commit: { batch throws(StoreError) in
                    batches.withLock { $0.append(batch.count) }
                })
                done.withLock { $0 += 1 }
            }.start()
        }
        let deadline = Date().addingTimeInterval(20)
        while done.withLock({ $0 }) < others && Date() < deadline { usleep(1000) }
        #expect(batches.withLock { $0 } == [1, others])
    }

    @Test func aFailedCommitFailsEveryChangeInItsBatch() throws {
        let group = GroupCommit<Int>()
        #expect(throws: StoreError.self) {
            try group.run(1, commit: { _ throws(StoreError) in
                throw .sqlite(operation: "COMMIT", code: 10, message: "disk I/O error")
            })
        }
        // The group is not stuck after a failure: the next change leads its own batch.
        var ran: [Int] = []
        try group.run(2, commit: { batch throws(StoreError) in ran = batch.map(\.work) })
        #expect(ran == [2])
    }
}
