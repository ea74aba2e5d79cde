import SpoolSystem

/// What can go wrong talking to an S3-compatible store, with what to tell an operator.
public enum S3Error: Error, CustomStringConvertible, Sendable, Equatable {
    /// The endpoint could not be reached, or the connection broke.
    case transport(SystemError)
    /// The store answered with an error: HTTP status, S3's error code and message.
    case status(operation: String, code: Int, s3Code: String, message: String)
    /// An answer that is not what S3 sends.
    case malformed(operation: String, detail: String)
    /// A setting that cannot work (`--objects`, the `AWS_*` variables).
    case configuration(String)

    public var description: String {
        switch self {
        case .transport(let error): "S3 store unreachable: \(error)"
        case .status(let operation, let code, let s3Code, let message):
            "S3 \(operation) failed: \(code) \(s3Code)\(message.isEmpty ? "" : ": \(message)")"
        case .malformed(let operation, let detail): "S3 \(operation): unexpected answer (\(detail))"
        case .configuration(let text): text
        }
    }

    /// The HTTP status of a `.status` error.
    public var httpStatus: Int? {
        if case .status(_, let code, _, _) = self { return code }
        return nil
    }
}
