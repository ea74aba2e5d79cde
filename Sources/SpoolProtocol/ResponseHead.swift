/// The head of an HTTP/1.1 response (`ResponseHead`, not NIO's server-side type), as the `spool` client reads it: status and
/// headers, nothing else. Pure, so it is tested without a server.
public struct ResponseHead: Equatable, Sendable {
    public let status: Int
    public let reason: String
    /// Header names lowercased; a repeated header keeps its first value.
    public let headers: [String: String]

    /// The longest head the client reads before giving up on a server.
    public static let maxBytes = 64 << 10

    public enum Parsed: Equatable, Sendable {
        /// The head, and how many bytes of the input it took (the body starts there).
        case head(ResponseHead, length: Int)
        /// No blank line yet: read more.
        case incomplete
        case malformed(String)
    }

    public static func parse(_ bytes: some Collection<UInt8>) -> Parsed {
        let bytes = Array(bytes)
        guard let end = headEnd(bytes) else {
            return bytes.count > maxBytes ? .malformed("response head over \(maxBytes) bytes") : .incomplete
        }
        let text = String(decoding: bytes[0..<end], as: UTF8.self)
        var lines = text.split(separator: "\r\n", omittingEmptySubsequences: false)
        let statusLine = lines.removeFirst().split(separator: " ", maxSplits: 2, omittingEmptySubsequences: false)
        guard statusLine.count >= 2, statusLine[0].hasPrefix("HTTP/1."), statusLine[1].count == 3,
            let status = Int(statusLine[1])
        else { return .malformed("not an HTTP/1.x status line: \(text.prefix(80))") }
        var headers: [String: String] = [:]
        for line in lines where !line.isEmpty {
            guard let colon = line.firstIndex(of: ":") else { return .malformed("a header without a colon: \(line.prefix(80))") }
            let name = line[..<colon].lowercased()
            if headers[name] == nil { headers[name] = line[line.index(after: colon)...].trimming(" \t") }
        }
        return .head(ResponseHead(status: status, reason: statusLine.count > 2 ? String(statusLine[2]) : "", headers: headers),
                     length: end + 4)
    }

    private static func headEnd(_ bytes: [UInt8]) -> Int? {
        guard bytes.count >= 4 else { return nil }
        for i in 0...(bytes.count - 4) where bytes[i] == 13 && bytes[i + 1] == 10 && bytes[i + 2] == 13 && bytes[i + 3] == 10 {
            return i
        }
        return nil
    }
}

extension ContentDisposition {
    /// The file name a `Content-Disposition` offers, `filename*` (RFC 6266, UTF-8)
    /// before `filename`, reduced to a safe last path component: nil when there is
    /// none, or it is empty, `.` or `..`.
    public static func fileName(from header: String) -> String? {
        var plain: String?, extended: String?
        for parameter in header.split(separator: ";") {
            let pair = parameter.split(separator: "=", maxSplits: 1)
            guard pair.count == 2 else { continue }
            let key = pair[0].trimming(" \t").lowercased()
            let value = pair[1].trimming(" \t")
            if key == "filename*", value.lowercased().hasPrefix("utf-8''") {
                extended = PercentCoding.decode(value.dropFirst("utf-8''".count))
            } else if key == "filename" {
                plain = value.hasPrefix("\"") && value.hasSuffix("\"") && value.count >= 2 ? String(value.dropFirst().dropLast()) : value
            }
        }
        guard let name = (extended ?? plain)?.split(separator: "/").last.map(String.init),
            name != ".", name != "..", !name.contains(where: { $0.asciiValue.map { $0 < 0x20 || $0 == 0x7F } ?? false })
        else { return nil }
        return name
    }
}
