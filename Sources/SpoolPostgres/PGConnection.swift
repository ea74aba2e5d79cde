import Crypto
import SpoolProtocol
import SpoolStore
import SpoolSystem

#if canImport(Glibc)
import Glibc
#endif

/// One blocking connection speaking PostgreSQL's frontend/backend protocol
/// (version 3): password login (SCRAM-SHA-256, MD5 or clear text, as the
/// server asks), simple queries for scripts and transaction control, and the
/// extended protocol (Parse, Bind, Execute, Sync in one write) for statements
/// with parameters, every value in text format. The catalog calls it from the
/// store's thread pool, where blocking is the rule; it starts no thread, so the
/// master can use it before it forks, as it does SQLite.
final class PGConnection {
    private let fd: Int32
    private var input: [UInt8] = []
    private var start = 0
    let url: PostgresURL
    /// False once the connection broke: the engine opens another.
    private(set) var usable = true
    /// Statement texts parsed once under a name of this connection, then only bound
    /// and executed: the catalog runs the same few dozen texts over and over.
    /// Bounded (texts built from filters vary): past `maxPrepared`, unnamed each time.
    private var prepared: [String: String] = [:]
    /// Names given in the batch being sent: forgotten if it fails (the server skips
    /// the rest of a batch after an error, so some were never made).
    private var unconfirmed: [String] = []
    private var nextName = 1
    static let maxPrepared = 256

    /// A value as the text PostgreSQL reads it, and its type: 25 (text), or 0 to
    /// let the server infer it from where it stands (an integer may be an int4
    /// argument or a bigint column), as it does for a literal.
    typealias Parameter = (text: [UInt8]?, type: UInt32)

    init(_ url: PostgresURL, timeout: Int) throws(StoreError) {
        self.url = url
        do {
            fd = try Sockets.connect(host: url.host, port: url.port, timeout: timeout)
        } catch {
            throw .postgres(operation: "connect to \(url.redacted)", code: "", message: error.description)
        }
        do {
            try login()
        } catch {
            Glibc.close(fd)
            throw error
        }
    }

    deinit {
        if usable { _ = try? send([UInt8(ascii: "X"), 0, 0, 0, 4]) }  // Terminate
        Glibc.close(fd)
    }

    // MARK: Login

    private func login() throws(StoreError) {
        var startup = Message(type: nil)
        startup.int32(196_608)  // protocol 3.0
        // Keepalives: a host that dies without closing its connections (power, network)
        // loses its leases in about 25 s instead of the system's two hours.
        let keepalive = "-c tcp_keepalives_idle=10 -c tcp_keepalives_interval=5 -c tcp_keepalives_count=3"
        for (key, value) in [("user", url.user), ("database", url.database), ("application_name", "spoold"), ("client_encoding", "UTF8"),
                             ("options", keepalive)] {
            startup.cString(key)
            startup.cString(value)
        }
        startup.byte(0)
        try send(startup.bytes)
        var scram: SCRAMClient?
        var expectedSignature = ""
        while true {
            let (type, body) = try readMessage()
            switch type {
            case UInt8(ascii: "R"):
                var reader = Reader(body)
                let code = reader.int32()
                switch code {
                case 0: break
                case 3:
                    var message = Message(type: "p")
                    message.cString(try password())
                    try send(message.bytes)
                case 5:
                    let salt = reader.bytes(4)
                    let inner = Checksum.hex(Insecure.MD5.hash(data: Array((try password() + url.user).utf8)))
                    let outer = Checksum.hex(Insecure.MD5.hash(data: Array(inner.utf8) + salt))
                    var message = Message(type: "p")
                    message.cString("md5" + outer)
                    try send(message.bytes)
                case 10:
                    var mechanisms: [String] = []
                    while let name = reader.cString(), !name.isEmpty { mechanisms.append(name) }
                    guard mechanisms.contains("SCRAM-SHA-256") else {
                        throw failure("log in", "the server offers \(mechanisms.joined(separator: ", ")), not SCRAM-SHA-256")
                    }
                    let client = SCRAMClient(password: try password())
                    scram = client
                    var message = Message(type: "p")
                    message.cString("SCRAM-SHA-256")
                    let first = Array(client.clientFirst.utf8)
                    message.int32(Int32(first.count))
                    message.append(first)
                    try send(message.bytes)
                case 11:
                    guard let client = scram else { throw failure("log in", "SASL continue before SASL start") }
                    let serverFirst = String(decoding: reader.rest(), as: UTF8.self)
                    let answer: (clientFinal: String, serverSignature: String)
                    do { answer = try client.respond(to: serverFirst) } catch { throw failure("log in", "the server's SCRAM message is malformed") }
                    expectedSignature = answer.serverSignature
                    var message = Message(type: "p")
                    message.append(Array(answer.clientFinal.utf8))
                    try send(message.bytes)
                case 12:
                    do {
                        try SCRAMClient.verify(serverFinal: String(decoding: reader.rest(), as: UTF8.self), expected: expectedSignature)
                    } catch {
                        throw failure("log in", "the server could not prove it knows the password (SCRAM signature)")
                    }
                default:
                    throw failure("log in", "authentication method \(code) is not supported (use scram-sha-256 or md5)")
                }
            case UInt8(ascii: "E"):
                throw Self.serverError("log in to \(url.redacted)", body)
            case UInt8(ascii: "Z"):
                return
            default:
                continue  // ParameterStatus, BackendKeyData, notices
            }
        }
    }

