import SpoolSystem

#if canImport(Glibc)
import Glibc
#endif

/// sd_notify(3) without libsystemd: one datagram of `KEY=VALUE` lines to the
/// socket NOTIFY_SOCKET names (a path, or `@name` for the abstract namespace).
/// Under `Type=notify` systemd waits for `READY=1` before it counts the service
/// as started, and shows the last `STATUS=` in `systemctl status`.
struct SystemdNotifier {
    private let fd: Int32
    private var address: sockaddr_un
    private let length: socklen_t
    /// As NOTIFY_SOCKET gave it: handed on to a new master on USR2.
    let socketPath: String

    /// The notifier NOTIFY_SOCKET asks for, or nil when it is unset (not under
    /// systemd) or names no usable socket. The variable is removed from the
    /// environment so that nothing this process starts reports in its name.
    static func fromEnvironment() -> SystemdNotifier? {
        guard let value = getenv("NOTIFY_SOCKET").map({ String(cString: $0) }) else { return nil }
        unsetenv("NOTIFY_SOCKET")
        return SystemdNotifier(socketPath: value)
    }

    init?(socketPath: String) {
        var path = Array(socketPath.utf8)
        guard !path.isEmpty else { return nil }
        if path[0] == UInt8(ascii: "@") { path[0] = 0 }  // the abstract namespace
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        let capacity = MemoryLayout.size(ofValue: address.sun_path)
        // A path must leave room for its NUL; an abstract name has none.
        guard path.count < capacity || (path[0] == 0 && path.count <= capacity) else { return nil }
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            raw.copyBytes(from: path)
        }
        let fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { return nil }
        self.fd = fd
        self.socketPath = socketPath
        self.address = address
        let pathOffset = MemoryLayout<sockaddr_un>.offset(of: \.sun_path) ?? 2
        self.length = socklen_t(pathOffset + path.count + (path[0] == 0 ? 0 : 1))
    }

    /// Sends `fields` (`READY=1`, `STATUS=…`) as one datagram; returns false if it
    /// could not be sent. Never waits: a datagram socket's queue is short (10 by
    /// default), and a reader that stopped reading must not stop the master's loop.
    @discardableResult
    func send(_ fields: [String]) -> Bool {
        let message = Array((fields.joined(separator: "\n") + "\n").utf8)
        var address = self.address
        let sent = message.withUnsafeBytes { raw in
            withUnsafePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                    sendto(fd, raw.baseAddress, raw.count, Int32(MSG_NOSIGNAL | MSG_DONTWAIT), $0, length)
                }
            }
        }
        return sent == message.count
    }

    /// The descriptor, for a forked worker to close (it must never report for the master).
    var descriptor: Int32 { fd }
}
