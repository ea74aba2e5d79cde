import Foundation
import SpoolTestSupport
import Testing

/// systemd's side of the contract, played by the test: the notification socket
/// (sd_notify), listening sockets handed over (sd_listen_fds), and the real
/// `systemd-socket-activate`. No systemd runs here.
@Suite struct SystemdTests {
    /// A datagram socket standing for systemd's NOTIFY_SOCKET.
    final class NotifySocket {
        let fd: Int32
        let name: String
        private(set) var messages: [String] = []

        /// `abstract`: a name in the abstract namespace (`@name`), as systemd uses.
        init(directory: String, abstract: Bool = false) throws {
            name = abstract ? "@spool-test-\(UUID().uuidString)" : directory + "/notify"
            fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue), 0)
            var address = sockaddr_un()
            address.sun_family = sa_family_t(AF_UNIX)
            var path = Array(name.utf8)
            if abstract { path[0] = 0 }
            withUnsafeMutableBytes(of: &address.sun_path) { $0.copyBytes(from: path) }
            let length = socklen_t((MemoryLayout<sockaddr_un>.offset(of: \.sun_path) ?? 2) + path.count + (abstract ? 0 : 1))
            let rc = withUnsafePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) }
            }
            guard rc == 0 else { throw HarnessError("bind \(name): errno \(errno)") }
        }

        deinit { close(fd) }

        /// Collects datagrams until one satisfies `condition`; returns it, or nil after `timeout`.
        func wait(timeout: TimeInterval = 20, for condition: (String) -> Bool) -> String? {
            let deadline = Date().addingTimeInterval(timeout)
            var buffer = [UInt8](repeating: 0, count: 4096)
            while Date() < deadline {
                var pfd = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
                guard poll(&pfd, 1, 100) == 1 else { continue }
                let n = recv(fd, &buffer, buffer.count, 0)
                guard n > 0 else { continue }
                let message = String(decoding: buffer[0..<n], as: UTF8.self)
                messages.append(message)
                if condition(message) { return message }
            }
            return nil
        }
    }

    static func fields(_ message: String) -> [String] {
        message.split(separator: "\n").map(String.init)
    }

    @Test func notifiesReadyOnceEveryWorkerAcceptsThenReloadingAndStopping() throws {
        let directory = try TempDirectory()
        let notify = try NotifySocket(directory: directory.path)
        let server = try Server(workers: 2, environment: ["NOTIFY_SOCKET": notify.name])

        let ready = try #require(notify.wait { Self.fields($0).contains("READY=1") })
        #expect(ready.contains("STATUS=2 of 2 workers ready, 0 connections, 0 uploads in flight"), "\(ready)")
        #expect(server.count("worker ready") == 2)

        // STATUS follows what the workers hold.
        let held = try RawSession(port: server.port)
        #expect(notify.wait { $0.contains("STATUS=2 of 2 workers ready, 1 connections") } != nil, "\(notify.messages)")

        // HUP: RELOADING=1 with the monotonic clock, READY=1 once both workers are replaced.
        server.signal(SIGHUP)
        let reloading = try #require(notify.wait { Self.fields($0).contains("RELOADING=1") })
        #expect(Self.fields(reloading).contains { $0.hasPrefix("MONOTONIC_USEC=") && UInt64($0.dropFirst(15)) != nil })
        #expect(notify.wait { Self.fields($0).contains("READY=1") } != nil)
        #expect(server.count("worker replaced") == 2, "READY=1 only after every worker was replaced:\n\(server.log())")
        _ = held

        // QUIT: STOPPING=1, then the master exits.
        server.signal(SIGQUIT)
        #expect(notify.wait { Self.fields($0).contains("STOPPING=1") } != nil)
        try #require(eventually(timeout: 40) { !server.process.isRunning }, "\(server.log())")
        #expect(server.process.terminationStatus == 0)
    }

    @Test func notifiesAnAbstractSocketAndFeedsTheWatchdog() throws {
        let directory = try TempDirectory()
        let notify = try NotifySocket(directory: directory.path, abstract: true)
        let server = try Server(workers: 1, environment: ["NOTIFY_SOCKET": notify.name, "WATCHDOG_USEC": "400000"])
        #expect(notify.wait { Self.fields($0).contains("READY=1") } != nil)
        // Half the watchdog interval apart: several within a few seconds.
        var beats = notify.messages.filter { Self.fields($0).contains("WATCHDOG=1") }.count
        while beats < 3, notify.wait(timeout: 5, for: { Self.fields($0).contains("WATCHDOG=1") }) != nil { beats += 1 }
        #expect(beats >= 3)
        try server.stop()
    }

    /// Binds one listening socket per name (`line`, `http`, or `-` for unnamed),
    /// moves them to descriptors 3, 4…, writes their ports to a file, and execs the
    /// rest of its arguments with LISTEN_PID, LISTEN_FDS and LISTEN_FDNAMES set:
    /// what systemd does for a socket unit.
    static let activator = """
        import fcntl, os, socket, sys
        names, ports_file, command = sys.argv[1].split(","), sys.argv[2], sys.argv[3:]
        sockets = [socket.socket() for _ in names]
        for s in sockets:
            s.bind(("127.0.0.1", 0))
            s.listen(64)
        # Out of the way first (above 100), so that no dup2 lands on a socket not yet moved.
        high = [fcntl.fcntl(s.fileno(), fcntl.F_DUPFD, 100) for s in sockets]
        for i, fd in enumerate(high):
            os.dup2(fd, 3 + i)
            os.set_inheritable(3 + i, True)
        open(ports_file, "w").write(" ".join(str(s.getsockname()[1]) for s in sockets))
        os.environ.update(LISTEN_PID=str(os.getpid()), LISTEN_FDS=str(len(names)))
        if all(n != "-" for n in names):
            os.environ["LISTEN_FDNAMES"] = ":".join(names)
        os.execv(command[0], command)
        """

    static func activated(_ names: String, directory: TempDirectory) throws -> (Server, [Int]) {
        let portsFile = directory.path + "/activated-ports"
        let server = try Server(workers: 2, wrapper: ["/usr/bin/python3", "-c", activator, names, portsFile])
        let ports = try String(contentsOfFile: portsFile, encoding: .utf8).split(separator: " ").compactMap { Int($0) }
        return (server, ports)
    }

    @Test func servesTheSocketsItIsHandedByName() throws {
        let directory = try TempDirectory()
        let (server, ports) = try Self.activated("http,line", directory: directory)
        #expect(server.port == ports[1] && server.httpPort == ports[0], "ports file follows the names: \(ports)")
        #expect(server.count("from=systemd") == 2, "\(server.log())")

        let file = writeFile(directory.path + "/a.bin", pseudoRandomBytes(count: 100_000, seed: 5))
        let uploaded = try run(Binaries.spool, ["upload", "--quiet", "--server", server.address, file])
        #expect(uploaded.status == 0, "\(uploaded.stderr)")
        let fetched = try run("/usr/bin/curl", ["-fsS", "-o", directory.path + "/b.bin", "\(server.httpBase)/names/a.bin"])
        #expect(fetched.status == 0, "\(fetched.stderr)")
        #expect(FileManager.default.contentsEqual(atPath: file, andPath: directory.path + "/b.bin"))
        try server.stop()
    }

    @Test func unnamedSocketsAreTakenInOrder() throws {
        let directory = try TempDirectory()
        let (server, ports) = try Self.activated("-,-", directory: directory)
        #expect(server.port == ports[0] && server.httpPort == ports[1])
        #expect(try RawSession(port: ports[0]).greetingText.hasPrefix("220 "))
        try server.stop()
    }

    @Test func aDescriptorThatIsNotAListeningSocketIsRefused() throws {
        let directory = try TempDirectory()
        // Descriptor 3 is a file, not a socket: spoold must say so and bind nothing.
        let script = "import os; fd = os.open('\(directory.path)/not-a-socket', os.O_CREAT | os.O_RDWR); os.dup2(fd, 3); "
            + "os.environ.update(LISTEN_PID=str(os.getpid()), LISTEN_FDS='1'); import sys; os.execv(sys.argv[1], sys.argv[1:])"
        let result = try run("/usr/bin/python3", ["-c", script, Binaries.spoold, "serve", "--data-dir", directory.path + "/data"],
                             timeout: 30)
        #expect(result.status == 1)
        #expect(result.stderr.contains("socket activation (line): descriptor 3 is not a socket"), "\(result.stderr)")
    }

    /// Debian's systemd-socket-activate: it binds, waits for the first connection,
    /// and only then execs spoold, which serves that very connection. Driven by a
    /// bash script, which owns the tool's process from start to `wait`.
    @Test func startsOnTheFirstConnectionUnderSystemdSocketActivate() throws {
        let directory = try TempDirectory()
        try #require(FileManager.default.isExecutableFile(atPath: "/usr/bin/systemd-socket-activate"), "scripts/setup installs systemd")
        let port = try Self.freePort()
        _ = writeFile(directory.path + "/c.bin", pseudoRandomBytes(count: 1 << 20, seed: 6))
        let script = """
            cd "$1"
            systemd-socket-activate -l 127.0.0.1:\(port) --fdname=line "$2" serve --workers 1 --http none \\
                --min-free 16M --data-dir data 2> log &
            pid=$!
            for _ in $(seq 100); do grep -q "Listening on" log && break; sleep 0.1; done
            exec 3<>/dev/tcp/127.0.0.1/\(port)
            echo "greeting $(timeout 10 head -n 1 <&3)"
            "$3" upload --quiet --server 127.0.0.1:\(port) c.bin > /dev/null
            echo "upload $?"
            kill -TERM $pid
            wait $pid
            echo "exit $?"
            """
        let result = try run("/bin/bash", ["-c", script, "bash", directory.path, Binaries.spoold, Binaries.spool], timeout: 60)
        let log = (try? String(contentsOfFile: directory.path + "/log", encoding: .utf8)) ?? ""
        #expect(result.stdout.contains("greeting 220 "), "\(result.stdout)\n\(log)")
        #expect(result.stdout.contains("upload 0\n") && result.stdout.contains("exit 0\n"), "\(result.stdout)\n\(log)")
        #expect(log.contains("from=systemd") && log.contains("upload stored"), "\(log)")
    }

    /// contrib/systemd's units as an operator installs them, checked by systemd's
    /// own parser (with the built spoold in ExecStart=, which it checks exists).
    /// A misspelt setting is only a warning to it, so any output fails the test.
    @Test func unitFilesPassSystemdAnalyzeVerify() throws {
        let directory = try TempDirectory()
        let units = ["spoold.service", "spoold.socket", "spoold-http.socket"]
        for unit in units {
            let text = try String(contentsOfFile: Binaries.repository + "/contrib/systemd/" + unit, encoding: .utf8)
            try text.replacingOccurrences(of: "/usr/local/bin/spoold", with: Binaries.spoold)
                .write(toFile: directory.path + "/" + unit, atomically: true, encoding: .utf8)
        }
        let result = try run("/usr/bin/systemd-analyze", ["verify", "--man=no"] + units.map { "./" + $0 },
                             workingDirectory: directory.path, timeout: 60)
        #expect(result.status == 0 && result.stdout.isEmpty && result.stderr.isEmpty, "\(result.stdout)\(result.stderr)")
        let service = try String(contentsOfFile: directory.path + "/spoold.service", encoding: .utf8)
        for setting in ["Type=notify", "KillSignal=SIGQUIT", "ExecReload=/bin/kill -HUP $MAINPID", "NoNewPrivileges=yes",
                        "ProtectSystem=strict", "PrivateTmp=yes", "ReadWritePaths=/var/lib/spool", "User=spool"] {
            #expect(service.contains("\n" + setting + "\n"), "\(setting)")
        }
        // TimeoutStopSec must leave QUIT's graceful stop (30 s by default) time to finish.
        let stop = service.split(separator: "\n").first { $0.hasPrefix("TimeoutStopSec=") }.flatMap { Int($0.dropFirst(15)) }
        #expect((stop ?? 0) > 30)
    }

    static func freePort() throws -> Int {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let ok = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) == 0 && getsockname(fd, $0, &length) == 0 }
        }
        guard ok else { throw HarnessError("no free port") }
        return Int(UInt16(bigEndian: address.sin_port))
    }
}
