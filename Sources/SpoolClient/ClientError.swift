import SpoolProtocol
import SpoolSystem

/// Why a client operation failed, as the user should read it.
public enum ClientError: Error, CustomStringConvertible, Sendable {
    case badAddress(String)
    case connect(String, SystemError)
    case connectionLost(String)
    case protocolViolation(String)
    case refused(Reply)
    case file(SystemError)
    /// An HTTP answer other than the one asked for: its status and its message.
    case http(Int, String)
    /// What was written does not hash to what the server said it stores.
    case verification(String)
    /// The TLS handshake failed or could not start: why, in words.
    case tls(String)

    public var description: String {
        switch self {
        case .badAddress(let text): "bad server address \"\(text)\": use HOST:PORT"
        case .connect(let address, let error): "cannot connect to \(address): \(error)"
        case .connectionLost(let detail): "connection lost: \(detail)"
        case .protocolViolation(let detail): "unexpected reply from server: \(detail)"
        case .refused(let reply): "server said: \(reply.code.rawValue) \(reply.text)"
        case .file(let error): error.description
        case .http(let status, let message): "server answered \(status)\(message.isEmpty ? "" : ": " + message)"
        case .verification(let detail): detail
        case .tls(let detail): "TLS: \(detail)"
        }
    }

    /// Errors worth retrying later (the network, a busy server) as opposed to permanent refusals.
    public var isTransient: Bool {
        switch self {
        case .connect, .connectionLost: true
        case .refused(let reply): reply.kind == 4
        case .http(let status, _): status == 503 || status == 507 || status == 408
        case .verification: true
        case .badAddress, .protocolViolation, .file, .tls: false
        }
    }
}
