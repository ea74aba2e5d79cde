/// A control line from the client, parsed.
public enum Command: Equatable, Sendable {
    /// `HELLO <version>`: the highest protocol version the client speaks.
    case hello(version: Int)
    /// `AUTH <token>`: authenticate with an upload token.
    case auth(secret: String)
    /// `UPLOAD <size> <sha256> <name> [--at-once]`: announce an upload; the body
    /// follows the 150 reply, or the line itself when marked (or in protocol 2).
    case upload(UploadRequest)
    /// `RESUME <id> <sha256>`: continue an interrupted upload; the rest of the body follows the 150 reply.
    case resume(id: String, sha256: String)
    /// `STATUS <id>`: one upload's state and progress.
    case status(id: String)
    /// `FIND [--json] <text>`: uploads whose name contains the text or whose checksum starts with it.
    case find(text: String, json: Bool)
    /// `LIST [n] [--json]`: the newest uploads.
    case list(count: Int, json: Bool)
    /// `WATCH <id>`: progress lines until the upload ends.
    case watch(id: String)
    /// `STATS`: server-wide figures.
    case stats
    /// `HELP [command]`
    case help(topic: String?)
    /// `HEALTH`: whether the server should be sent traffic (the checks of GET /readyz).
    case health
    /// `PING`
    case ping
    /// `QUIT`
    case quit
}

extension Command {
    /// Commands that touch uploads need an authenticated client when the server requires one.
    public var needsAuthorization: Bool {
        switch self {
        case .upload, .resume, .status, .find, .list, .watch, .stats: true
        case .hello, .auth, .help, .health, .ping, .quit: false
        }
    }
}

public struct UploadRequest: Equatable, Sendable {
    /// A label chosen by the client. Never used as a path on the server.
    public var name: String
    public var size: Int64
    /// Lowercase hex SHA-256 of the whole file, declared up front; nil when the
    /// client sends it after the body instead (`UPLOAD <size> - <name>`, then `DIGEST`).
    public var sha256: String?
    /// The line says its body follows at once, without waiting for `150` (`--at-once`).
    public var bodyAtOnce: Bool

    public init(name: String, size: Int64, sha256: String?, bodyAtOnce: Bool = false) {
        self.name = name
        self.size = size
        self.sha256 = sha256
        self.bodyAtOnce = bodyAtOnce
    }

    /// The last word of an UPLOAD line whose body follows it at once.
    public static let atOnceMark = "--at-once"

    /// The control line that announces this upload.
    public var line: String {
        "UPLOAD \(size) \(sha256 ?? "-") \(PercentCoding.encode(name))\(bodyAtOnce ? " " + Self.atOnceMark : "")\n"
    }
}

/// A line that is not a valid command, with the reply it earns.
public struct CommandError: Error, Equatable, Sendable {
    public let reply: Reply
    public init(_ code: ReplyCode, _ text: String) { reply = Reply(code, text) }
}

public enum CommandParser {
    public static func parse(_ line: String) throws(CommandError) -> Command {
        let tokens = line.split(whereSeparator: { $0 == " " || $0 == "\t" })
        guard let verb = tokens.first else { throw CommandError(.badLine, "empty line; try HELP") }
        let args = tokens.dropFirst()
        switch verb.uppercased() {
        case "HELLO":
            guard args.count == 1, let version = Int(args[args.startIndex]), version > 0 else {
                throw CommandError(.badArguments, "usage: \(Help.usage["HELLO"] ?? "")")
            }
            return .hello(version: version)
        case "AUTH":
            guard args.count == 1, args[args.startIndex].utf8.count <= 256 else {
                throw CommandError(.badArguments, "usage: \(Help.usage["AUTH"] ?? "")")
            }
            return .auth(secret: String(args[args.startIndex]))
        case "UPLOAD":
            return .upload(try parseUpload(args))
        case "RESUME":
            let usage = "usage: \(Help.usage["RESUME"] ?? "")"
            guard args.count == 2 else { throw CommandError(.badArguments, usage) }
            let id = args[args.startIndex]
            guard UploadID.isValid(id) else { throw CommandError(.badArguments, "id must be a 26-character upload id; \(usage)") }
            guard let sha256 = Checksum.normalize(args[args.startIndex + 1]) else {
                throw CommandError(.badArguments, "sha256 must be 64 hexadecimal digits; \(usage)")
            }
            return .resume(id: id.uppercased(), sha256: sha256)
        case "STATUS", "WATCH":
            let name = verb.uppercased()
            guard args.count == 1, UploadID.isValid(args[args.startIndex]) else {
                throw CommandError(.badArguments, "usage: \(Help.usage[name] ?? "") (an id is 26 characters)")
            }
            let id = args[args.startIndex].uppercased()
            return name == "STATUS" ? .status(id: id) : .watch(id: id)
        case "FIND":
            var words = Array(args)
            let json = words.first == "--json"
            if json { words.removeFirst() }
            guard !words.isEmpty else { throw CommandError(.badArguments, "usage: \(Help.usage["FIND"] ?? "")") }
            return .find(text: words.joined(separator: " "), json: json)
        case "LIST":
            var count = ChatLimits.defaultList
            var json = false
            for arg in args {
                if arg == "--json" {
                    json = true
                } else if let n = Int(arg), (1...ChatLimits.maxList).contains(n) {
                    count = n
                } else {
                    throw CommandError(.badArguments, "usage: \(Help.usage["LIST"] ?? "") (n from 1 to \(ChatLimits.maxList))")
                }
            }
            return .list(count: count, json: json)
        case "STATS":
            guard args.isEmpty else { throw CommandError(.badArguments, "usage: \(Help.usage["STATS"] ?? "")") }
            return .stats
        case "HELP":
            guard args.count <= 1 else { throw CommandError(.badArguments, "usage: \(Help.usage["HELP"] ?? "")") }
            return .help(topic: args.first.map { $0.uppercased() })
        case "HEALTH":
            guard args.isEmpty else { throw CommandError(.badArguments, "usage: \(Help.usage["HEALTH"] ?? "")") }
            return .health
        case "PING":
            return .ping
        case "QUIT":
            return .quit
        default:
            let suggestion = Help.closest(to: verb.uppercased()).map { "did you mean \($0)? " } ?? ""
            throw CommandError(.badLine, "unknown command \"\(printable(verb))\"; \(suggestion)try HELP")
        }
    }

