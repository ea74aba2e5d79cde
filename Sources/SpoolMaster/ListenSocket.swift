import SpoolSystem

#if canImport(Glibc)
import Glibc
#endif

/// The listening TCP socket, owned by the master and inherited by every worker.
public struct ListenSocket {
    public let fd: Int32
    public let host: String
    public let port: Int

    /// Binds and listens on a numeric address (`127.0.0.1`, `::1`, `0.0.0.0`); port 0 picks a free port.
    public static func bind(host: String, port: Int, backlog: Int32 = 1024) throws(SystemError) -> ListenSocket {
        var hints = addrinfo()
        hints.ai_flags = AI_NUMERICHOST | AI_NUMERICSERV | AI_PASSIVE
        hints.ai_family = AF_UNSPEC
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        var result: UnsafeMutablePointer<addrinfo>?
        let rc = getaddrinfo(host, String(port), &hints, &result)
        guard rc == 0, let info = result else {
            throw SystemError("resolve", "\(host) (give a numeric IPv4 or IPv6 address)", errno: EINVAL)
        }
        defer { freeaddrinfo(result) }

        let fd = socket(info.pointee.ai_family, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw .last("socket") }
        var one: Int32 = 1
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
        guard Glibc.bind(fd, info.pointee.ai_addr, info.pointee.ai_addrlen) == 0 else {
            let error = SystemError.last("bind", "\(host):\(port)")
            Glibc.close(fd)
            throw error
        }
        guard listen(fd, backlog) == 0 else {
            let error = SystemError.last("listen", "\(host):\(port)")
            Glibc.close(fd)
            throw error
        }
        wakeAcceptEverySecond(fd)
        return ListenSocket(fd: fd, host: host, port: try localAddress(fd).port)
    }

    /// A listening socket this process was handed (socket activation): checked to
    /// be a listening TCP socket, then treated as one bound here.
    public static func adopt(fd: Int32) throws(SystemError) -> ListenSocket {
        func option(_ name: Int32) -> Int32? {
            var value: Int32 = 0
            var length = socklen_t(MemoryLayout<Int32>.size)
            return getsockopt(fd, SOL_SOCKET, name, &value, &length) == 0 ? value : nil
        }
        guard let type = option(SO_TYPE) else {
            throw SystemError("descriptor", "\(fd) is not a socket", errno: currentErrno())
        }
        guard type == Int32(SOCK_STREAM.rawValue), option(SO_ACCEPTCONN) == 1 else {
            throw SystemError("descriptor", "\(fd) is not a listening stream socket", errno: ENOTSOCK)
        }
        let (host, port) = try localAddress(fd)
        _ = fcntl(fd, F_SETFD, FD_CLOEXEC)
        wakeAcceptEverySecond(fd)
        return ListenSocket(fd: fd, host: host, port: port)
    }

    /// Workers block in accept(); this timeout wakes them once a second to
    /// check on their master. It does not affect accepted connections.
    private static func wakeAcceptEverySecond(_ fd: Int32) {
        var timeout = timeval(tv_sec: 1, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
    }

    /// The numeric address and port a TCP socket is bound to.
    static func localAddress(_ fd: Int32) throws(SystemError) -> (host: String, port: Int) {
        var storage = sockaddr_storage()
        var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
        let rc = withUnsafeMutablePointer(to: &storage) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
        }
        guard rc == 0 else { throw .last("getsockname", "descriptor \(fd)") }
        var text = [CChar](repeating: 0, count: Int(INET6_ADDRSTRLEN) + 1)
        func numeric(_ text: [CChar]) -> String {
            String(decoding: text.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        }
        switch Int32(storage.ss_family) {
        case AF_INET:
            var address = withUnsafePointer(to: &storage) { $0.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { $0.pointee } }
            inet_ntop(AF_INET, &address.sin_addr, &text, socklen_t(text.count))
            return (numeric(text), Int(UInt16(bigEndian: address.sin_port)))
        case AF_INET6:
            var address = withUnsafePointer(to: &storage) { $0.withMemoryRebound(to: sockaddr_in6.self, capacity: 1) { $0.pointee } }
            inet_ntop(AF_INET6, &address.sin6_addr, &text, socklen_t(text.count))
            return (numeric(text), Int(UInt16(bigEndian: address.sin6_port)))
        default:
            throw SystemError("descriptor", "\(fd) is not an IPv4 or IPv6 socket", errno: EAFNOSUPPORT)
        }
    }

    /// `host:port`, with brackets around an IPv6 host.
    public var address: String { HostPort(host: host, port: port).description }
}
