import SpoolProtocol
import SpoolSystem

/// A new upload whose whole body is in memory (protocol 2's small uploads), to be
/// stored together with others that arrived at the same time.
public struct WholeUpload: Sendable {
    public let new: NewUpload
    public let id: String
    public let limits: AdmissionLimits
    public let quota: TokenQuota?
    /// Writes the whole body to its staging and returns its SHA-256 in hex.
    public let write: @Sendable (StagingWriter) throws(SystemError) -> String

    public init(
        new: NewUpload, id: String, limits: AdmissionLimits, quota: TokenQuota?,
        write: @escaping @Sendable (StagingWriter) throws(SystemError) -> String
    ) {
        self.new = new
        self.id = id
        self.limits = limits
        self.quota = quota
        self.write = write
    }
}

/// What became of one upload of a batch.
public enum WholeOutcome: Sendable, Equatable {
    /// Durable: named, synced and recorded complete.
    case stored
    /// Admission said no; no row was kept.
    case refused(Refusal)
    /// Its row or file could not be made; nothing was kept.
    case cannotOpen(StoreError)
    /// The bytes did not hash to the declared SHA-256; recorded failed, nothing published.
    case checksumMismatch(actual: String)
    /// Writing, naming or syncing failed; recorded failed (when the database allowed).
    case failed(StoreError)
}

/// A batch whose rows are recorded and bodies written and checked, to be named,
/// made durable and recorded complete by `Store.finishWhole`.
public struct PreparedWholeBatch: Sendable {
    /// Known so far: refusals, files that could not be opened or written, mismatches.
    var outcomes: [WholeOutcome?]
    /// Every file opened, to close.
    var files: [(index: Int, upload: OpenUpload)] = []
    /// The files whose bytes matched: those with no outcome yet.
    var ready: [(index: Int, upload: OpenUpload)] { files.filter { outcomes[$0.index] == nil } }
    /// Final states known already (failures), recorded with the others.
    var finals: [(id: String, state: UploadState, received: Int64, error: String?)] = []
}

extension Store {
    /// Stores a batch of small uploads with the steps and order of `begin` and
    /// `complete`, each step done once for the whole batch (`prepareWhole`, then
    /// `finishWhole`). One outcome per upload, in order.
    public func storeWhole(_ batch: [WholeUpload]) -> [WholeOutcome] {
        finishWhole([prepareWhole(batch)])[0]
    }

    /// The first half of storing a batch: one transaction admits and records
    /// them all as `receiving`; each body is written to a file with no name in
    /// its object's directory (when the blob store allows) and checked against its declared checksum.
    public func prepareWhole(_ batch: [WholeUpload]) -> PreparedWholeBatch {
        var prepared = PreparedWholeBatch(outcomes: Array(repeating: nil, count: batch.count))
        for index in admit(batch, into: &prepared.outcomes) {
            let item = batch[index]
            let upload: OpenUpload
            do {
                upload = try blobs.createStaging(id: item.id, size: item.new.size, sha256: item.new.sha256, unnamed: true)
            } catch {
                prepared.outcomes[index] = .cannotOpen(.system(error))
                prepared.finals.append((item.id, .failed, 0, error.description))
                continue
            }
            prepared.files.append((index, upload))
            do {
                let digest = try item.write(StagingWriter(blobs: blobs, upload: upload))
                if digest != item.new.sha256 {
                    prepared.outcomes[index] = .checksumMismatch(actual: digest)
                    prepared.finals.append((item.id, .failed, item.new.size,
                                            Self.mismatchReason(declared: item.new.sha256, received: digest)))
                }
            } catch {
                prepared.outcomes[index] = .failed(.system(error))
                prepared.finals.append((item.id, .failed, 0, error.description))
            }
        }
        return prepared
    }

    /// The second half, for one or more prepared batches at once: the good files
    /// are named and made durable together (`DurableFiles`: one sync), then one
    /// durable transaction records every final state. So nothing is reported
    /// complete before its bytes, its name and its row are on disk.
    public func finishWhole(_ batches: [PreparedWholeBatch]) -> [[WholeOutcome]] {
        var batches = batches
        let ready = batches.enumerated().flatMap { b, batch in batch.ready.map { (batch: b, index: $0.index, upload: $0.upload) } }
        let published: [StoreError?]
        do {
            published = try blobs.publish(ready.map { ($0.upload, $0.upload.sha256) })
        } catch {
            published = Array(repeating: error, count: ready.count)
        }
        var finals = batches.flatMap(\.finals)
        for (item, error) in zip(ready, published) {
            if let error {
                batches[item.batch].outcomes[item.index] = .failed(error)
                finals.append((item.upload.id, .failed, item.upload.size, error.description))
            } else {
                finals.append((item.upload.id, .complete, item.upload.size, nil))
            }
        }
        for batch in batches {
            for (index, upload) in batch.files {
                if batch.outcomes[index] != nil { letGoDiscarding(upload) } else { letGo(upload) }  // not published / published
            }
        }
        do {
            try catalog.markAll(finals)
        } catch {
            // Their objects are named, but their rows could not say so: nothing was
            // acknowledged, so they fail (if the database lets them) rather than stay `receiving`.
            var failed: [(id: String, received: Int64)] = []
            for item in ready where batches[item.batch].outcomes[item.index] == nil {
                batches[item.batch].outcomes[item.index] = .failed(error)
                failed.append((item.upload.id, item.upload.size))
            }
            let reason = "could not record it complete: \(error)"
            try? catalog.markAll(failed.map { ($0.id, .failed, $0.received, reason) })
        }
        CrashPoint.reach("batch-after-commit")
        // Objects named for uploads that then failed: those nothing names go.
        for item in ready where batches[item.batch].outcomes[item.index] != nil {
            _ = try? removeObjectIfUnreferenced(sha256: item.upload.sha256, event: item.upload.id)
        }
        return batches.map { $0.outcomes.map { $0 ?? .stored } }
    }

    /// Admits and records the batch in one transaction, each upload in its own
    /// savepoint so that a refusal undoes only its own row. Returns the indices admitted.
    private func admit(_ batch: [WholeUpload], into outcomes: inout [WholeOutcome?]) -> [Int] {
        let errors = catalog.insertReceiving(batch: batch.map { ($0.new, $0.id, $0.limits, $0.quota) }, free: freeBytesNow)
        var admitted: [Int] = []
        for (index, error) in errors.enumerated() {
            switch error {
            case nil: admitted.append(index)
            case .refused(let refusal): outcomes[index] = .refused(refusal)
            case let error?: outcomes[index] = .cannotOpen(error)
            }
        }
        return admitted
    }
}
