/// tus 1.0 (tus.io/protocols/resumable-upload): reading its request headers
/// and writing its response headers. Pure: the HTTP handler asks these rules,
/// then drives the one upload pipeline; docs/HTTP.md lists what they decide.
public enum Tus {
    public static let version = "1.0.0"
    public static let extensions = "creation,creation-with-upload,creation-defer-length,expiration,checksum,termination"
    public static let checksumAlgorithms = "sha1,sha256,md5"
    /// The only body a PATCH (or a POST with data) may carry.
    public static let contentType = "application/offset+octet-stream"

    /// Why a request is refused: its status and the message sent as its body.
    public struct Refusal: Error, Equatable, Sendable {
        public let status: Int
        public let message: String

        public init(_ status: Int, _ message: String) {
            self.status = status
            self.message = message
        }
    }

    /// `Tus-Resumable` must name the version spoken (`412` otherwise, with `Tus-Version`).
    public static func checkVersion(_ values: [String]) -> Refusal? {
        guard let value = values.first else { return Refusal(412, "send Tus-Resumable: \(version)") }
        return value.trimming(" ") == version ? nil : Refusal(412, "Tus-Resumable \(value) is not supported; this server speaks \(version)")
    }

    /// The length a creation declares.
    public enum Length: Equatable, Sendable {
        case known(Int64)
        /// `Upload-Defer-Length: 1`: told by a later PATCH.
        case deferred
    }

    /// `Upload-Length` (a non-negative integer) or `Upload-Defer-Length: 1`, exactly one.
    public static func creationLength(uploadLength: [String], deferLength: [String]) -> Result<Length, Refusal> {
        switch (uploadLength.isEmpty, deferLength.isEmpty) {
        case (true, true):
            return .failure(Refusal(400, "send Upload-Length, or Upload-Defer-Length: 1"))
        case (false, false):
            return .failure(Refusal(400, "send Upload-Length or Upload-Defer-Length, not both"))
        case (true, false):
            guard deferLength.count == 1, deferLength[0].trimming(" ") == "1" else {
                return .failure(Refusal(400, "Upload-Defer-Length must be 1"))
            }
            return .success(.deferred)
        case (false, true):
            return number(uploadLength, "Upload-Length").map { .known($0) }
        }
    }

