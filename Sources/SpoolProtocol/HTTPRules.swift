/// What an HTTP request asks for, read from its method and target alone
/// (docs/HTTP.md). Ids and names live under different prefixes, so a name that
/// looks like an id is never taken for one.
public enum HTTPRoute: Equatable, Sendable {
    /// `PUT /files/<name>`: a plain upload (`curl -T file URL/files/` appends the name).
    case upload(name: String)
    /// `POST /files/`: tus creation (and creation-with-upload).
    case tusCreate
    /// `HEAD|PATCH|DELETE /files/<id>`: tus on an upload (any upload, whichever protocol began it).
    case tus(id: String, method: TusMethod)
    /// `OPTIONS` under `/files/`: what tus supports, and the methods allowed there.
    case tusOptions(allow: String)
    /// `GET|HEAD /uploads/<id>/content`: a complete upload's bytes.
    case download(id: String, headOnly: Bool)
    /// `GET|HEAD /uploads/<id>`: an upload's record, as JSON.
    case record(id: String, headOnly: Bool)
    /// `GET /uploads?limit=&state=&name=&until=`: records, newest first, as a JSON array.
    case list(query: [String: String])
    /// `GET|HEAD /names/<name>`: the bytes of the newest complete upload with that name.
    case downloadByName(name: String, headOnly: Bool)
    /// `GET|HEAD /healthz`: the process serves. `GET|HEAD /readyz`: it should be sent
    /// traffic (database writable, free space, every worker up). No token needed.
    case health(ready: Bool, headOnly: Bool)
    /// `GET|HEAD /metrics`: Prometheus' text format; an admin token once tokens exist.
    case metrics(headOnly: Bool)
    /// A file of the upload page: `/` or `/<name>.<ext>` (the worker knows which exist).
    case page(path: String, headOnly: Bool)
    /// The target exists, but not for this method; `allow` lists the methods that work there.
    case methodNotAllowed(allow: String)
    /// `OPTIONS` on a target that exists: what it allows (and, from a browser, a CORS preflight).
    case options(allow: String)
    /// A target that cannot be read (bad escapes, a name against the rules): 400 with this reason.
    case badTarget(String)
    /// A target longer than `maxTargetBytes`: 414.
    case targetTooLong
    case notFound

    /// The longest request target taken, as nginx's default header buffer holds (8 KiB).
    public static let maxTargetBytes = 8192

    /// `app.js`, `icon.svg`: one path component, a dot, nothing to decode.
    static func isPageFile(_ name: Substring) -> Bool {
        name.contains(".") && !name.hasPrefix(".")
            && name.utf8.allSatisfy { c in
                (c >= UInt8(ascii: "a") && c <= UInt8(ascii: "z")) || (c >= UInt8(ascii: "0") && c <= UInt8(ascii: "9"))
                    || c == UInt8(ascii: "-") || c == UInt8(ascii: ".")
            }
    }

