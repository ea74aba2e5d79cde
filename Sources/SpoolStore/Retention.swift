import SpoolSystem

/// How long finished uploads are kept, by state: `complete=90d,failed=7d,expired=7d`.
/// A state not named is kept forever, as is one set to `forever`. Uploads still
/// arriving (`receiving`) and `interrupted` ones (which `--partial-ttl` expires)
/// are not the policy's to remove.
public struct RetentionPolicy: Sendable, Equatable, CustomStringConvertible {
    /// Seconds since an upload's last change after which it goes, by state.
    public private(set) var ages: [UploadState: Double] = [:]
    private var texts: [UploadState: String] = [:]

    public static let states: [UploadState] = [.complete, .failed, .expired, .lost]

    /// Keeps everything.
    public init() {}

    public init?(_ text: String) {
        for part in text.split(separator: ",") {
            let pair = part.split(separator: "=", maxSplits: 1).map { $0.trimmingWhitespace() }
            guard pair.count == 2, let state = UploadState(rawValue: pair[0]), Self.states.contains(state), ages[state] == nil
            else { return nil }
            if pair[1] == "forever" { continue }
            guard let seconds = DurationText.seconds(pair[1]), seconds > 0 else { return nil }
            ages[state] = seconds
            texts[state] = pair[1]
        }
    }

    public var description: String {
        Self.states.map { state in "\(state.rawValue)=" + (texts[state] ?? "forever") }
            .joined(separator: ",")
    }
}

/// The uploads a policy says are too old, by state: what its next turns remove.
public struct RetentionForecast: Codable, Equatable, Sendable {
    public struct Due: Codable, Equatable, Sendable {
        public var state: UploadState
        public var uploads: Int
        /// Their declared sizes: what goes from disk, less what other uploads share.
        public var bytes: Int64
    }

    public var policy: String
    public var due: [Due]
}

extension RetentionPolicy {
    /// Uploads of `state` the policy says are too old at `nowMilliseconds`, oldest first; nil: kept forever.
    func overdue(_ state: UploadState, nowMilliseconds: Int64) -> UploadFilter? {
        guard let age = ages[state] else { return nil }
        let cutoff = nowMilliseconds - Int64(age * 1000)
        var filter = UploadFilter()
        filter.states = [state]
        filter.updatedBefore = UTCTime.format(seconds: Int(cutoff / 1000), milliseconds: Int(cutoff % 1000))
        filter.sort = .oldest
        return filter
    }
}

extension Store {
    /// Removes up to `batch` uploads the policy says are too old, oldest first, each
    /// as `admin delete` does (its row, then its object unless another upload names
    /// it, atomically with the check). Small batches: the server runs this itself,
    /// between other work. Returns what went.
    public func applyRetention(_ policy: RetentionPolicy, nowMilliseconds: Int64, batch: Int = 200) throws(StoreError) -> [UploadRecord] {
        var removed: [UploadRecord] = []
        for state in RetentionPolicy.states {
            guard var filter = policy.overdue(state, nowMilliseconds: nowMilliseconds), removed.count < batch else { continue }
            filter.limit = batch - removed.count
            for row in try uploads(matching: filter) {
                if case .deleted = try delete(id: row.id) { removed.append(row) }
            }
        }
        return removed
    }

    /// What `applyRetention` would remove now, in all its turns, removing nothing.
    public func retentionForecast(_ policy: RetentionPolicy, nowMilliseconds: Int64) throws(StoreError) -> RetentionForecast {
        var due: [RetentionForecast.Due] = []
        for state in RetentionPolicy.states {
            guard let filter = policy.overdue(state, nowMilliseconds: nowMilliseconds) else { continue }
            let rows = try uploads(matching: filter)
            due.append(.init(state: state, uploads: rows.count, bytes: rows.reduce(0) { $0 + $1.size }))
        }
        return RetentionForecast(policy: policy.description, due: due)
    }
}
