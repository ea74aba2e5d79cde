/// Percent-encoding for values on a control line (file names above all).
///
/// Any byte outside a conservative printable set becomes `%XX`, so a name with
/// spaces, `=`, `%` or non-ASCII letters is one unambiguous token, and a plain
/// name like `report-2026.pdf` needs no encoding at all when typed into `nc`.
public enum PercentCoding {
    public static func encode(_ value: String) -> String { encode(value, keeping: isUnreserved) }

    /// Every byte `keep` does not take becomes `%XX` (upper-case hex): the one
    /// encoder under this protocol's names, RFC 5987 file names
    /// (`encodeStrict`) and SigV4's URI encoding (RFC 3986 unreserved).
    public static func encode(_ value: String, keeping keep: (UInt8) -> Bool) -> String {
        var out = ""
        out.reserveCapacity(value.utf8.count)
        for byte in value.utf8 {
            if keep(byte) {
                out.unicodeScalars.append(Unicode.Scalar(byte))
            } else {
                out += "%" + hex(byte >> 4) + hex(byte & 0x0F)
            }
        }
        return out
    }

    /// Decodes `%XX` escapes; nil when an escape is malformed or the bytes are not UTF-8.
    public static func decode(_ token: some StringProtocol) -> String? {
        decodeBytes(token).flatMap { String(validating: $0, as: UTF8.self) }
    }

    public static func decodeBytes(_ token: some StringProtocol) -> [UInt8]? {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(token.utf8.count)
        var iterator = token.utf8.makeIterator()
        while let byte = iterator.next() {
            if byte == UInt8(ascii: "%") {
                guard let high = iterator.next().flatMap(hexValue), let low = iterator.next().flatMap(hexValue) else {
                    return nil
                }
                bytes.append(high << 4 | low)
            } else {
                bytes.append(byte)
            }
        }
        return bytes
    }

    /// RFC 3986's unreserved characters: `A-Z a-z 0-9 - . _ ~`.
    public static func isURIUnreserved(_ byte: UInt8) -> Bool {
        switch byte {
        case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "0")...UInt8(ascii: "9"),
            UInt8(ascii: "-"), UInt8(ascii: "."), UInt8(ascii: "_"), UInt8(ascii: "~"):
            true
        default:
            false
        }
    }

    private static func isUnreserved(_ byte: UInt8) -> Bool {
        switch byte {
        case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"),
            UInt8(ascii: "0")...UInt8(ascii: "9"):
            return true
        case UInt8(ascii: "-"), UInt8(ascii: "."), UInt8(ascii: "_"), UInt8(ascii: "~"),
            UInt8(ascii: "("), UInt8(ascii: ")"), UInt8(ascii: "+"), UInt8(ascii: ","),
            UInt8(ascii: "@"), UInt8(ascii: "!"), UInt8(ascii: "'"), UInt8(ascii: "["),
            UInt8(ascii: "]"), UInt8(ascii: "#"), UInt8(ascii: "&"), UInt8(ascii: ";"),
            UInt8(ascii: "/"), UInt8(ascii: ":"):
            return true
        default:
            return false
        }
    }

    private static func hex(_ nibble: UInt8) -> String {
        String(UnicodeScalar(nibble < 10 ? nibble + 48 : nibble + 55))
    }

    private static func hexValue(_ byte: UInt8) -> UInt8? {
        switch byte {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): byte - 48
        case UInt8(ascii: "a")...UInt8(ascii: "f"): byte - 87
        case UInt8(ascii: "A")...UInt8(ascii: "F"): byte - 55
        default: nil
        }
    }
}
