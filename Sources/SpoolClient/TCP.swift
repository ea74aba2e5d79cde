import CSpoolSys
import SpoolSystem

#if canImport(Glibc)
import Glibc
#endif

/// Blocking TCP for the client's two doors: the line protocol and HTTP.
enum TCP {
    /// Connects to HOST:PORT (each address it resolves to, in turn), with Nagle off.
    static func connect(_ server: String) throws(ClientError) -> Int32 {
        guard let target = HostPort(server), target.port > 0 else { throw .badAddress(server) }
        let (host, port) = (target.host, String(target.port))
        // A server that goes away mid-send must be an error to retry, not a SIGPIPE that kills us.
        _ = spool_ignore_sigpipe()
        var hints = addrinfo()
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        var result: UnsafeMutablePointer<addrinfo>?
        guard getaddrinfo(host, port, &hints, &result) == 0, let first = result else {
            throw .connect(server, SystemError("resolve", host, errno: EHOSTUNREACH))
        }
        defer { freeaddrinfo(result) }
        var lastError = SystemError("connect", errno: ECONNREFUSED)
        var info: UnsafeMutablePointer<addrinfo>? = first
        var connected: Int32 = -1
        while let candidate = info, connected < 0 {
            let s = socket(candidate.pointee.ai_family, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
            if s >= 0 {
                if Glibc.connect(s, candidate.pointee.ai_addr, candidate.pointee.ai_addrlen) == 0 {
                    connected = s
                } else {
                    lastError = .last("connect")
                    Glibc.close(s)
                }
            }
            info = candidate.pointee.ai_next
        }
        guard connected >= 0 else { throw .connect(server, lastError) }
        var one: Int32 = 1
        setsockopt(connected, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
        return connected
    }
}
