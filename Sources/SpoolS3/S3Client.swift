import Crypto
import Foundation
import SpoolProtocol
import SpoolSystem

#if canImport(Glibc)
import Glibc
#endif

/// The S3 operations the object store uses, signed with SigV4, path-style, over
/// a few kept-alive blocking connections. Every call blocks its thread: the
/// store calls it from its thread pool.
/// (`@unchecked Sendable`: the idle connections are only touched under `lock`.)
public final class S3Client: @unchecked Sendable {
    public let location: S3Location
    private let signer: SigV4
    private let lock = Lock()
    private var idle: [HTTPConnection] = []
    private let timeout: Int

    public init(_ location: S3Location, timeout: Int = 120) {
        self.location = location
        self.timeout = timeout
        signer = SigV4(credentials: .init(accessKey: location.accessKey, secretKey: location.secretKey), region: location.region)
    }

    /// The key under the location's prefix.
    public func key(_ name: String) -> String { location.prefix + name }

    // MARK: Requests

    /// One signed request. `key` nil: the bucket itself. The body's SHA-256 is
    /// signed, so the store checks what it received against it.
    func request(
        _ method: String, key: String?, query: [(String, String)] = [], headers extra: [(String, String)] = [],
        body: RequestBody = .empty, payloadHash: String = SigV4.emptyPayloadHash, operation: String,
        sink: ((UnsafeRawBufferPointer) throws(S3Error) -> Void)? = nil
    ) throws(S3Error) -> HTTPResponse {
        let head = signedHead(method, key: key, query: query, headers: extra, bodyCount: body.count, payloadHash: payloadHash)
        // A connection kept from before may have been closed by the store while
        // idle: a failure on one is retried once on a new connection.
        while true {
            let (connection, reused) = try takeConnection()
            do {
                let response = try connection.exchange(head: head, body: body, expectsBody: method != "HEAD", sink: sink)
                giveBack(connection)
                return response
            } catch .transport(let error) where reused && sink == nil {
                _ = error
                continue
            }
        }
    }

    /// The request line and signed headers of a request.
    func signedHead(
        _ method: String, key: String?, query: [(String, String)] = [], headers extra: [(String, String)] = [],
        bodyCount: Int64 = 0, payloadHash: String = SigV4.emptyPayloadHash
    ) -> String {
        let path = "/" + SigV4.encode(location.bucket) + (key.map { "/" + SigV4.encode($0, keepSlash: true) } ?? "")
        let date = Self.amzDate()
        let host = location.port == 80 ? location.host : "\(location.host):\(location.port)"
        var headers = [("host", host), ("x-amz-date", date), ("x-amz-content-sha256", payloadHash)] + extra
        headers.append(("authorization", signer.authorization(method: method, path: path, query: query, headers: headers, payloadHash: payloadHash, date: date)))
        let queryText = query.map { $0.1.isEmpty && $0.0 == "uploads" ? "uploads" : "\(SigV4.encode($0.0))=\(SigV4.encode($0.1))" }
            .joined(separator: "&")
        var head = "\(method) \(path)\(queryText.isEmpty ? "" : "?" + queryText) HTTP/1.1\r\n"
        for (name, value) in headers { head += "\(name): \(value)\r\n" }
        if method != "GET" && method != "HEAD" && method != "DELETE" || bodyCount > 0 { head += "content-length: \(bodyCount)\r\n" }
        return head + "\r\n"
    }

    /// An idle connection (`reused`), or a new one.
    func takeConnection() throws(S3Error) -> (HTTPConnection, reused: Bool) {
        if let reused = lock.withLock({ idle.popLast() }) { return (reused, true) }
        return (try HTTPConnection(host: location.host, port: location.port, timeout: timeout), false)
    }

    /// Keeps a connection whose last answer was read to its end, for the next request.
    func giveBack(_ connection: HTTPConnection) {
        guard connection.reusable else { return }
        lock.withLock { if idle.count < 16 { idle.append(connection) } }
    }

    /// `Code` and `Message` from S3's error document, as an error.
    func failure(_ operation: String, _ response: HTTPResponse) -> S3Error {
        let text = response.text
        return .status(
            operation: operation, code: response.status,
            s3Code: XMLScan.value("Code", in: text) ?? "", message: XMLScan.value("Message", in: text) ?? "")
    }

    static func amzDate() -> String {
        var now = time(nil)
        var parts = tm()
        gmtime_r(&now, &parts)
        func two(_ n: Int32) -> String { n < 10 ? "0\(n)" : "\(n)" }
        return "\(parts.tm_year + 1900)\(two(parts.tm_mon + 1))\(two(parts.tm_mday))T\(two(parts.tm_hour))\(two(parts.tm_min))\(two(parts.tm_sec))Z"
    }