    /// `Upload-Offset`, or `Upload-Length` on a PATCH of a deferred upload: one non-negative integer.
    public static func number(_ values: [String], _ header: String) -> Result<Int64, Refusal> {
        guard values.count == 1, let text = Optional(values[0].trimming(" ")), !text.isEmpty, text.utf8.count <= 19,
            text.utf8.allSatisfy({ $0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9") }), let value = Int64(text)
        else { return .failure(Refusal(400, "\(header) must be one non-negative integer")) }
        return .success(value)
    }

    /// A body is only taken as `application/offset+octet-stream`.
    public static func checkContentType(_ values: [String]) -> Refusal? {
        let type = values.first.map { $0.split(separator: ";").first.map { String($0).trimming(" ").lowercased() } ?? "" }
        return type == contentType ? nil : Refusal(415, "send the bytes as Content-Type: \(contentType)")
    }

    /// `Upload-Metadata`: comma-separated `key base64value` pairs (the value may be
    /// absent), keys unique, non-empty, without spaces or commas.
    public struct Metadata: Equatable, Sendable {
        public var pairs: [(key: String, value: [UInt8]?)]
        /// The header as it came, returned on `HEAD`.
        public var raw: String

        public static func == (a: Metadata, b: Metadata) -> Bool {
            a.raw == b.raw && a.pairs.map(\.key) == b.pairs.map(\.key) && a.pairs.map(\.value) == b.pairs.map(\.value)
        }

        public subscript(key: String) -> [UInt8]?? {
            pairs.first { $0.key == key }.map(\.value)
        }

        /// The upload's name: `filename` (tus-js-client, Uppy), else `name`, as UTF-8.
        public var name: String? {
            for key in ["filename", "name"] {
                if case let bytes?? = self[key], let text = String(validating: bytes, as: UTF8.self) { return text }
            }
            return nil
        }
    }

    public static let maxMetadataBytes = 4096

    public static func metadata(_ values: [String]) -> Result<Metadata, Refusal> {
        let raw = values.joined(separator: ",")
        guard raw.utf8.count <= maxMetadataBytes else { return .failure(Refusal(400, "Upload-Metadata is over \(maxMetadataBytes) bytes")) }
        var pairs: [(key: String, value: [UInt8]?)] = []
        for item in raw.split(separator: ",") {
            let parts = item.trimming(" ").split(separator: " ", omittingEmptySubsequences: true)
            guard let key = parts.first, parts.count <= 2 else {
                return .failure(Refusal(400, "Upload-Metadata: each pair is a key, a space and a base64 value"))
            }
            guard !pairs.contains(where: { $0.key == key }) else { return .failure(Refusal(400, "Upload-Metadata: key \(key) twice")) }
            var value: [UInt8]?
            if parts.count == 2 {
                guard let bytes = Base64.decode(parts[1]) else {
                    return .failure(Refusal(400, "Upload-Metadata: the value of \(key) is not base64"))
                }
                value = bytes
            }
            pairs.append((String(key), value))
        }
        return .success(Metadata(pairs: pairs, raw: raw))
    }

    /// Spool's own convention: a `sha256` key holding the whole file's SHA-256, as
    /// 64 hex digits or as the base64 of its 32 bytes; checked before the upload
    /// is published, as the line protocol's declared checksum is. Nil when absent.
    public static func wholeFileSHA256(_ metadata: Metadata) -> Result<String?, Refusal> {
        guard case let value?? = metadata["sha256"] else {
            if case .some(.none) = metadata["sha256"] { return .failure(Refusal(400, "Upload-Metadata: sha256 has no value")) }
            return .success(nil)
        }
        if value.count == 32 { return .success(Checksum.hex(value)) }
        if value.count == 64, let text = String(validating: value, as: UTF8.self), let bytes = Hex.bytes(text.lowercased()), bytes.count == 32 {
            return .success(text.lowercased())
        }
        return .failure(Refusal(400, "Upload-Metadata: sha256 must be the whole file's SHA-256, 32 bytes or 64 hex digits"))
    }

    public enum ChecksumAlgorithm: String, Sendable, CaseIterable {
        case sha1, sha256, md5

        public var digestBytes: Int {
            switch self {
            case .sha1: 20
            case .sha256: 32
            case .md5: 16
            }
        }
    }

    /// `Upload-Checksum: <algorithm> <base64 digest>` of one PATCH's bytes.
    public struct ChunkChecksum: Equatable, Sendable {
        public let algorithm: ChecksumAlgorithm
        public let digest: [UInt8]
    }

    public static func chunkChecksum(_ values: [String]) -> Result<ChunkChecksum?, Refusal> {
        guard let value = values.first else { return .success(nil) }
        let parts = value.trimming(" ").split(separator: " ", omittingEmptySubsequences: true)
        guard parts.count == 2 else { return .failure(Refusal(400, "Upload-Checksum is an algorithm, a space and a base64 digest")) }
        guard let algorithm = ChecksumAlgorithm(rawValue: parts[0].lowercased()) else {
            return .failure(Refusal(400, "Upload-Checksum: \(parts[0]) is not supported; use one of \(checksumAlgorithms)"))
        }
        guard let digest = Base64.decode(parts[1]), digest.count == algorithm.digestBytes else {
            return .failure(Refusal(400, "Upload-Checksum: a \(algorithm.rawValue) digest is \(algorithm.digestBytes) bytes of base64"))
        }
        return .success(ChunkChecksum(algorithm: algorithm, digest: digest))
    }

    /// An HTTP date (RFC 9110 IMF-fixdate) for `Upload-Expires`.
    public static func httpDate(epochSeconds: Int64) -> String {
        let days = epochSeconds >= 0 ? epochSeconds / 86_400 : (epochSeconds - 86_399) / 86_400
        let secondOfDay = epochSeconds - days * 86_400
        // Civil from days (Howard Hinnant's algorithm).
        let z = days + 719_468
        let era = (z >= 0 ? z : z - 146_096) / 146_097
        let doe = z - era * 146_097
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100)
        let mp = (5 * doy + 2) / 153
        let day = doy - (153 * mp + 2) / 5 + 1
        let month = mp < 10 ? mp + 3 : mp - 9
        let year = yoe + era * 400 + (month <= 2 ? 1 : 0)
        let weekday = Int((days % 7 + 11) % 7)  // 1970-01-01 was a Thursday
        let names = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"]
        let months = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]
        func two(_ n: Int64) -> String { n < 10 ? "0\(n)" : "\(n)" }
        return "\(names[weekday]), \(two(day)) \(months[Int(month) - 1]) \(year) "
            + "\(two(secondOfDay / 3600)):\(two(secondOfDay % 3600 / 60)):\(two(secondOfDay % 60)) GMT"
    }
}
