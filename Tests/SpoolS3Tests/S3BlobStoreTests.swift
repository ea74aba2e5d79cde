import Crypto
import Foundation
import SpoolProtocol
import SpoolS3
import SpoolStore
import SpoolSystem
import SpoolTestSupport
import Testing

/// The upload pipeline's store (SQLite catalog) over S3 blobs in a real RGW:
/// small and multipart uploads, dedup, a resume from the parts alone, removal.
@Suite struct S3BlobStoreTests {
    /// 5 MiB parts (S3's least) keep the files small.
    static let partSize: Int64 = 5 << 20

    static func open(_ what: String, in dir: TempDirectory, bucket: String? = nil) throws -> (Store, S3BlobStore) {
        let location = try S3Location("s3://\(bucket ?? S3Server.bucketName(what))/p/", environment: try S3Server.environment())
        let client = S3Client(location)
        try client.createBucket()
        _ = try Store.openMigrating(directory: DataDirectory(dir.path))
        let blobs = S3BlobStore(client: client, directory: DataDirectory(dir.path), partSize: partSize)
        return (try Store(directory: DataDirectory(dir.path), blobs: blobs), blobs)
    }

    static func bytes(_ count: Int, seed: Int) -> [UInt8] { (0..<count).map { UInt8(truncatingIfNeeded: ($0 &* 2_654_435_761) >> 11 &+ seed) } }
    static func sha(_ bytes: some Sequence<UInt8>) -> String { Checksum.hex(SHA256.hash(data: Array(bytes))) }

    static func new(_ bytes: [UInt8], declared: Bool = true) -> NewUpload {
        NewUpload(name: "f", size: Int64(bytes.count), sha256: declared ? sha(bytes) : "", clientIP: "127.0.0.1", clientPort: 1, workerPID: 1)
    }

    /// Appends in 64 KiB pieces, as the worker does, hashing as it goes.
    static func send(_ store: Store, _ upload: OpenUpload, _ bytes: ArraySlice<UInt8>, hasher: inout ResumableSHA256) throws {
        var start = bytes.startIndex
        while start < bytes.endIndex {
            let end = min(bytes.endIndex, start + 65536)
            try bytes[start..<end].withUnsafeBytes { raw in
                try store.append(upload, raw)
                hasher.update(bufferPointer: raw)
            }
            start = end
        }
    }

    static func object(_ blobs: S3BlobStore, _ sha256: String) throws -> [UInt8] {
        var got: [UInt8] = []
        _ = try blobs.client.get(blobs.objectKey(sha256: sha256)) { got.append(contentsOf: $0) }
        return got
    }

    @Test(arguments: [(1000, true), (12 << 20 + 333, true), (11 << 20, false)])
    func storedWholeAndAsParts(size: Int, declared: Bool) throws {
        let dir = try TempDirectory()
        let (store, blobs) = try Self.open("whole", in: dir)
        let bytes = Self.bytes(size, seed: size)
        let upload = try store.begin(Self.new(bytes, declared: declared), id: "UP1")
        var hasher = ResumableSHA256()
        try Self.send(store, upload, bytes[...], hasher: &hasher)
        // Undeclared (an HTTP PUT without a digest): the server's own checksum is the one recorded.
        let computed = Checksum.hex(hasher.finalize())
        let outcome = try store.complete(upload, received: Int64(size), sha256: computed, declared: declared ? nil : computed)
        guard case .stored = outcome else { Issue.record("\(outcome)"); return }
        #expect(try store.upload(id: "UP1")?.state == .complete)
        #expect(try Self.object(blobs, Self.sha(bytes)) == bytes)
        #expect(try blobs.objectNames() == [Self.sha(bytes)])
        #expect(try blobs.hashObject(sha256: Self.sha(bytes)) == Self.sha(bytes))
        // Nothing left on the way: no buffer, manifest, multipart upload or staged object.
        #expect(try blobs.stagingNames().isEmpty)
        #expect(try blobs.client.listMultipartUploads(prefix: blobs.client.key("")).isEmpty)
        #expect(try blobs.client.list(prefix: blobs.client.key("")).map(\.key) == [blobs.objectKey(sha256: Self.sha(bytes))])
        // A download streams the bytes, whole or a range of them, a piece at a time.
        #expect(try Self.read(blobs.openObject(sha256: Self.sha(bytes), size: Int64(size), range: 0..<Int64(size))) == bytes)
        let cut = Int64(size / 3)..<Int64(size - 7)
        #expect(try Self.read(blobs.openObject(sha256: Self.sha(bytes), size: Int64(size), range: cut)) == Array(bytes[Int(cut.lowerBound)..<Int(cut.upperBound)]))
        // One let go half read: its connection is not reused half way through an answer.
        if case .stream(let half) = try blobs.openObject(sha256: Self.sha(bytes), size: Int64(size), range: 0..<Int64(size)) {
            #expect(try half.read(max: 10, into: { _ in }) == 10)
            half.close()
        }
        #expect(try blobs.hashObject(sha256: Self.sha(bytes)) == Self.sha(bytes))
        #expect(throws: SystemError.self) { try blobs.openObject(sha256: Self.sha(bytes), size: Int64(size) + 1, range: 0..<Int64(size) + 1) }
        #expect(throws: SystemError.self) { try blobs.openObject(sha256: Self.sha(bytes), size: Int64(size) + 1, range: 0..<10) }
    }

