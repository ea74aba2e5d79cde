import Crypto
import Foundation

/// The client side of SCRAM-SHA-256 (RFC 5802, RFC 7677), PostgreSQL's password
/// login: the password never crosses the wire, and the server proves it knows
/// the password's verifier too. Pure: the connection carries the three messages.
struct SCRAMClient {
    let password: String
    let nonce: String
    /// `n=,r=<nonce>`: PostgreSQL takes the user from the startup message.
    var clientFirstBare: String { "n=,r=\(nonce)" }
    /// No channel binding (`n,,`): the connection has no TLS to bind to.
    var clientFirst: String { "n,," + clientFirstBare }

    init(password: String, nonce: String? = nil) {
        self.password = password
        var rng = SystemRandomNumberGenerator()
        self.nonce = nonce ?? Data((0..<18).map { _ in UInt8.random(in: 0...255, using: &rng) }).base64EncodedString()
    }

    enum Failure: Error, Equatable { case malformed(String), wrongServer }

    /// The client's final message for the server's first, and the signature the
    /// server's final message must carry.
    func respond(to serverFirst: String) throws(Failure) -> (clientFinal: String, serverSignature: String) {
        try respond(to: serverFirst, clientFirstBare: clientFirstBare)
    }

    func respond(to serverFirst: String, clientFirstBare: String) throws(Failure) -> (clientFinal: String, serverSignature: String) {
        var fields: [Character: String] = [:]
        for part in serverFirst.split(separator: ",") where part.count >= 2 && part.dropFirst().first == "=" {
            fields[part.first ?? " "] = String(part.dropFirst(2))
        }
        guard let combined = fields["r"], combined.hasPrefix(nonce), combined.count > nonce.count,
            let saltText = fields["s"], let salt = Data(base64Encoded: saltText),
            let iterationsText = fields["i"], let iterations = Int(iterationsText), iterations > 0
        else { throw .malformed(serverFirst) }
        let salted = Self.pbkdf2(password: Array(password.utf8), salt: Array(salt), iterations: iterations)
        let clientKey = Self.hmac(salted, "Client Key")
        let storedKey = Array(SHA256.hash(data: clientKey))
        let withoutProof = "c=biws,r=\(combined)"
        let authMessage = clientFirstBare + "," + serverFirst + "," + withoutProof
        let signature = Self.hmac(storedKey, authMessage)
        let proof = zip(clientKey, signature).map { $0 ^ $1 }
        let serverSignature = Self.hmac(Self.hmac(salted, "Server Key"), authMessage)
        return (withoutProof + ",p=" + Data(proof).base64EncodedString(), Data(serverSignature).base64EncodedString())
    }

    /// Checks the server's final message (`v=<signature>`).
    static func verify(serverFinal: String, expected: String) throws(Failure) {
        guard serverFinal.hasPrefix("v="), String(serverFinal.dropFirst(2)) == expected else { throw .wrongServer }
    }

    static func hmac(_ key: [UInt8], _ text: String) -> [UInt8] { hmac(key, Array(text.utf8)) }

    static func hmac(_ key: [UInt8], _ message: [UInt8]) -> [UInt8] {
        Array(HMAC<SHA256>.authenticationCode(for: message, using: SymmetricKey(data: key)))
    }

    /// PBKDF2-HMAC-SHA-256 for one 32-byte block (SCRAM's Hi()).
    static func pbkdf2(password: [UInt8], salt: [UInt8], iterations: Int) -> [UInt8] {
        let key = SymmetricKey(data: password)
        var u = Array(HMAC<SHA256>.authenticationCode(for: salt + [0, 0, 0, 1], using: key))
        var result = u
        for _ in 1..<iterations {
            u = Array(HMAC<SHA256>.authenticationCode(for: u, using: key))
            for i in result.indices { result[i] ^= u[i] }
        }
        return result
    }
}
