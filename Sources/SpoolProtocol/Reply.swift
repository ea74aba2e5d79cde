/// A reply line: a three-digit code, then a human-readable text.
///
/// `CODE SP text` ends a reply; `CODE-text` is a continuation line of a multi-line
/// reply (as in FTP and SMTP), so a reader knows without a lookup table when a
/// reply is over. Structured values travel as `key=value` tokens inside the text.
public struct Reply: Equatable, Sendable, CustomStringConvertible {
    public var code: ReplyCode
    public var text: String
    /// False for the continuation lines of a multi-line reply.
    public var isLast: Bool

    public init(_ code: ReplyCode, _ text: String, isLast: Bool = true) {
        self.code = code
        self.text = text
        self.isLast = isLast
    }

    /// The line as sent, with its LF.
    public var line: String {
        "\(code.rawValue)\(isLast ? " " : "-")\(text)\n"
    }

    public var description: String { String(line.dropLast()) }

    /// The reply class: 1 preliminary, 2 success, 4 transient failure, 5 permanent failure.
    public var kind: Int { code.rawValue / 100 }
    public var isSuccess: Bool { kind == 1 || kind == 2 }

    /// The `key=value` tokens of the text, values percent-decoded.
    public var fields: [String: String] {
        // On the bytes, not Characters: the client reads two replies per upload,
        // and splitting by grapheme was a tenth of its CPU on small files.
        var result: [String: String] = [:]
        for token in text.utf8.split(separator: UInt8(ascii: " ")) {
            guard let eq = token.firstIndex(of: UInt8(ascii: "=")) else { continue }
            let key = String(decoding: token[..<eq], as: UTF8.self)
            let raw = token[token.index(after: eq)...]
            if raw.contains(UInt8(ascii: "%")), let decoded = PercentCoding.decodeBytes(String(decoding: raw, as: UTF8.self)),
                let text = String(validating: decoded, as: UTF8.self)
            {
                result[key] = text
            } else {
                result[key] = String(decoding: raw, as: UTF8.self)
            }
        }
        return result
    }

    /// Parses one reply line (without its line ending).
    public static func parse(_ line: Substring) -> Reply? {
        let bytes = Array(line.utf8)
        guard bytes.count >= 3, bytes[0...2].allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }) else { return nil }
        guard let value = Int(String(line.prefix(3))) else { return nil }
        let code = ReplyCode(rawValue: value) ?? .unknown(value)
        if bytes.count == 3 { return Reply(code, "") }
        let separator = bytes[3]
        guard separator == UInt8(ascii: " ") || separator == UInt8(ascii: "-") else { return nil }
        let text = String(decoding: bytes[4...], as: UTF8.self)
        return Reply(code, text, isLast: separator == UInt8(ascii: " "))
    }

    /// A multi-line reply: every line but the last is a continuation.
    public static func lines(_ code: ReplyCode, _ texts: [String]) -> [Reply] {
        texts.enumerated().map { index, text in
            Reply(code, text, isLast: index == texts.count - 1)
        }
    }
}

/// Every code the server sends, in one place (mirrored in docs/PROTOCOL.md).
public enum ReplyCode: Equatable, Hashable, Sendable {
    /// 150: upload accepted; send the body bytes now.
    case sendBody
    /// 200: command succeeded.
    case ok
    /// 211: one upload's status (STATUS, WATCH).
    case uploadStatus
    /// 212: a list of uploads (LIST, FIND).
    case uploadList
    /// 213: server-wide figures (STATS).
    case serverStats
    /// 214: help text.
    case help
    /// 220: greeting on connect.
    case ready
    /// 221: closing the connection after QUIT.
    case closing
    /// 235: authenticated.
    case authenticated
    /// 250: upload stored durably and verified.
    case stored
    /// 421: service shutting down or too busy; try again later.
    case unavailable
    /// 450: the upload is being written by another connection; try again later.
    case busy
    /// 451: local error while storing; try again later.
    case storageError
    /// 452: not enough free space for this upload now; try again later.
    case insufficientStorage
    /// 453: HEALTH: the server runs but should not be sent traffic now (a check failed).
    case notReady
    /// 500: the line is not a command (unknown verb, too long, not UTF-8).
    case badLine
    /// 501: the command's arguments are invalid.
    case badArguments
    /// 505: protocol version not supported.
    case unsupportedVersion
    /// 530: this command needs authentication (AUTH) first.
    case authenticationRequired
    /// 535: the token was not accepted.
    case authenticationFailed
    /// 550: no such upload to resume (or it can no longer be resumed).
    case notFound
    /// 552: the upload exceeds the size limit or the token's quota.
    case exceedsLimit
    /// 553: the server's policy (its pre-create hook) does not take this upload.
    case notAllowed
    /// 554: the received bytes do not match the declared SHA-256.
    case checksumMismatch
    /// A code this build does not know (from a newer server).
    case unknown(Int)

    public init?(rawValue: Int) {
        switch rawValue {
        case 150: self = .sendBody
        case 200: self = .ok
        case 211: self = .uploadStatus
        case 212: self = .uploadList
        case 213: self = .serverStats
        case 214: self = .help
        case 220: self = .ready
        case 221: self = .closing
        case 235: self = .authenticated
        case 250: self = .stored
        case 421: self = .unavailable
        case 450: self = .busy
        case 451: self = .storageError
        case 452: self = .insufficientStorage
        case 453: self = .notReady
        case 500: self = .badLine
        case 501: self = .badArguments
        case 505: self = .unsupportedVersion
        case 530: self = .authenticationRequired
        case 535: self = .authenticationFailed
        case 550: self = .notFound
        case 552: self = .exceedsLimit
        case 553: self = .notAllowed
        case 554: self = .checksumMismatch
        default: return nil
        }
    }

    public var rawValue: Int {
        switch self {
        case .sendBody: 150
        case .ok: 200
        case .uploadStatus: 211
        case .uploadList: 212
        case .serverStats: 213
        case .help: 214
        case .ready: 220
        case .closing: 221
        case .authenticated: 235
        case .stored: 250
        case .unavailable: 421
        case .busy: 450
        case .storageError: 451
        case .insufficientStorage: 452
        case .notReady: 453
        case .badLine: 500
        case .badArguments: 501
        case .unsupportedVersion: 505
        case .authenticationRequired: 530
        case .authenticationFailed: 535
        case .notFound: 550
        case .exceedsLimit: 552
        case .notAllowed: 553
        case .checksumMismatch: 554
        case .unknown(let value): value
        }
    }
}