    private func password() throws(StoreError) -> String {
        guard let password = url.password else {
            throw failure("log in", "the server asks for a password: put it in the URL or PGPASSWORD")
        }
        return password
    }

    // MARK: Statements

    /// A script of statements without parameters (transaction control, migrations).
    func simpleQuery(_ sql: String) throws(StoreError) {
        var message = Message(type: "Q")
        message.cString(sql)
        try send(message.bytes)
        var failed: StoreError?
        while true {
            let (type, body) = try readMessage()
            switch type {
            case UInt8(ascii: "E"): failed = Self.serverError(Self.summary(sql), body)
            case UInt8(ascii: "Z"):
                if let failed { throw failed }
                return
            default: continue
            }
        }
    }

    /// One statement with parameters: its rows (each column's text, nil for NULL)
    /// and how many rows it changed.
    func extendedQuery(_ sql: String, _ parameters: [Parameter]) throws(StoreError) -> (rows: [[[UInt8]?]], changed: Int) {
        try exchange(statement(sql, parameters), operation: Self.summary(sql))
    }

    /// Parse, Bind and Execute of one statement, without the Sync that ends a
    /// batch: several go in one write, and one round trip (`exchange`).
    /// A text seen before is bound to its prepared statement; a new one is parsed
    /// under a new name (the types of its parameters fixed by its first values,
    /// which only ever leaves a type to the server or says text).
    func statement(_ sql: String, _ parameters: [Parameter]) -> [UInt8] {
        var bytes: [UInt8] = []
        var name = prepared[sql] ?? ""
        if name.isEmpty {
            if prepared.count < Self.maxPrepared {
                name = "s\(nextName)"
                nextName += 1
                prepared[sql] = name
                unconfirmed.append(sql)
            }
            var parse = Message(type: "P")
            parse.cString(name)
            parse.cString(sql)
            parse.int16(Int16(parameters.count))
            for parameter in parameters { parse.int32(Int32(bitPattern: parameter.type)) }
            bytes += parse.bytes
        }
        var bind = Message(type: "B")
        bind.cString("")
        bind.cString(name)
        bind.int16(0)  // every parameter in text format
        bind.int16(Int16(parameters.count))
        for parameter in parameters {
            if let text = parameter.text {
                bind.int32(Int32(text.count))
                bind.append(text)
            } else {
                bind.int32(-1)
            }
        }
        bind.int16(0)  // every result column in text format
        bytes += bind.bytes
        var execute = Message(type: "E")
        execute.cString("")
        execute.int32(0)
        return bytes + execute.bytes
    }

    /// Statements built but never sent (a transaction given up): their new names were never made.
    func forgetUnsent() {
        for sql in unconfirmed { prepared[sql] = nil }
        unconfirmed = []
    }

    /// Sends `statements` (from `statement`) and a Sync, and reads every answer:
    /// the rows of those that return rows, the change count of the last. After an
    /// error the server skips the rest up to the Sync; the error is thrown.
    func exchange(_ statements: [UInt8], operation: String) throws(StoreError) -> (rows: [[[UInt8]?]], changed: Int) {
        try send(statements + Message(type: "S").bytes)
        var rows: [[[UInt8]?]] = []
        var changed = 0
        var failed: StoreError?
        while true {
            let (type, body) = try readMessage()
            switch type {
            case UInt8(ascii: "D"):
                var reader = Reader(body)
                let count = Int(reader.int16())
                var row: [[UInt8]?] = []
                row.reserveCapacity(count)
                for _ in 0..<count {
                    let length = reader.int32()
                    row.append(length < 0 ? nil : reader.bytes(Int(length)))
                }
                rows.append(row)
            case UInt8(ascii: "C"):
                // "UPDATE 3", "INSERT 0 1", "DELETE 2", "SELECT 5": the last number.
                var reader = Reader(body)
                let tag = reader.cString() ?? ""
                changed = tag.split(separator: " ").last.flatMap { Int($0) } ?? 0
            case UInt8(ascii: "E"):
                failed = Self.serverError(operation, body)
            case UInt8(ascii: "Z"):
                if let failed {
                    for sql in unconfirmed { prepared[sql] = nil }
                    unconfirmed = []
                    throw failed
                }
                unconfirmed = []
                return (rows, changed)
            default:
                continue  // ParseComplete, BindComplete, NoData, notices
            }
        }
    }

    // MARK: Bytes

    private func send(_ bytes: [UInt8]) throws(StoreError) {
        do {
            try Sockets.sendAll(fd, bytes)
        } catch {
            usable = false
            throw .postgres(operation: "send to \(url.redacted)", code: "", message: error.description)
        }
    }

