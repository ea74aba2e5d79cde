import SpoolProtocol
import SpoolStore
import SpoolSystem

/// Every limit a worker enforces, with its default (docs/LIMITS.md lists them).
public struct ServerLimits: Sendable {
    public var admission = AdmissionLimits()
    public var timeouts = Session.Timeouts(idle: 300, line: 30, stall: 120)
    /// A worker at this many connections stops accepting; the others take new ones.
    public var maxConnectionsPerWorker = 1000
    /// Connections from one client address, across all workers.
    public var maxConnectionsPerClient = 100
    /// Serve clients that have not authenticated even though tokens exist, or on a non-loopback address.
    public var allowAnonymous = false
    /// Whether the server listens on a loopback address only.
    public var loopback = true
    /// How long a failed AUTH waits before its answer: guessing tokens becomes useless.
    public var failedAuthenticationDelay = 1.0
    /// Which other origins' pages may call the HTTP door (off by default).
    public var cors = CORSPolicy()
    /// How long an interrupted upload is kept for a resume (--partial-ttl): tus's `Upload-Expires`.
    public var partialTTL: Double = 86_400

    public init() {}
}

/// Whether clients may touch uploads without authenticating: only when allowed
/// explicitly, or when no token exists and the server listens on loopback. Whether
/// tokens exist is read again every two seconds, so `admin token create` takes
/// effect on a running server.
final class AccessPolicy: @unchecked Sendable {
    private let lock = Lock()
    private var tokensExist: Bool
    private let limits: ServerLimits

    init(limits: ServerLimits, tokensExist: Bool) {
        self.limits = limits
        self.tokensExist = tokensExist
    }

    var anonymousAllowed: Bool {
        let exist = lock.withLock { tokensExist }
        return limits.allowAnonymous || (limits.loopback && !exist)
    }

    func refresh(from store: Store) {
        guard let exist = try? store.hasActiveTokens() else { return }
        lock.withLock { tokensExist = exist }
    }
}