    public static func parse(method: String, target: String) -> HTTPRoute {
        guard target.utf8.count <= maxTargetBytes else { return .targetTooLong }
        let pieces = target.split(separator: "?", maxSplits: 1, omittingEmptySubsequences: false)
        let path = pieces.first.map(String.init) ?? target
        let isRead = method == "GET" || method == "HEAD"
        /// What a path allows, for OPTIONS and 405 alike.
        func refused(_ allow: String) -> HTTPRoute {
            method == "OPTIONS" ? .options(allow: allow + ", OPTIONS") : .methodNotAllowed(allow: allow)
        }
        if path == "/healthz" || path == "/readyz" {
            guard isRead else { return refused("GET, HEAD") }
            return .health(ready: path == "/readyz", headOnly: method == "HEAD")
        }
        if path == "/metrics" {
            guard isRead else { return refused("GET, HEAD") }
            return .metrics(headOnly: method == "HEAD")
        }
        if path == "/files" || path == "/files/" {
            switch method {
            case "POST": return .tusCreate
            case "OPTIONS": return .tusOptions(allow: "POST, OPTIONS")
            case "PUT": return .badTarget("PUT needs a name: /files/<name>")
            default: return .methodNotAllowed(allow: "POST")
            }
        }
        if path.hasPrefix("/files/") {
            let rest = path.dropFirst("/files/".count)
            if let tusMethod = TusMethod(rawValue: method) {
                // A name never reaches tus: tus addresses uploads by id only.
                return UploadID.isValid(rest) ? .tus(id: rest.uppercased(), method: tusMethod) : .notFound
            }
            if method == "OPTIONS" { return .tusOptions(allow: "PUT, HEAD, PATCH, DELETE, OPTIONS") }
            guard method == "PUT" else { return .methodNotAllowed(allow: "PUT, HEAD, PATCH, DELETE") }
            switch name(rest) {
            case .success(let name): return .upload(name: name)
            case .failure(let reason): return .badTarget(reason.description)
            }
        }
        if path.hasPrefix("/names/") {
            guard isRead else { return refused("GET, HEAD") }
            switch name(path.dropFirst("/names/".count)) {
            case .success(let name): return .downloadByName(name: name, headOnly: method == "HEAD")
            case .failure(let reason): return .badTarget(reason.description)
            }
        }
        if path == "/uploads" || path == "/uploads/" {
            guard method == "GET" else { return refused("GET") }
            var query: [String: String] = [:]
            for pair in (pieces.count > 1 ? pieces[1] : "").split(separator: "&") {
                let kv = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
                guard let key = kv.first.flatMap({ PercentCoding.decode($0) }),
                    let value = PercentCoding.decode(kv.count > 1 ? kv[1].replacingPlus : "")
                else { return .badTarget("the query is not percent-encoded UTF-8") }
                query[key] = value
            }
            return .list(query: query)
        }
        if path.hasPrefix("/uploads/") {
            let parts = path.dropFirst("/uploads/".count).split(separator: "/", omittingEmptySubsequences: false)
            guard let id = parts.first, UploadID.isValid(id), parts.count <= 2, parts.count == 1 || parts[1] == "content" else {
                return .notFound
            }
            guard isRead else { return refused("GET, HEAD") }
            let upper = id.uppercased()
            return parts.count == 2 ? .download(id: upper, headOnly: method == "HEAD") : .record(id: upper, headOnly: method == "HEAD")
        }
        if path == "/" || isPageFile(path.dropFirst()) {
            guard isRead else { return refused("GET, HEAD") }
            return .page(path: path, headOnly: method == "HEAD")
        }
        return .notFound
    }
}

/// The tus methods on an upload's URL.
public enum TusMethod: String, Sendable {
    case head = "HEAD", patch = "PATCH", delete = "DELETE"
}

extension HTTPRoute {
    struct Reason: Error, CustomStringConvertible {
        let description: String
    }

    /// A name from a path: percent-decoded, and under the line protocol's rules.
    static func name(_ raw: Substring) -> Result<String, Reason> {
        guard let bytes = PercentCoding.decodeBytes(raw), let name = String(validating: bytes, as: UTF8.self) else {
            return .failure(Reason(description: "the name is not percent-encoded UTF-8"))
        }
        do { try UploadName.validate(name, byteCount: bytes.count) } catch {
            return .failure(Reason(description: error.reply.text))
        }
        return .success(name)
    }
}

extension Substring {
    /// `+` is a space in a query string (HTML forms write it so).
    var replacingPlus: String { String(self.map { $0 == "+" ? " " : $0 }) }
}

/// The SHA-256 a request declares for the whole file, from `Repr-Digest` or
/// `Content-Digest` (RFC 9530, `sha-256=:<base64>:`); both describe the whole
/// body of a plain PUT. Other algorithms are ignored, as the RFC allows.
public enum DigestHeader {
    public enum Parsed: Equatable, Sendable {
        /// No sha-256 member: the server's own checksum is the one returned.
        case absent
        case sha256(String)
        /// A sha-256 member that is not 32 bytes of base64.
        case malformed
    }