    /// Every byte of a download, read in pieces of 100,000 bytes.
    static func read(_ bytes: ObjectBytes) throws -> [UInt8] {
        guard case .stream(let stream) = bytes else { Issue.record("an S3 object as a local file"); return [] }
        defer { stream.close() }
        var out: [UInt8] = []
        while try stream.read(max: 100_000, into: { out.append(contentsOf: $0) }) > 0 {}
        return out
    }

    /// The same content twice, as parts both times: one object, the second upload's parts dropped.
    @Test func duplicateContentIsStoredOnce() throws {
        let dir = try TempDirectory()
        let (store, blobs) = try Self.open("dup", in: dir)
        let bytes = Self.bytes(6 << 20, seed: 3)
        for id in ["D1", "D2"] {
            let upload = try store.begin(Self.new(bytes), id: id)
            var hasher = ResumableSHA256()
            try Self.send(store, upload, bytes[...], hasher: &hasher)
            _ = try store.complete(upload, received: Int64(bytes.count), sha256: Checksum.hex(hasher.finalize()))
        }
        #expect(try store.uploads().allSatisfy { $0.state == .complete })
        #expect(try blobs.client.list(prefix: blobs.client.key("")).count == 1)
        #expect(try blobs.client.listMultipartUploads(prefix: blobs.client.key("")).isEmpty)
        #expect(try Self.object(blobs, Self.sha(bytes)) == bytes)
    }

    /// Cut after two parts and part of a third; the local buffer lost too (as on
    /// another host): the resume starts at the end of the stored parts, with the
    /// hash state saved there, and the object is whole and verified.
    @Test(arguments: [true, false]) func resumesFromTheStoredParts(bufferLost: Bool) throws {
        let dir = try TempDirectory()
        let bucket = S3Server.bucketName("resume")
        var (store, blobs) = try Self.open("resume", in: dir, bucket: bucket)
        let bytes = Self.bytes(13 << 20 + 4321, seed: 5)
        let upload = try store.begin(Self.new(bytes), id: "R1")
        var hasher = ResumableSHA256()
        let cut = Int(2 * Self.partSize) + 777_777
        try Self.send(store, upload, bytes[0..<cut], hasher: &hasher)
        try store.interrupt(upload, received: Int64(cut), reason: "cut")
        if bufferLost { try FileManager.default.removeItem(atPath: dir.path + "/spool/tmp/R1.part") }
        #expect(blobs.hasStaging(id: "R1"))
        #expect(try blobs.durableStagedSize(id: "R1") == (bufferLost ? 2 * Self.partSize : Int64(cut)))

        // A new process: a new store and blob store over the same catalog and bucket.
        (store, blobs) = try Self.open("resume", in: dir, bucket: bucket)
        guard case .opened(let again, let prefix) = try store.resume(id: "R1", sha256: Self.sha(bytes), clientIP: "127.0.0.1", clientPort: 2, workerPID: 2)
        else { Issue.record("not resumed"); return }
        let offset = Int(again.offset)
        #expect(offset == (bufferLost ? Int(2 * Self.partSize) : cut))
        var resumed = prefix.hasher
        try Self.send(store, again, bytes[offset...], hasher: &resumed)
        let outcome = try store.complete(again, received: Int64(bytes.count), sha256: Checksum.hex(resumed.finalize()))
        guard case .stored = outcome else { Issue.record("\(outcome)"); return }
        #expect(try Self.object(blobs, Self.sha(bytes)) == bytes)
        #expect(try blobs.stagingNames().isEmpty)
    }

