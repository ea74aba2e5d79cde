import Crypto
import Foundation
import SpoolProtocol

/// Fast, reproducible pseudo-random bytes (xorshift): test files without /dev/urandom's cost.
func pseudoRandomBytes(count: Int, seed: UInt64) -> [UInt8] {
    var state = (seed &+ 1) &* 0x9E37_79B9_7F4A_7C15 | 1  // spread the seed: seeds 4 and 5 must differ
    var bytes = [UInt8](repeating: 0, count: count)
    var i = 0
    while i < count {
        state ^= state << 13
        state ^= state >> 7
        state ^= state << 17
        withUnsafeBytes(of: state) { word in
            for b in word where i < count {
                bytes[i] = b
                i += 1
            }
        }
    }
    return bytes
}

func sha256Hex(_ data: some DataProtocol) -> String {
    Checksum.hex(SHA256.hash(data: data))
}

@discardableResult
func writeFile(_ path: String, _ bytes: [UInt8]) -> String {
    _ = FileManager.default.createFile(atPath: path, contents: Data(bytes))
    return path
}

/// A sparse file of `size` zero bytes, made at once whatever its size.
func sparseFile(_ path: String, size: UInt64) throws -> String {
    _ = FileManager.default.createFile(atPath: path, contents: nil)
    guard let handle = FileHandle(forWritingAtPath: path) else { throw HarnessError("cannot open \(path)") }
    try handle.truncate(atOffset: size)
    try handle.close()
    return path
}