    /// The next message from the server: its type and body.
    private func readMessage() throws(StoreError) -> (UInt8, ArraySlice<UInt8>) {
        try fill(5)
        var header = Reader(input[(start + 1)..<(start + 5)])
        let length = Int(header.int32())
        guard length >= 4, length < 1 << 30 else {
            usable = false
            throw failure("read", "a message of length \(length)")
        }
        try fill(1 + length)
        let type = input[start]
        let body = input[(start + 5)..<(start + 1 + length)]
        start += 1 + length
        return (type, body)
    }

    /// Reads until `count` bytes are buffered from `start`.
    private func fill(_ count: Int) throws(StoreError) {
        if start > 0 && start == input.count {
            input.removeAll(keepingCapacity: true)
            start = 0
        }
        if input.count - start >= count { return }
        if start > 64 << 10 {
            input.removeSubrange(0..<start)
            start = 0
        }
        var chunk = [UInt8](repeating: 0, count: max(64 << 10, count))
        while input.count - start < count {
            let n = chunk.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if n < 0 && currentErrno() == EINTR { continue }
            guard n > 0 else {
                usable = false
                let why = n == 0 ? "the server closed the connection" : SystemError.last("recv").description
                throw .postgres(operation: "read from \(url.redacted)", code: "", message: why)
            }
            input.append(contentsOf: chunk[0..<n])
        }
    }

    private func failure(_ operation: String, _ message: String) -> StoreError {
        .postgres(operation: "\(operation) (\(url.redacted))", code: "", message: message)
    }

    /// An ErrorResponse's SQLSTATE and message.
    static func serverError(_ operation: String, _ body: ArraySlice<UInt8>) -> StoreError {
        var reader = Reader(body)
        var code = "", message = "", detail = ""
        while let field = reader.byte(), field != 0 {
            let value = reader.cString() ?? ""
            switch field {
            case UInt8(ascii: "C"): code = value
            case UInt8(ascii: "M"): message = value
            case UInt8(ascii: "D"): detail = value
            default: break
            }
        }
        return .postgres(operation: operation, code: code, message: detail.isEmpty ? message : "\(message) (\(detail))")
    }

    static func summary(_ sql: String) -> String {
        let flat = sql.split(whereSeparator: \.isWhitespace).joined(separator: " ")
        return flat.count > 60 ? String(flat.prefix(60)) + "…" : flat
    }
}

/// An outgoing message: a type byte (none for the startup message) and a length.
struct Message {
    private(set) var body: [UInt8] = []
    let type: UInt8?

    init(type: Character?) { self.type = type?.asciiValue }

    mutating func byte(_ value: UInt8) { body.append(value) }
    mutating func int16(_ value: Int16) { body += [UInt8(truncatingIfNeeded: value >> 8), UInt8(truncatingIfNeeded: value)] }
    mutating func int32(_ value: Int32) {
        body += [UInt8(truncatingIfNeeded: value >> 24), UInt8(truncatingIfNeeded: value >> 16),
                 UInt8(truncatingIfNeeded: value >> 8), UInt8(truncatingIfNeeded: value)]
    }
    mutating func cString(_ text: String) {
        body += text.utf8
        body.append(0)
    }
    mutating func append(_ bytes: [UInt8]) { body += bytes }

    var bytes: [UInt8] {
        let length = Int32(body.count + 4)
        let header: [UInt8] = [UInt8(truncatingIfNeeded: length >> 24), UInt8(truncatingIfNeeded: length >> 16),
                               UInt8(truncatingIfNeeded: length >> 8), UInt8(truncatingIfNeeded: length)]
        return (type.map { [$0] } ?? []) + header + body
    }
}

/// Reads a message body front to back; reading past its end gives zeros and nils.
struct Reader {
    private var bytes: ArraySlice<UInt8>

    init(_ bytes: ArraySlice<UInt8>) { self.bytes = bytes }

    mutating func byte() -> UInt8? { bytes.popFirst() }

    mutating func int16() -> Int16 {
        var value: UInt16 = 0
        for _ in 0..<2 { value = value << 8 | UInt16(bytes.popFirst() ?? 0) }
        return Int16(bitPattern: value)
    }

    mutating func int32() -> Int32 {
        var value: UInt32 = 0
        for _ in 0..<4 { value = value << 8 | UInt32(bytes.popFirst() ?? 0) }
        return Int32(bitPattern: value)
    }

    mutating func bytes(_ count: Int) -> [UInt8] {
        let taken = Array(bytes.prefix(max(0, count)))
        bytes = bytes.dropFirst(taken.count)
        return taken
    }

    mutating func cString() -> String? {
        guard let zero = bytes.firstIndex(of: 0) else { return nil }
        let text = String(decoding: bytes[..<zero], as: UTF8.self)
        bytes = bytes[(zero + 1)...]
        return text
    }

    mutating func rest() -> [UInt8] {
        defer { bytes = [] }
        return Array(bytes)
    }
}