    public static func parse(_ values: [String]) -> Parsed {
        for value in values {
            for member in value.split(separator: ",") {
                let trimmed = member.trimmingSpaces
                guard let eq = trimmed.firstIndex(of: "="), trimmed[..<eq].lowercased() == "sha-256" else { continue }
                let item = trimmed[trimmed.index(after: eq)...]
                guard item.count >= 2, item.first == ":", item.last == ":",
                    let bytes = Base64.decode(item.dropFirst().dropLast()), bytes.count == 32
                else { return .malformed }
                return .sha256(Checksum.hex(bytes))
            }
        }
        return .absent
    }

    /// `sha-256=:<base64>:` for a lowercase hex SHA-256.
    public static func header(sha256 hex: String) -> String {
        "sha-256=:\(Base64.encode(Hex.bytes(hex) ?? [])):"
    }
}

/// `Content-Disposition: attachment; filename="…"; filename*=UTF-8''…` (RFC 6266):
/// an ASCII fallback for old clients and the exact name for the others. Only the
/// last path component: the name is a label, and a download is one file.
public enum ContentDisposition {
    public static func attachment(name: String) -> String {
        let last = name.split(separator: "/").last.map(String.init) ?? name
        let fallback = String(last.unicodeScalars.map { scalar -> Character in
            scalar.isASCII && scalar.value >= 0x20 && scalar != "\"" && scalar != "\\" && scalar.value != 0x7F ? Character(scalar) : "_"
        })
        return "attachment; filename=\"\(fallback)\"; filename*=UTF-8''\(PercentCoding.encodeStrict(last))"
    }
}

extension PercentCoding {
    /// RFC 5987's `attr-char`: letters, digits and `!#$&+-.^_`|~`; every other byte escaped.
    public static func encodeStrict(_ value: String) -> String {
        let allowed = Set("!#$&+-.^_`|~".utf8)
        return encode(value) { byte in
            (byte >= 0x30 && byte <= 0x39) || (byte >= 0x41 && byte <= 0x5A) || (byte >= 0x61 && byte <= 0x7A) || allowed.contains(byte)
        }
    }
}

/// One `Range: bytes=…` against a file of `size` bytes (RFC 9110 §14). Only a
/// single range is served; several, or a form not understood, get the whole file.
public enum ByteRange: Equatable, Sendable {
    case whole
    case part(Range<Int64>)
    case unsatisfiable

    public static func parse(_ header: String, size: Int64) -> ByteRange {
        guard header.hasPrefix("bytes="), !header.contains(",") else { return .whole }
        let spec = header.dropFirst("bytes=".count).split(separator: "-", maxSplits: 1, omittingEmptySubsequences: false)
        guard spec.count == 2 else { return .whole }
        let (first, last) = (String(spec[0].trimmingSpaces), String(spec[1].trimmingSpaces))
        if first.isEmpty {
            guard let suffix = Int64(last), suffix > 0 else { return .whole }
            return size == 0 ? .unsatisfiable : .part(max(0, size - suffix)..<size)
        }
        guard let start = Int64(first), start >= 0 else { return .whole }
        guard start < size else { return .unsatisfiable }
        if last.isEmpty { return .part(start..<size) }
        guard let end = Int64(last), end >= start else { return .whole }
        return .part(start..<min(end + 1, size))
    }
}


/// Standard base64 (RFC 4648 §4), with padding.
public enum Base64 {
    private static let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/".utf8)

    public static func encode(_ bytes: [UInt8]) -> String {
        var out: [UInt8] = []
        out.reserveCapacity((bytes.count + 2) / 3 * 4)
        var index = 0
        while index < bytes.count {
            let chunk = bytes[index..<min(index + 3, bytes.count)]
            var value: UInt32 = 0
            for (n, byte) in chunk.enumerated() { value |= UInt32(byte) << (16 - 8 * n) }
            for n in 0..<4 {
                out.append(n <= chunk.count ? alphabet[Int((value >> (18 - 6 * n)) & 63)] : UInt8(ascii: "="))
            }
            index += 3
        }
        return String(decoding: out, as: UTF8.self)
    }