    /// A buffer whose bytes were stored as a part before a crash emptied it is
    /// emptied at the resume, not sent twice.
    @Test func aBufferAlreadyStoredIsNotSentAgain() throws {
        let dir = try TempDirectory()
        let (store, blobs) = try Self.open("crash", in: dir)
        let bytes = Self.bytes(7 << 20, seed: 8)
        let upload = try store.begin(Self.new(bytes), id: "C1")
        var hasher = ResumableSHA256()
        try Self.send(store, upload, bytes[0..<Int(Self.partSize)], hasher: &hasher)
        try store.interrupt(upload, received: Self.partSize, reason: "cut")
        // As if the crash came after the part and its manifest were stored but before
        // the buffer was emptied: its old header and bytes back.
        let path = dir.path + "/spool/tmp/C1.part"
        var old = Data(count: 8)
        old.append(contentsOf: bytes[0..<Int(Self.partSize)])
        try old.write(to: URL(fileURLWithPath: path))
        guard case .opened(let again, let prefix) = try store.resume(id: "C1", sha256: Self.sha(bytes), clientIP: "127.0.0.1", clientPort: 2, workerPID: 2)
        else { Issue.record("not resumed"); return }
        #expect(again.offset == Self.partSize)
        var resumed = prefix.hasher
        try Self.send(store, again, bytes[Int(Self.partSize)...], hasher: &resumed)
        guard case .stored = try store.complete(again, received: Int64(bytes.count), sha256: Checksum.hex(resumed.finalize())) else {
            Issue.record("not stored"); return
        }
        #expect(try Self.object(blobs, Self.sha(bytes)) == bytes)
    }

    @Test func discardedAndRemoved() throws {
        let dir = try TempDirectory()
        let (store, blobs) = try Self.open("discard", in: dir)
        let bytes = Self.bytes(6 << 20, seed: 9)
        let upload = try store.begin(Self.new(bytes), id: "X1")
        var hasher = ResumableSHA256()
        try Self.send(store, upload, bytes[...], hasher: &hasher)
        // A checksum that does not match: nothing published, the parts aborted.
        #expect(try store.complete(upload, received: Int64(bytes.count), sha256: String(repeating: "0", count: 64)) != .stored(objectPath: ""))
        #expect(try store.upload(id: "X1")?.state == .failed)
        #expect(try blobs.client.list(prefix: blobs.client.key("")).isEmpty)
        #expect(try blobs.client.listMultipartUploads(prefix: blobs.client.key("")).isEmpty)
        #expect(try blobs.stagingNames().isEmpty)

        let small = Self.bytes(10, seed: 1)
        let second = try store.begin(Self.new(small), id: "X2")
        var h = ResumableSHA256()
        try Self.send(store, second, small[...], hasher: &h)
        _ = try store.complete(second, received: 10, sha256: Checksum.hex(h.finalize()))
        #expect(try blobs.removeObject(sha256: Self.sha(small)))
        #expect(try blobs.removeObject(sha256: Self.sha(small)) == false)
        #expect(blobs.objectSize(sha256: Self.sha(small)) == nil)
    }
}
