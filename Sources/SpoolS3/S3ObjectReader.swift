#if canImport(Glibc)
import Glibc
#endif
import SpoolStore
import SpoolSystem

extension S3Client {
    /// Opens an object's bytes (`range` of them, when given) to be read a piece at
    /// a time, the connection held until the last byte; nil when there is no such
    /// object. `total` is the whole object's size, from S3's answer.
    public func openRead(_ key: String, range: Range<Int64>?) throws(S3Error) -> S3ObjectReader? {
        let headers = range.map { [("range", "bytes=\($0.lowerBound)-\($0.upperBound - 1)")] } ?? []
        let head = signedHead("GET", key: key, headers: headers)
        while true {
            let (connection, reused) = try takeConnection()
            let response: HTTPResponse
            do {
                response = try connection.begin(head: head, body: .empty)
            } catch .transport(let error) where reused {
                _ = error
                continue
            }
            guard (200..<300).contains(response.status) else {
                let whole = try connection.readBody(of: response)
                giveBack(connection)
                if whole.status == 404 { return nil }
                throw failure("GetObject", whole)
            }
            // S3 sends every object with its length: a download needs it before its first byte.
            guard let length = response.header("Content-Length").flatMap({ Int64($0.trimmingCharacters()) }) else {
                throw .malformed(operation: "GetObject", detail: "no Content-Length")
            }
            var total = length
            if response.status == 206 {
                guard let text = response.header("Content-Range"), let slash = text.lastIndex(of: "/"),
                    let whole = Int64(String(text[text.index(after: slash)...]).trimmingCharacters())
                else { throw .malformed(operation: "GetObject", detail: "a part without Content-Range") }
                total = whole
            }
            let closes = response.header("Connection")?.lowercased() == "close"
            return S3ObjectReader(client: self, connection: connection, length: length, total: total, closes: closes)
        }
    }
}

/// An object's bytes read a piece at a time (a download): each `read` blocks its
/// thread for one piece, so the caller can write it to a slow client before it
/// asks for the next, and S3 waits meanwhile (TCP's window) instead of memory
/// filling. The connection goes back to the client's idle ones once read to its end.
/// (`@unchecked Sendable`: one reader is used by one thread at a time, a download's
/// pieces being read one after another.)
public final class S3ObjectReader: ObjectStream, @unchecked Sendable {
    private let client: S3Client
    private var connection: HTTPConnection?
    private var left: Int64
    private let closes: Bool
    /// Bytes this reader gives in all (the range asked for).
    public let length: Int64
    /// The whole object's size.
    public let total: Int64

    init(client: S3Client, connection: HTTPConnection, length: Int64, total: Int64, closes: Bool) {
        self.client = client
        self.connection = connection
        self.left = length
        self.length = length
        self.total = total
        self.closes = closes
        if length == 0 { finish() }
    }

    public func read(max: Int, into sink: (UnsafeRawBufferPointer) -> Void) throws(SystemError) -> Int {
        guard let connection else { return 0 }
        do {
            let n = try connection.readSome(max: max, left: &left, closes: closes, sink)
            if left == 0 { finish() }
            return n
        } catch {
            self.connection = nil
            throw SystemError("read object", error.description, errno: EIO)
        }
    }

    /// Stops reading: a connection with bytes still unread cannot carry another request, and is closed.
    public func close() { connection = nil }

    private func finish() {
        if let connection { client.giveBack(connection) }
        connection = nil
    }
}
