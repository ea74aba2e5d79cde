/// Upload ids are ULIDs: 48 bits of milliseconds then 80 random bits, in Crockford
/// base32. They sort by creation time and are not guessable.
public enum UploadID {
    static let alphabet = Array("0123456789ABCDEFGHJKMNPQRSTVWXYZ".utf8)

    public static func generate<R: RandomNumberGenerator>(milliseconds: UInt64, using rng: inout R) -> String {
        var bytes = [UInt8](repeating: 0, count: 16)
        for i in 0..<6 { bytes[i] = UInt8(truncatingIfNeeded: milliseconds >> (8 * (5 - i))) }
        // Two draws, not ten: each draw from the system generator is a getrandom(2) call.
        let (high, low) = (rng.next(), rng.next())
        for i in 6..<8 { bytes[i] = UInt8(truncatingIfNeeded: high >> (8 * (i - 6))) }
        for i in 8..<16 { bytes[i] = UInt8(truncatingIfNeeded: low >> (8 * (i - 8))) }
        // 128 bits -> 26 characters of 5 bits; the first character carries the top 3 bits.
        var value = bytes.reduce(into: (hi: UInt64(0), lo: UInt64(0))) { acc, byte in
            acc.hi = acc.hi << 8 | acc.lo >> 56
            acc.lo = acc.lo << 8 | UInt64(byte)
        }
        var chars = [UInt8](repeating: 0, count: 26)
        for i in stride(from: 25, through: 0, by: -1) {
            chars[i] = alphabet[Int(value.lo & 31)]
            value.lo = value.lo >> 5 | value.hi << 59
            value.hi >>= 5
        }
        return String(decoding: chars, as: UTF8.self)
    }

    public static func isValid(_ token: some StringProtocol) -> Bool {
        token.utf8.count == 26 && token.uppercased().utf8.allSatisfy { alphabet.contains($0) }
    }
}
