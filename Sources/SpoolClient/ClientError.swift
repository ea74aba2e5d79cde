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

    public var description: String {
        switch self {
        case .badAddress(let text): "bad server address \"\(text)\": use HOST:PORT"
        case .connect(let address, let error): "cannot connect to \(address): \(error)"
        case .connectionLost(let detail): "connection lost: \(detail)"
        case .protocolViolation(let detail): "unexpected reply from server: \(detail)"
        case .refused(let reply): "server said: \(reply.code.rawValue) \(reply.text)"
        case .file(let error): error.description
        }
    }

    /// Errors worth retrying later (the network, a busy server) as opposed to permanent refusals.
    public var isTransient: Bool {
        switch self {
        case .connect, .connectionLost: true
        case .refused(let reply): reply.kind == 4
        case .badAddress, .protocolViolation, .file: false
        }
    }
}
