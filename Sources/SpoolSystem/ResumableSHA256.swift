import CSpoolSys

/// SHA-256 whose state can be saved between two 64-byte blocks and restored in
/// another process or on another host (sha256.c). An upload sent to S3 as
/// multipart parts cannot be read back before it is completed, so its resume
/// continues the hash from the state saved with its last stored part.
public struct ResumableSHA256: Sendable {
    private var state = spool_sha256()

    public init() { spool_sha256_init(&state) }

    /// Only the portable rounds, never the CPU's SHA instructions (tests compare them).
    public init(portable: Bool) {
        self.init()
        state.portable = portable ? 1 : 0
    }

    public init(restoring saved: Saved) {
        self.init()
        withUnsafeMutableBytes(of: &state.h) { raw in
            for (i, word) in saved.words.enumerated() { raw.storeBytes(of: word, toByteOffset: 4 * i, as: UInt32.self) }
        }
        state.length = UInt64(saved.length)
    }

    /// Bytes hashed so far.
    public var length: Int64 { Int64(state.length) }

    public mutating func update(bufferPointer: UnsafeRawBufferPointer) {
        guard let base = bufferPointer.baseAddress else { return }
        spool_sha256_update(&state, base, bufferPointer.count)
    }

    public mutating func update(_ bytes: some Sequence<UInt8>) {
        let array = Array(bytes)
        array.withUnsafeBytes { update(bufferPointer: $0) }
    }

    /// The digest of the bytes so far; the hash can go on after.
    public func finalize() -> [UInt8] {
        var out = [UInt8](repeating: 0, count: 32)
        withUnsafePointer(to: state) { s in out.withUnsafeMutableBufferPointer { spool_sha256_final(s, $0.baseAddress) } }
        return out
    }

    /// The state to save, when the bytes so far end on a 64-byte boundary (part
    /// sizes are whole MiB), nil otherwise.
    public var saved: Saved? {
        guard state.buffered == 0 else { return nil }
        let words = withUnsafeBytes(of: state.h) { raw in (0..<8).map { raw.load(fromByteOffset: 4 * $0, as: UInt32.self) } }
        return Saved(words: words, length: Int64(state.length))
    }

    /// A saved state, as text: `<length>:<64 hex digits>`.
    public struct Saved: Sendable, Equatable, CustomStringConvertible {
        public let words: [UInt32]
        public let length: Int64

        public var description: String {
            "\(length):" + words.map { word in
                let hex = String(word, radix: 16)
                return String(repeating: "0", count: 8 - hex.count) + hex
            }.joined()
        }

        public init(words: [UInt32], length: Int64) {
            self.words = words
            self.length = length
        }

        public init?(_ text: some StringProtocol) {
            let parts = text.split(separator: ":", omittingEmptySubsequences: false)
            guard parts.count == 2, let length = Int64(parts[0]), length >= 0, length % 64 == 0,
                parts[1].utf8.count == 64
            else { return nil }
            let hex = Array(parts[1])
            var words: [UInt32] = []
            for i in 0..<8 {
                guard let word = UInt32(String(hex[(8 * i)..<(8 * i + 8)]), radix: 16) else { return nil }
                words.append(word)
            }
            self.init(words: words, length: length)
        }
    }
}
