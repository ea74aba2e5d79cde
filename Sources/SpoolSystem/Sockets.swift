import CSpoolSys

#if canImport(Glibc)
import Glibc
#endif

/// Blocking TCP connections, for the client and for the S3 store's connections.
public enum Sockets {
    /// Connects to `host`:`port` (each address it resolves to, in turn), with Nagle
    /// off and SIGPIPE ignored (a peer that goes away mid-send is an error, not a
    /// signal that kills the process). Errors name the call, not the address (the
    /// caller says where it was connecting). `timeout`, in seconds: each send and receive
    /// on the socket fails after that long without progress.
    public static func connect(host: String, port: Int, timeout: Int? = nil) throws(SystemError) -> Int32 {
        _ = spool_ignore_sigpipe()
        var hints = addrinfo()
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        var result: UnsafeMutablePointer<addrinfo>?
        guard getaddrinfo(host, String(port), &hints, &result) == 0, let first = result else {
            throw SystemError("resolve", host, errno: EHOSTUNREACH)
        }
        defer { freeaddrinfo(result) }
        var lastError = SystemError("connect", errno: ECONNREFUSED)
        var info: UnsafeMutablePointer<addrinfo>? = first
        while let candidate = info {
            info = candidate.pointee.ai_next
            let s = socket(candidate.pointee.ai_family, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
            guard s >= 0 else { continue }
            if let timeout {
                var limit = timeval(tv_sec: timeout, tv_usec: 0)
                setsockopt(s, SOL_SOCKET, SO_RCVTIMEO, &limit, socklen_t(MemoryLayout<timeval>.size))
                setsockopt(s, SOL_SOCKET, SO_SNDTIMEO, &limit, socklen_t(MemoryLayout<timeval>.size))
            }
            guard Glibc.connect(s, candidate.pointee.ai_addr, candidate.pointee.ai_addrlen) == 0 else {
                lastError = .last("connect")
                Glibc.close(s)
                continue
            }
            var one: Int32 = 1
            setsockopt(s, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
            return s
        }
        throw lastError
    }

    /// Sends every byte (a short send goes on where it stopped); a peer that went
    /// away is an error (EPIPE), never a SIGPIPE.
    public static func sendAll(_ fd: Int32, _ bytes: [UInt8]) throws(SystemError) {
        var sent = 0
        while sent < bytes.count {
            let n = bytes.withUnsafeBytes { Glibc.send(fd, $0.baseAddress! + sent, bytes.count - sent, Int32(MSG_NOSIGNAL)) }
            if n < 0 {
                if currentErrno() == EINTR { continue }
                throw .last("send")
            }
            sent += n
        }
    }
}
