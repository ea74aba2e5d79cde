import Crypto
import Foundation
import SpoolProtocol

/// AWS Signature Version 4 (the request signing every S3-compatible store
/// takes), as pure functions: the canonical request, the string to sign, the
/// signing key and the `Authorization` header. No I/O: the S3 object store
/// (issue 20) is to build on it. Checked against AWS's published examples.
public struct SigV4: Sendable {
    public struct Credentials: Sendable {
        public var accessKey: String
        public var secretKey: String

        public init(accessKey: String, secretKey: String) {
            self.accessKey = accessKey
            self.secretKey = secretKey
        }
    }

    public var credentials: Credentials
    public var region: String
    public var service: String

    public init(credentials: Credentials, region: String, service: String = "s3") {
        self.credentials = credentials
        self.region = region
        self.service = service
    }

    /// The SHA-256 of an empty payload, which a request without a body signs.
    public static let emptyPayloadHash = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"

    /// The canonical request and the signed headers' names. `path` is the URI's
    /// path as sent (already encoded, as `encode(_:keepSlash: true)` gives it).
    public static func canonicalRequest(
        method: String, path: String, query: [(String, String)], headers: [(String, String)], payloadHash: String
    ) -> (request: String, signedHeaders: String) {
        let encoded: [(name: String, value: String)] = query.map { (encode($0.0), encode($0.1)) }
        let sorted = encoded.sorted { a, b in a.name != b.name ? a.name < b.name : a.value < b.value }
        let canonicalQuery = sorted.map { "\($0.name)=\($0.value)" }.joined(separator: "&")
        var byName: [String: [String]] = [:]
        for (name, value) in headers {
            // Values trimmed, runs of spaces made one; repeated headers joined with commas.
            let trimmed = value.split(separator: " ", omittingEmptySubsequences: true).joined(separator: " ")
            byName[name.lowercased(), default: []].append(trimmed)
        }
        let names = byName.keys.sorted()
        let canonicalHeaders = names.map { "\($0):\(byName[$0, default: []].joined(separator: ","))\n" }.joined()
        let signed = names.joined(separator: ";")
        return ([method, path.isEmpty ? "/" : path, canonicalQuery, canonicalHeaders, signed, payloadHash].joined(separator: "\n"), signed)
    }

    /// `20130524/us-east-1/s3/aws4_request` for a request at `date` (`yyyyMMdd'T'HHmmss'Z'`).
    public func scope(date: String) -> String { "\(date.prefix(8))/\(region)/\(service)/aws4_request" }

    public func stringToSign(date: String, canonicalRequest: String) -> String {
        ["AWS4-HMAC-SHA256", date, scope(date: date), Checksum.hex(SHA256.hash(data: Data(canonicalRequest.utf8)))].joined(separator: "\n")
    }

    /// HMAC-SHA256 of the string to sign under the key derived for the day, region and service.
    public func signature(date: String, stringToSign: String) -> String {
        var key = SymmetricKey(data: Data(("AWS4" + credentials.secretKey).utf8))
        for part in [String(date.prefix(8)), region, service, "aws4_request"] {
            key = SymmetricKey(data: Data(HMAC<SHA256>.authenticationCode(for: Data(part.utf8), using: key)))
        }
        return Checksum.hex(HMAC<SHA256>.authenticationCode(for: Data(stringToSign.utf8), using: key))
    }

    /// The `Authorization` header for a request whose headers (with `x-amz-date`
    /// and, for S3, `x-amz-content-sha256`) are given.
    public func authorization(
        method: String, path: String, query: [(String, String)] = [], headers: [(String, String)], payloadHash: String, date: String
    ) -> String {
        let (request, signed) = Self.canonicalRequest(method: method, path: path, query: query, headers: headers, payloadHash: payloadHash)
        let signature = signature(date: date, stringToSign: stringToSign(date: date, canonicalRequest: request))
        return "AWS4-HMAC-SHA256 Credential=\(credentials.accessKey)/\(scope(date: date)),SignedHeaders=\(signed),Signature=\(signature)"
    }

    /// URI encoding as SigV4 wants it: every byte but RFC 3986's unreserved ones
    /// as `%XY` (upper case); `/` kept when encoding a path.
    public static func encode(_ text: String, keepSlash: Bool = false) -> String {
        PercentCoding.encode(text) { PercentCoding.isURIUnreserved($0) || (keepSlash && $0 == UInt8(ascii: "/")) }
    }
}
