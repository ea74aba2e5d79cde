import SpoolStore
import SpoolSystem

/// The hash state each tus PATCH of this worker ended with, by upload id, so the
/// next PATCH of that upload (here) hashes only its own bytes: a 1 GiB upload in
/// 1,000 PATCHes is hashed once, not 500 times over. A PATCH that lands on another
/// worker reads back only the bytes since that worker's last state of it (all of
/// them, the first time). Bounded: the oldest entries go first.
final class PrefixCache: @unchecked Sendable {
    static let capacity = 1024

    private let lock = Lock()
    private var entries: [String: PrefixHash] = [:]
    private var order: [String] = []

    func get(_ id: String) -> PrefixHash? {
        lock.withLock { entries[id] }
    }

    func put(_ id: String, _ prefix: PrefixHash) {
        lock.withLock {
            if entries.updateValue(prefix, forKey: id) == nil { order.append(id) }
            if order.count > Self.capacity {
                let evicted = order.count - Self.capacity / 2
                for id in order.prefix(evicted) { entries[id] = nil }
                order.removeFirst(evicted)
            }
        }
    }
}
