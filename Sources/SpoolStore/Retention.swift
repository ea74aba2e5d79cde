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

extension Store {
    /// Removes up to `batch` uploads the policy says are too old, oldest first, each
    /// as `admin delete` does (its row, then its object unless another upload names
    /// it, atomically with the check). Small batches: the server runs this itself,
    /// between other work. Returns what went.
    public func applyRetention(_ policy: RetentionPolicy, nowMilliseconds: Int64, batch: Int = 200) throws(StoreError) -> [UploadRecord] {
        var removed: [UploadRecord] = []
        for state in RetentionPolicy.states {
            guard let age = policy.ages[state], removed.count < batch else { continue }
            let cutoff = nowMilliseconds - Int64(age * 1000)
            var filter = UploadFilter()
            filter.states = [state]
            filter.updatedBefore = UTCTime.format(seconds: Int(cutoff / 1000), milliseconds: Int(cutoff % 1000))
            filter.sort = .oldest
            filter.limit = batch - removed.count
            for row in try uploads(matching: filter) {
                if case .deleted = try delete(id: row.id) { removed.append(row) }
            }
        }
        return removed
    }
}
