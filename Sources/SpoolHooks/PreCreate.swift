import Foundation
import SpoolSystem

/// What a pre-create hook reads on its standard input: the upload as it is
/// about to be admitted. Every key is always present (null when unknown).
public struct PreCreateRequest: Encodable, Sendable, Equatable {
    public var name: String
    /// nil: the length comes with the body (an HTTP body sent chunked, a tus upload with a deferred length).
    public var size: Int64?
    /// nil: the checksum is not declared up front.
    public var sha256: String?
    /// The client's address and port, as `ip:port` (`[ip]:port` for IPv6).
    public var client: String
    /// The authenticated token's name; nil for an anonymous upload.
    public var token: String?
    /// `line`, `http` or `tus`.
    public var door: String

    public init(name: String, size: Int64?, sha256: String?, client: String, token: String?, door: String) {
        (self.name, self.size, self.sha256, self.client, self.token, self.door) = (name, size, sha256, client, token, door)
    }

    enum CodingKeys: String, CodingKey {
        case hook, name, size, sha256, client, token
        case door = "protocol"
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(HookName.preCreate.rawValue, forKey: .hook)
        try c.encode(name, forKey: .name)
        try c.encode(size, forKey: .size)
        try c.encode(sha256, forKey: .sha256)
        try c.encode(client, forKey: .client)
        try c.encode(token, forKey: .token)
        try c.encode(door, forKey: .door)
    }

    /// One line of JSON, keys sorted, newline-terminated.
    public var json: [UInt8] { HookJSON.line(self) }
}

/// What the pre-create hook decided.
public enum PreCreateVerdict: Sendable, Equatable {
    case admit
    /// The message for the client: the hook's first line of output, or what went wrong.
    case refuse(String)

    /// Exit 0 admits. Anything else refuses: a non-zero exit with the hook's first
    /// line of standard output (or a plain message when it printed none), a hook
    /// that ran out of time, was killed or could not run. A gate that cannot
    /// decide keeps uploads out rather than letting everything in.
    public init(_ result: HookResult) {
        switch result.ending {
        case .exited(0):
            self = .admit
        case .exited(let code):
            let said = result.firstOutputLine
            self = .refuse(said.isEmpty ? "refused by this server's pre-create hook (exit \(code))" : said)
        case .signalled:
            self = .refuse("refused: this server's pre-create hook was killed before it decided")
        case .timedOut(let seconds):
            self = .refuse("refused: this server's pre-create hook did not decide within \(DurationText.format(seconds))")
        case .cannotRun:
            self = .refuse("refused: this server's pre-create hook cannot run")
        }
    }
}

enum HookJSON {
    static func line<T: Encodable>(_ value: T) -> [UInt8] {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        // Every value here is a string, number, null or a struct of them: encoding cannot fail.
        let data = (try? encoder.encode(value)) ?? Data("{}".utf8)
        return Array(data) + [0x0a]
    }
}
