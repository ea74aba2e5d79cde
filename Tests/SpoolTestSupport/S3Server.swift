import Foundation

/// One real S3 server (Ceph RGW, `scripts/s3`) for the whole test process,
/// started on first use and stopped when the process exits. Tests keep apart
/// by using buckets of their own (`bucketName`).
public enum S3Server {
    /// The `AWS_*` variables that reach it.
    public static func environment() throws -> [String: String] {
        try shared.get()
    }

    /// A bucket name no other test uses: `spool-<what>-<random>`.
    public static func bucketName(_ what: String) -> String {
        "spool-\(what.lowercased().prefix(20))-\(UUID().uuidString.prefix(8).lowercased())"
    }

    private static let shared = ScriptedServer.start("s3")
}

/// One throwaway PostgreSQL (`scripts/pg`) for the whole test process, started on
/// first use and stopped at exit. Tests keep apart by databases of their own.
public enum PostgresServer {
    /// `postgres://…` for a new, empty database no other test uses.
    public static func database(_ what: String) throws -> String {
        let base = try shared.get()["SPOOL_DATABASE"] ?? ""
        let name = "spool_\(what.lowercased().prefix(20))_\(UUID().uuidString.prefix(8).lowercased())"
        guard let slash = base.lastIndex(of: "/"), let at = base.lastIndex(of: "@") else {
            throw ScriptedServerError("scripts/pg printed \(base)")
        }
        let hostPort = base[base.index(after: at)..<slash].split(separator: ":")
        let psql = Process()
        psql.executableURL = URL(fileURLWithPath: "/usr/bin/psql")
        psql.arguments = ["-q", "-h", String(hostPort[0]), "-p", String(hostPort.last ?? "5432"), "-U", "spool", "-d", "spool",
                          "-v", "ON_ERROR_STOP=1", "-c", "CREATE DATABASE \(name)"]
        psql.environment = ["PGPASSWORD": "spoolpassword", "PATH": "/usr/bin:/bin"]
        try psql.run()
        while psql.isRunning { usleep(10_000) }
        guard psql.terminationStatus == 0 else { throw ScriptedServerError("CREATE DATABASE \(name) failed") }
        return base[...slash] + name
    }

    private static let shared = ScriptedServer.start("pg")
}

/// Runs `scripts/<name> up DIR` once and `down` at exit; its exports, parsed.
enum ScriptedServer {
    static let repository: String = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().path

    static func start(_ name: String) -> Result<[String: String], any Error> {
        let directory = NSTemporaryDirectory() + "spool-\(name)-\(getpid())"
        do {
            let output = try script(name, "up", directory)
            guard let line = output.split(separator: "\n").last(where: { $0.hasPrefix("export ") }) else {
                throw ScriptedServerError("scripts/\(name) up printed no exports: \(output)")
            }
            var environment: [String: String] = [:]
            for pair in line.dropFirst(7).split(separator: " ") {
                let parts = pair.split(separator: "=", maxSplits: 1)
                if parts.count == 2 { environment[String(parts[0])] = String(parts[1]) }
            }
            downAtExit.append((name, directory))
            if downAtExit.count == 1 {
                atexit { for (name, directory) in ScriptedServer.downAtExit { _ = try? ScriptedServer.script(name, "down", directory) } }
            }
            return .success(environment)
        } catch {
            return .failure(error)
        }
    }

    /// Servers to stop at exit. Written once per server, by `start`, which runs
    /// inside each server's lazy `static let` (initialised once, under Swift's lock).
    nonisolated(unsafe) static var downAtExit: [(String, String)] = []

    @discardableResult
    static func script(_ name: String, _ verb: String, _ directory: String) throws -> String {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/bin/bash")
        process.arguments = [repository + "/scripts/" + name, verb, directory]
        // A file, not a pipe: the daemons it starts would hold a pipe open for good.
        let outPath = directory + "-\(verb).out"
        _ = FileManager.default.createFile(atPath: outPath, contents: nil)
        defer { try? FileManager.default.removeItem(atPath: outPath) }
        process.standardOutput = FileHandle(forWritingAtPath: outPath)
        process.standardError = FileHandle.standardError
        try process.run()
        // Polled, as IntegrationTests' run() does: waitUntilExit can miss the exit
        // when called off the main thread in the test runner.
        while process.isRunning { usleep(20_000) }
        let data = FileManager.default.contents(atPath: outPath) ?? Data()
        guard process.terminationStatus == 0 else { throw ScriptedServerError("scripts/\(name) \(verb) exited \(process.terminationStatus)") }
        return String(decoding: data, as: UTF8.self)
    }
}

public struct ScriptedServerError: Error, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}