    public static func decode(_ text: some StringProtocol) -> [UInt8]? {
        let input = Array(text.utf8)
        guard input.count % 4 == 0 else { return nil }
        var out: [UInt8] = []
        var index = 0
        while index < input.count {
            var value: UInt32 = 0
            var padding = 0
            for n in 0..<4 {
                let c = input[index + n]
                let digit: UInt32
                switch c {
                case UInt8(ascii: "A")...UInt8(ascii: "Z"): digit = UInt32(c - UInt8(ascii: "A"))
                case UInt8(ascii: "a")...UInt8(ascii: "z"): digit = UInt32(c - UInt8(ascii: "a")) + 26
                case UInt8(ascii: "0")...UInt8(ascii: "9"): digit = UInt32(c - UInt8(ascii: "0")) + 52
                case UInt8(ascii: "+"): digit = 62
                case UInt8(ascii: "/"): digit = 63
                case UInt8(ascii: "=") where index + 4 == input.count && n >= 2:
                    padding += 1
                    digit = 0
                default: return nil
                }
                if padding > 0 && c != UInt8(ascii: "=") { return nil }
                value = value << 6 | digit
            }
            let decoded = [UInt8(value >> 16 & 0xFF), UInt8(value >> 8 & 0xFF), UInt8(value & 0xFF)]
            out += decoded.prefix(3 - padding)
            index += 4
        }
        return out
    }
}

public enum Hex {
    /// The bytes of an even-length hex string, or nil.
    public static func bytes(_ hex: String) -> [UInt8]? {
        let digits = Array(hex.utf8)
        guard digits.count % 2 == 0 else { return nil }
        var out: [UInt8] = []
        out.reserveCapacity(digits.count / 2)
        var index = 0
        while index < digits.count {
            guard let high = value(digits[index]), let low = value(digits[index + 1]) else { return nil }
            out.append(high << 4 | low)
            index += 2
        }
        return out
    }

    private static func value(_ digit: UInt8) -> UInt8? {
        switch digit {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): digit - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): digit - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): digit - UInt8(ascii: "A") + 10
        default: nil
        }
    }
}

extension Substring {
    var trimmingSpaces: Substring {
        var result = self
        while result.first == " " || result.first == "\t" { result = result.dropFirst() }
        while result.last == " " || result.last == "\t" { result = result.dropLast() }
        return result
    }
}

/// How a request's body is delimited (RFC 9112 §6), judged from its headers alone.
/// Anything that two parsers could read two ways is `ambiguous` and refused: a
/// request hidden in another's body is how request smuggling works.
public enum BodyFraming: Equatable, Sendable {
    case length(Int64)
    /// `Transfer-Encoding: chunked`: the length is known only at the end.
    case chunked
    /// Neither header: a request that should carry a body does not say how long it is.
    case none
    /// A transfer coding other than plain `chunked` (gzip, …).
    case unsupported(String)
    case ambiguous(String)

    public static func parse(contentLength: [String], transferEncoding: [String]) -> BodyFraming {
        let codings = transferEncoding.flatMap { $0.split(separator: ",") }
            .map { $0.trimming(" \t").lowercased() }
        if !codings.isEmpty {
            guard contentLength.isEmpty else { return .ambiguous("Content-Length and Transfer-Encoding together") }
            guard codings == ["chunked"] else { return .unsupported(codings.joined(separator: ", ")) }
            return .chunked
        }
        // One value, or the same value repeated (RFC 9110 §8.6 allows a recipient to accept that).
        let values = Set(contentLength.flatMap { $0.split(separator: ",", omittingEmptySubsequences: false) }
            .map { $0.trimming(" \t") })
        guard let value = values.first else { return .none }
        guard values.count == 1 else { return .ambiguous("two different Content-Length values") }
        guard let length = Int64(value), length >= 0, value.allSatisfy(\.isASCIIDigit) else {
            return .ambiguous("Content-Length is not a number")
        }
        return .length(length)
    }
}

extension StringProtocol {
    /// Without the characters of `set` at either end (Foundation's trimming, without Foundation).
    public func trimming(_ set: String) -> String {
        var slice = Substring(self)
        while let first = slice.first, set.contains(first) { slice = slice.dropFirst() }
        while let last = slice.last, set.contains(last) { slice = slice.dropLast() }
        return String(slice)
    }
}

extension Character {
    var isASCIIDigit: Bool { ("0"..."9").contains(self) }
}
