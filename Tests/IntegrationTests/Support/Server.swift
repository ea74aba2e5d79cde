import Foundation
import SpoolTestSupport
import SpoolStore

/// A real `spoold serve` on 127.0.0.1, port 0, with its own data directory.
final class Server: @unchecked Sendable {
    let process = Process()
    let data: TempDirectory
    let logPath: String
    private(set) var port = 0
    /// HTTP's port (0 when started with `--http none`).
    private(set) var httpPort = 0
    let workers: Int

    var pid: Int32 { process.processIdentifier }
    var address: String { "127.0.0.1:\(port)" }
    var httpBase: String { "http://127.0.0.1:\(httpPort)" }
    var directory: DataDirectory { DataDirectory(data.path + "/data") }

    /// Starts the server and waits until every worker is ready.
    /// `wrapper` runs spoold through another program (prlimit, to lower a resource limit).
    /// `environment`: added to the test's own (SPOOL_FAULT, SPOOL_CRASH_AT).
    /// `executable`: another copy of spoold (the upgrade tests replace it on disk).
    init(
        workers: Int = 2, data: TempDirectory? = nil, arguments: [String] = [], wrapper: [String] = [],
        environment: [String: String] = [:], executable: String = Binaries.spoold
    ) throws {
        self.data = try data ?? TempDirectory()
        self.workers = workers
        // With --log-file the server writes there; otherwise the harness captures standard error.
        if let flag = arguments.firstIndex(of: "--log-file"), flag + 1 < arguments.count {
            logPath = arguments[flag + 1]
        } else {
            logPath = self.data.path + "/spoold-\(UUID().uuidString.prefix(8)).log"
        }
        _ = FileManager.default.createFile(atPath: logPath, contents: nil)
        process.executableURL = URL(fileURLWithPath: wrapper.first ?? executable)
        // A small free-space reserve unless a test sets one: a test machine's disk may be small.
        let reserve = arguments.contains("--min-free") ? [] : ["--min-free", "16M"]
        let http = arguments.contains("--http") ? [] : ["--http", "127.0.0.1:0"]
        process.arguments = Array(wrapper.dropFirst()) + (wrapper.isEmpty ? [] : [executable])
            + ["serve", "--listen", "127.0.0.1:0", "--workers", "\(workers)", "--data-dir", self.data.path + "/data"]
            + reserve + http + arguments
        if !environment.isEmpty { process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 } }
        process.standardInput = FileHandle.nullDevice
        process.standardOutput = FileHandle.nullDevice
        process.standardError = arguments.contains("--log-file")
            ? FileHandle.nullDevice : FileHandle(forWritingAtPath: logPath)
        try process.run()
        guard eventually(timeout: 30, { count("worker ready") >= workers && ports()["line"] != nil }) else {
            kill()
            throw HarnessError("spoold did not start:\n\(log())")
        }
        port = ports()["line"] ?? 0
        httpPort = ports()["http"] ?? 0
    }

    deinit {
        kill()
    }

    func log() -> String {
        (try? String(contentsOfFile: logPath, encoding: .utf8)) ?? ""
    }

    func count(_ text: String) -> Int {
        log().components(separatedBy: text).count - 1
    }

    /// The ports the master wrote to `run/spoold.ports`, by listener kind.
    func ports() -> [String: Int] {
        let text = (try? String(contentsOfFile: directory.portsFilePath, encoding: .utf8)) ?? ""
        var found: [String: Int] = [:]
        for line in text.split(separator: "\n") {
            let parts = line.split(separator: " ")
            if parts.count == 2, let port = parts[1].split(separator: ":").last.flatMap({ Int($0) }) { found[String(parts[0])] = port }
        }
        return found
    }

    /// Worker pids: the master's live children.
    /// The master's children but its short-lived database helper (`spoold-chore`)
    /// and its hook dispatcher (`spoold-hooks`).
    func workerPIDs() -> [Int32] {
        Processes.children(of: pid).filter { child in
            let name = (try? String(contentsOfFile: "/proc/\(child)/comm", encoding: .utf8)) ?? ""
            return !name.hasPrefix("spoold-chore") && !name.hasPrefix("spoold-hooks")
        }
    }

    /// The hook dispatcher's pid, if it runs.
    func dispatcherPID() -> Int32? {
        Processes.children(of: pid).first { child in
            (try? String(contentsOfFile: "/proc/\(child)/comm", encoding: .utf8))?.hasPrefix("spoold-hooks") == true
        }
    }

    func signal(_ sig: Int32) {
        Foundation.kill(pid, sig)
    }

    /// Sends TERM and waits for the master to exit; returns its exit status.
    @discardableResult
    func stop(timeout: TimeInterval = 20) throws -> Int32 {
        signal(SIGTERM)
        guard eventually(timeout: timeout, { !process.isRunning }) else {
            throw HarnessError("spoold did not stop within \(Int(timeout)) s:\n\(log())")
        }
        // Whatever a test sent, no worker may have died of its own fault: a trap or a
        // crash kills every connection the worker held. Tests kill workers only with KILL or TERM.
        let log = self.log()
        if let crash = ["ILL", "TRAP", "SEGV", "ABRT", "BUS", "FPE"].first(where: { log.contains("killed by \($0)") }) {
            throw HarnessError("a worker crashed (killed by \(crash)):\n\(log)")
        }
        return process.terminationStatus
    }

    /// Last resort in teardown: no test may leave a server behind.
    func kill() {
        let children = Processes.children(of: pid)
        for child in children { Foundation.kill(child, SIGKILL) }
        if process.isRunning { killAndReap(process) }
    }

    /// Rows as `spoold admin list --json` prints them.
    func uploads() throws -> [UploadRecord] {
        let result = try run(Binaries.spoold, ["admin", "list", "--json", "--data-dir", directory.root])
        guard result.status == 0 else { throw HarnessError("admin list failed: \(result.stderr)") }
        return try JSONDecoder().decode([UploadRecord].self, from: Data(result.stdout.utf8))
    }

    /// `spoold admin token create` with `arguments`; returns the secret.
    func createToken(_ arguments: [String]) throws -> String {
        let result = try run(Binaries.spoold, ["admin", "token", "create", "--data-dir", directory.root] + arguments)
        guard result.status == 0 else { throw HarnessError("token create: \(result.stderr)") }
        return result.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
    }

    /// Waits until the workers have noticed that tokens exist (they look every two seconds).
    /// Every worker reads whether tokens exist on its own timer, so wait until each
    /// of them (known by the pid in its greeting) has refused an anonymous client.
    func waitForAuthRequired() -> Bool {
        var refusing: Set<String> = []
        return eventually(timeout: 10) {
            guard let nc = try? RawSession(port: port), let reply = try? nc.ask("LIST") else { return false }
            if code(reply.first) == 530 { refusing.insert(nc.worker) }
            return refusing.count == workers
        }
    }
}
