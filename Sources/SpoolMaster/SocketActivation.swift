import SpoolSystem

#if canImport(Glibc)
import Glibc
#endif

/// Listening sockets handed over by systemd (sd_listen_fds(3)): LISTEN_PID names
/// the process they are for, LISTEN_FDS counts them from descriptor 3, and
/// LISTEN_FDNAMES names them (`FileDescriptorName=` in the socket unit). spoold
/// takes one named `line` and at most one named `http`; sockets without those
/// names are taken in order, line protocol first.
enum SocketActivation {
    static let firstDescriptor: Int32 = 3

    /// Which descriptor serves which door; nil when nothing was handed to `pid`.
    /// Pure: reads only the given environment.
    static func plan(pid: Int32, environment: [String: String]) throws(MasterError) -> [(fd: Int32, kind: ListenerSpec.Kind)]? {
        guard let countText = environment["LISTEN_FDS"] else { return nil }
        // Variables meant for another process (a parent that did not clear them).
        guard let owner = environment["LISTEN_PID"], Int32(owner) == pid else { return nil }
        guard let count = Int(countText), count >= 1 else {
            throw .startup("socket activation: LISTEN_FDS=\(countText) is not a number of sockets")
        }
        guard count <= 3 else {
            throw .startup("socket activation: \(count) sockets were passed; spoold takes three at most, "
                + "named line (the line protocol), http and metrics (FileDescriptorName= in the socket unit)")
        }
        let names = environment["LISTEN_FDNAMES"].map { $0.split(separator: ":", omittingEmptySubsequences: false).map(String.init) } ?? []
        var kinds: [ListenerSpec.Kind?] = (0..<count).map { index in
            index < names.count ? ListenerSpec.Kind(rawValue: names[index]) : nil
        }
        let named = kinds.compactMap { $0 }
        guard Set(named).count == named.count else {
            throw .startup("socket activation: two sockets are named \(named.first { kind in named.filter { $0 == kind }.count > 1 }?.rawValue ?? "")")
        }
        var unnamed = [ListenerSpec.Kind.line, .http, .metrics].filter { !named.contains($0) }
        for index in kinds.indices where kinds[index] == nil {
            kinds[index] = unnamed.removeFirst()
        }
        let plan = kinds.enumerated().map { (fd: firstDescriptor + Int32($0.offset), kind: $0.element ?? .line) }
        guard plan.contains(where: { $0.kind == .line }) else {
            throw .startup("socket activation: no socket for the line protocol (name one line with FileDescriptorName=)")
        }
        return plan.sorted { $0.kind == .line && $1.kind != .line }
    }

    /// The sockets systemd handed to this process, checked and ready for workers,
    /// or nil when it handed none. The variables are then removed, so that nothing
    /// this process starts takes them for its own.
    static func take() throws(MasterError) -> [(kind: ListenerSpec.Kind, socket: ListenSocket)]? {
        var environment: [String: String] = [:]
        for name in ["LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"] {
            if let value = getenv(name) { environment[name] = String(cString: value) }
            unsetenv(name)
        }
        guard let plan = try plan(pid: getpid(), environment: environment) else { return nil }
        var taken: [(kind: ListenerSpec.Kind, socket: ListenSocket)] = []
        for (fd, kind) in plan {
            do {
                taken.append((kind, try ListenSocket.adopt(fd: fd)))
            } catch {
                throw .startup("socket activation (\(kind.rawValue)): \(error)")
            }
        }
        return taken
    }
}