    static func parseUpload(_ args: ArraySlice<Substring>) throws(CommandError) -> UploadRequest {
        let usage = "usage: \(Help.usage["UPLOAD"] ?? "")"
        let bodyAtOnce = args.count == 4 && args[args.startIndex + 3].lowercased() == UploadRequest.atOnceMark
        guard args.count == 3 || bodyAtOnce else { throw CommandError(.badArguments, usage) }
        let sizeToken = args[args.startIndex]
        let shaToken = args[args.startIndex + 1]
        let nameToken = args[args.startIndex + 2]
        guard let size = parseSize(sizeToken) else {
            throw CommandError(.badArguments, "size must be a whole number of bytes from 0 to \(Int64.max); \(usage)")
        }
        let sha256 = Checksum.normalize(shaToken)
        guard sha256 != nil || shaToken == "-" else {
            throw CommandError(.badArguments, "sha256 must be 64 hexadecimal digits, or - to send it after the body; \(usage)")
        }
        let name = try UploadName.decode(nameToken)
        return UploadRequest(name: name, size: size, sha256: sha256, bodyAtOnce: bodyAtOnce)
    }

    /// Plain decimal digits only: no sign, no spaces, no overflow.
    public static func parseSize(_ token: Substring) -> Int64? {
        guard !token.isEmpty, token.utf8.count <= 19,
            token.utf8.allSatisfy({ $0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9") })
        else { return nil }
        return Int64(token)
    }

    /// Echoes a client's token safely inside a reply.
    static func printable(_ token: Substring) -> String {
        let clipped = token.prefix(32)
        return String(clipped.unicodeScalars.map { $0.value < 0x20 || $0.value == 0x7F ? "?" : Character($0) })
    }
}

/// Bounds on what one chat command may ask for.
public enum ChatLimits {
    public static let defaultList = 20
    public static let maxList = 1000
    public static let maxFind = 100
}

public enum Checksum {
    /// Lowercase form of a 64-digit hex SHA-256, or nil.
    public static func normalize(_ token: some StringProtocol) -> String? {
        guard token.utf8.count == 64 else { return nil }
        let lower = token.lowercased()
        guard lower.utf8.allSatisfy({ ($0 >= 48 && $0 <= 57) || ($0 >= 97 && $0 <= 102) }) else { return nil }
        return lower
    }
}

/// The rules for an upload's name: a relative, path-like label.
public enum UploadName {
    public static let maxBytes = 1024

    public static func decode(_ token: Substring) throws(CommandError) -> String {
        guard let bytes = PercentCoding.decodeBytes(token) else {
            throw CommandError(.badArguments, "name has a malformed %-escape")
        }
        guard let name = String(validating: bytes, as: UTF8.self) else {
            throw CommandError(.badArguments, "name is not valid UTF-8")
        }
        try validate(name, byteCount: bytes.count)
        return name
    }

    public static func validate(_ name: String, byteCount: Int? = nil) throws(CommandError) {
        let count = byteCount ?? name.utf8.count
        guard count > 0 else { throw CommandError(.badArguments, "name is empty") }
        guard count <= maxBytes else {
            throw CommandError(.badArguments, "name is \(count) bytes; the limit is \(maxBytes)")
        }
        guard !name.utf8.contains(where: { $0 < 0x20 || $0 == 0x7F }) else {
            throw CommandError(.badArguments, "name contains control characters")
        }
        guard !name.hasPrefix("/") else { throw CommandError(.badArguments, "name must be relative, not /...") }
        for component in name.split(separator: "/", omittingEmptySubsequences: false) {
            if component.isEmpty || component == "." || component == ".." {
                throw CommandError(.badArguments, "name has an empty, \".\" or \"..\" component")
            }
        }
    }
}

extension Checksum {
    private static let digits = Array("0123456789abcdef".utf8)

    /// Lowercase hex of a digest.
    public static func hex(_ bytes: some Sequence<UInt8>) -> String {
        var out: [UInt8] = []
        out.reserveCapacity(64)
        for byte in bytes {
            out.append(digits[Int(byte >> 4)])
            out.append(digits[Int(byte & 0x0F)])
        }
        return String(decoding: out, as: UTF8.self)
    }
}
