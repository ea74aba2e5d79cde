import Crypto
import SpoolProtocol
import SpoolSystem

public struct TokenQuota: Sendable, Equatable {
    public var bytes: Int64?
    public var files: Int?

    public init(bytes: Int64? = nil, files: Int? = nil) {
        self.bytes = bytes
        self.files = files
    }
}

/// A token as stored: its name, whether it is an admin's, its quota. Never its secret.
public struct TokenRecord: Codable, Equatable, Sendable {
    public var name: String
    public var admin: Bool
    public var quotaBytes: Int64?
    public var quotaFiles: Int?
    public var createdAt: String
    public var revokedAt: String?

    public var quota: TokenQuota { TokenQuota(bytes: quotaBytes, files: quotaFiles) }

    enum CodingKeys: String, CodingKey {
        case name, admin
        case quotaBytes = "quota_bytes"
        case quotaFiles = "quota_files"
        case createdAt = "created_at"
        case revokedAt = "revoked_at"
    }
}

extension SQLCatalog {
    /// Creates a token and returns its secret, which is stored nowhere: only its SHA-256 is kept.
    public func createToken(name: String, admin: Bool, quota: TokenQuota) throws(StoreError) -> String {
        var rng = SystemRandomNumberGenerator()
        let secret = "spool_" + Checksum.hex((0..<32).map { _ in UInt8.random(in: 0...255, using: &rng) })
        try locked { db throws(StoreError) in
            try db.run(
                "INSERT INTO tokens (name, hash, admin, quota_bytes, quota_files, created_at) VALUES (?, ?, ?, ?, ?, ?)",
                [.text(name), .text(Self.tokenHash(secret)), .integer(admin ? 1 : 0),
                 quota.bytes.map { .integer($0) } ?? .null, quota.files.map { .integer(Int64($0)) } ?? .null,
                 .text(UTCTime.now())]
            )
        }
        return secret
    }

    public func tokens() throws(StoreError) -> [TokenRecord] {
        try locked { db throws(StoreError) in
            try db.query("SELECT name, admin, quota_bytes, quota_files, created_at, revoked_at FROM tokens ORDER BY name") { row in
                TokenRecord(
                    name: row.text(0), admin: row.int(1) != 0, quotaBytes: row.isNull(2) ? nil : row.int(2),
                    quotaFiles: row.isNull(3) ? nil : Int(row.int(3)), createdAt: row.text(4),
                    revokedAt: row.optionalText(5))
            }
        }
    }

    /// Returns false when no active token has that name.
    public func revokeToken(name: String) throws(StoreError) -> Bool {
        try locked { db throws(StoreError) in
            try db.run("UPDATE tokens SET revoked_at = ? WHERE name = ? AND revoked_at IS NULL", [.text(UTCTime.now()), .text(name)]) > 0
        }
    }

    /// Whether any token is active (then anonymous clients are refused unless allowed explicitly).
    public func hasActiveTokens() throws(StoreError) -> Bool {
        try locked { db throws(StoreError) in
            try db.query("SELECT count(*) FROM tokens WHERE revoked_at IS NULL") { $0.int(0) != 0 }.first ?? false
        }
    }

    /// The active token whose secret this is. Every active token's hash is compared
    /// in full, without stopping at the first difference or the first match, so the
    /// time taken says nothing about how close a guess came.
    public func authenticate(secret: String) throws(StoreError) -> TokenRecord? {
        let presented = Array(Self.tokenHash(secret).utf8)
        let candidates = try locked { db throws(StoreError) in
            try db.query("SELECT name, hash FROM tokens WHERE revoked_at IS NULL") { ($0.text(0), Array($0.text(1).utf8)) }
        }
        var match: String?
        for (name, hash) in candidates where Self.constantTimeEqual(hash, presented) && match == nil {
            match = name
        }
        guard let match else { return nil }
        return try tokens().first { $0.name == match }
    }

    static func tokenHash(_ secret: String) -> String {
        Checksum.hex(SHA256.hash(data: Array(secret.utf8)))
    }

    static func constantTimeEqual(_ a: [UInt8], _ b: [UInt8]) -> Bool {
        guard a.count == b.count else { return false }
        var difference: UInt8 = 0
        for i in a.indices { difference |= a[i] ^ b[i] }
        return difference == 0
    }
}