    public static func sha256Hex(_ bytes: [UInt8]) -> String { Checksum.hex(SHA256.hash(data: bytes)) }

    // MARK: Buckets and objects

    /// Creates the bucket unless it is there (owned by these credentials).
    public func createBucket() throws(S3Error) {
        let response = try request("PUT", key: nil, operation: "CreateBucket")
        if (200..<300).contains(response.status) { return }
        if response.status == 409, XMLScan.value("Code", in: response.text) == "BucketAlreadyOwnedByYou" { return }
        throw failure("CreateBucket", response)
    }

    public enum PutOutcome: Sendable, Equatable {
        case stored(etag: String)
        /// `ifAbsent` and the key existed: nothing was written.
        case exists
    }

    /// PUT of a whole object. `ifAbsent`: `If-None-Match: *`, so an object that is
    /// there is never replaced.
    public func put(_ key: String, body: RequestBody, sha256: String, ifAbsent: Bool) throws(S3Error) -> PutOutcome {
        let response = try request(
            "PUT", key: key, headers: ifAbsent ? [("if-none-match", "*")] : [], body: body, payloadHash: sha256, operation: "PutObject")
        if response.status == 412 { return .exists }
        guard (200..<300).contains(response.status) else { throw failure("PutObject", response) }
        return .stored(etag: response.header("ETag") ?? "")
    }

    /// The object's size, nil when there is none.
    public func size(_ key: String) throws(S3Error) -> Int64? {
        let response = try request("HEAD", key: key, operation: "HeadObject")
        if response.status == 404 { return nil }
        guard (200..<300).contains(response.status) else { throw failure("HeadObject", response) }
        guard let size = response.header("Content-Length").flatMap({ Int64($0) }) else {
            throw .malformed(operation: "HeadObject", detail: "no Content-Length")
        }
        return size
    }

    /// Streams the object's bytes (from `range`, when given) to `sink`; false when there is no such object.
    public func get(
        _ key: String, range: ClosedRange<Int64>? = nil, sink: (UnsafeRawBufferPointer) throws(S3Error) -> Void
    ) throws(S3Error) -> Bool {
        let headers = range.map { [("range", "bytes=\($0.lowerBound)-\($0.upperBound)")] } ?? []
        let response = try withoutActuallyEscaping(sink) { (escapable) throws(S3Error) in
            try request("GET", key: key, headers: headers, operation: "GetObject", sink: escapable)
        }
        if response.status == 404 { return false }
        guard (200..<300).contains(response.status) else { throw failure("GetObject", response) }
        return true
    }

    /// Copies an object within the bucket, on the store's side (up to 5 GiB, S3's
    /// limit for one copy).
    public func copy(from source: String, to key: String) throws(S3Error) {
        let sourcePath = "/" + SigV4.encode(location.bucket) + "/" + SigV4.encode(source, keepSlash: true)
        let response = try request("PUT", key: key, headers: [("x-amz-copy-source", sourcePath)], operation: "CopyObject")
        guard (200..<300).contains(response.status), XMLScan.value("Code", in: response.text) == nil else {
            throw failure("CopyObject", response)
        }
    }

    /// Removes the object; S3 answers the same whether it was there or not.
    public func delete(_ key: String) throws(S3Error) {
        let response = try request("DELETE", key: key, operation: "DeleteObject")
        guard (200..<300).contains(response.status) || response.status == 404 else { throw failure("DeleteObject", response) }
    }

    public struct Listed: Sendable, Equatable {
        public var key: String
        public var size: Int64

        public init(key: String, size: Int64) {
            self.key = key
            self.size = size
        }
    }

    /// Every object whose key starts with `prefix` (ListObjectsV2, page by page).
    public func list(prefix: String) throws(S3Error) -> [Listed] {
        var found: [Listed] = []
        var token: String?
        repeat {
            var query = [("list-type", "2"), ("prefix", prefix), ("max-keys", "1000")]
            if let token { query.append(("continuation-token", token)) }
            let response = try request("GET", key: nil, query: query, operation: "ListObjectsV2")
            guard (200..<300).contains(response.status) else { throw failure("ListObjectsV2", response) }
            let text = response.text
            for entry in XMLScan.elements("Contents", in: text) {
                guard let key = XMLScan.value("Key", in: entry), let size = XMLScan.value("Size", in: entry).flatMap({ Int64($0) }) else {
                    throw .malformed(operation: "ListObjectsV2", detail: "an entry without Key or Size")
                }
                found.append(Listed(key: key, size: size))
            }
            token = XMLScan.value("IsTruncated", in: text) == "true" ? XMLScan.value("NextContinuationToken", in: text) : nil
        } while token != nil
        return found
    }
}
