import SpoolSystem

#if canImport(Glibc)
import Glibc
#endif

/// Blocking TCP for the client's two doors: the line protocol and HTTP.
enum TCP {
    /// Connects to HOST:PORT (each address it resolves to, in turn), with Nagle off.
    static func connect(_ server: String) throws(ClientError) -> Int32 {
        guard let target = HostPort(server), target.port > 0 else { throw .badAddress(server) }
        do {
            return try Sockets.connect(host: target.host, port: target.port)
        } catch {
            throw .connect(server, error)
        }
    }
}
