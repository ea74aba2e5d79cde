import Crypto
import SpoolProtocol
import SpoolSystem
import Testing

@Suite struct ResumableSHA256Tests {
    static func bytes(_ count: Int, seed: UInt32) -> [UInt8] {
        var x = seed | 1
        return (0..<count).map { _ in
            x ^= x << 13; x ^= x >> 17; x ^= x << 5
            return UInt8(truncatingIfNeeded: x)
        }
    }

    @Test func knownAnswers() {
        #expect(Checksum.hex(ResumableSHA256().finalize()) == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
        var abc = ResumableSHA256()
        abc.update(Array("abc".utf8))
        #expect(Checksum.hex(abc.finalize()) == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        var long = ResumableSHA256()
        long.update(Array("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq".utf8))
        #expect(Checksum.hex(long.finalize()) == "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1")
    }

    /// Every length around the padding's edges and pieces of every size, both
    /// ways of computing the rounds, against swift-crypto.
    @Test(arguments: [false, true]) func matchesSwiftCrypto(portable: Bool) {
        let data = Self.bytes(5000, seed: 7)
        for length in Array(0...200) + [447, 448, 511, 512, 513, 1000, 4095, 4096, 4097, 5000] {
            var ours = ResumableSHA256(portable: portable)
            var start = 0, piece = 1
            while start < length {
                let end = min(length, start + piece)
                data[start..<end].withUnsafeBytes { ours.update(bufferPointer: $0) }
                start = end
                piece = piece * 3 % 97 + 1
            }
            let expected = Checksum.hex(SHA256.hash(data: data[0..<length]))
            #expect(Checksum.hex(ours.finalize()) == expected, "length \(length)")
            #expect(ours.length == Int64(length))
        }
    }

    /// Saved at a block boundary, as text, restored: the same digest as one pass,
    /// and finalizing along the way changes nothing.
    @Test func savedStateContinues() throws {
        let data = Self.bytes(3 << 20 + 77, seed: 99)
        var first = ResumableSHA256()
        data[0..<(1 << 20)].withUnsafeBytes { first.update(bufferPointer: $0) }
        _ = first.finalize()
        let saved = try #require(first.saved)
        let text = saved.description
        #expect(text.hasPrefix("1048576:"))
        var second = ResumableSHA256(restoring: try #require(ResumableSHA256.Saved(text)))
        data[(1 << 20)...].withUnsafeBytes { second.update(bufferPointer: $0) }
        #expect(Checksum.hex(second.finalize()) == Checksum.hex(SHA256.hash(data: data)))
        #expect(second.length == Int64(data.count))

        var odd = ResumableSHA256()
        odd.update(data[0..<100])
        #expect(odd.saved == nil)
        for bad in ["", "100:00", "64:" + String(repeating: "g", count: 64), "65:" + String(repeating: "0", count: 64), "-64:"] {
            #expect(ResumableSHA256.Saved(bad) == nil, "\(bad)")
        }
    }
}
