import SpoolProtocol
import SpoolStore

/// Where the PostgreSQL catalog is: `postgres://USER[:PASSWORD]@HOST[:PORT]/DATABASE`
/// (or `postgresql://`), percent-encoded where needed. The password may come from
/// `PGPASSWORD` instead, so it need not sit in a config file or a process list.
public struct PostgresURL: Sendable, Equatable {
    public var user: String
    public var password: String?
    public var host: String
    public var port: Int
    public var database: String

    public init(_ text: String, environment: [String: String] = [:]) throws(StoreError) {
        func bad(_ why: String) -> StoreError {
            .postgres(operation: "read --database", code: "", message: "\(why) (expected postgres://USER[:PASSWORD]@HOST[:PORT]/DATABASE)")
        }
        var rest: Substring
        if text.hasPrefix("postgres://") { rest = text.dropFirst(11) } else if text.hasPrefix("postgresql://") { rest = text.dropFirst(13) } else {
            throw bad("not a postgres:// URL")
        }
        if let query = rest.firstIndex(of: "?") {
            // TLS to the catalog (sslmode=…) is not written yet: refused rather than silently ignored.
            throw bad("options after ? (\(rest[query...])) are not supported; connections are plain TCP")
        }
        guard let at = rest.lastIndex(of: "@") else { throw bad("no USER@") }
        let credentials = rest[..<at]
        rest = rest[rest.index(after: at)...]
        guard let slash = rest.firstIndex(of: "/") else { throw bad("no /DATABASE") }
        let hostPort = rest[..<slash]
        let name = PercentCoding.decode(String(rest[rest.index(after: slash)...])) ?? ""
        guard !name.isEmpty else { throw bad("no database name") }
        if let colon = credentials.firstIndex(of: ":") {
            user = PercentCoding.decode(String(credentials[..<colon])) ?? ""
            password = PercentCoding.decode(String(credentials[credentials.index(after: colon)...]))
        } else {
            user = PercentCoding.decode(String(credentials)) ?? ""
            password = environment["PGPASSWORD"]
        }
        guard !user.isEmpty else { throw bad("no user") }
        if let colon = hostPort.lastIndex(of: ":"), !hostPort.hasSuffix("]") {
            guard let number = Int(hostPort[hostPort.index(after: colon)...]), (1...65535).contains(number) else { throw bad("bad port") }
            port = number
            host = String(hostPort[..<colon])
        } else {
            port = 5432
            host = String(hostPort)
        }
        if host.hasPrefix("[") && host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        guard !host.isEmpty else { throw bad("no host") }
        database = name
    }

    /// The URL without its password, for logs and messages.
    public var redacted: String { "postgres://\(user)@\(host.contains(":") ? "[\(host)]" : host):\(port)/\(database)" }
}
