import Foundation

/// One real S3 server (Ceph RGW, `scripts/s3`) for the whole test process,
/// started on first use and stopped when the process exits. Tests keep apart
/// by using buckets of their own (`bucketName`).
public enum S3Server {
    /// The `AWS_*` variables that reach it.
    public static func environment() throws -> [String: String] {
        switch shared {
        case .success(let environment): return environment
        case .failure(let error): throw error
        }
    }

    /// A bucket name no other test uses: `spool-<what>-<random>`.
    public static func bucketName(_ what: String) -> String {
        "spool-\(what.lowercased().prefix(20))-\(UUID().uuidString.prefix(8).lowercased())"
    }

    public static let repository: String = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().path

    private static let directory = NSTemporaryDirectory() + "spool-s3-\(getpid())"

    private static let shared: Result<[String: String], Error> = {
        do {
            let output = try script("up")
            guard let line = output.split(separator: "\n").last(where: { $0.hasPrefix("export ") }) else {
                throw S3ServerError("scripts/s3 up printed no exports: \(output)")
            }
            var environment: [String: String] = [:]
            for pair in line.dropFirst(7).split(separator: " ") {
                let parts = pair.split(separator: "=", maxSplits: 1)
                if parts.count == 2 { environment[String(parts[0])] = String(parts[1]) }
            }
            atexit { _ = try? S3Server.script("down") }
            return .success(environment)
        } catch {
            return .failure(error)
        }
    }()

    @discardableResult
    static func script(_ verb: String) throws -> String {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/bin/bash")
        process.arguments = [repository + "/scripts/s3", verb, directory]
        // A file, not a pipe: the daemons it starts would hold a pipe open for good.
        let outPath = NSTemporaryDirectory() + "spool-s3-\(getpid())-\(verb).out"
        _ = FileManager.default.createFile(atPath: outPath, contents: nil)
        defer { try? FileManager.default.removeItem(atPath: outPath) }
        process.standardOutput = FileHandle(forWritingAtPath: outPath)
        process.standardError = FileHandle.standardError
        try process.run()
        // Polled, as IntegrationTests' run() does: waitUntilExit can miss the exit
        // when called off the main thread in the test runner.
        while process.isRunning { usleep(20_000) }
        let data = FileManager.default.contents(atPath: outPath) ?? Data()
        guard process.terminationStatus == 0 else { throw S3ServerError("scripts/s3 \(verb) exited \(process.terminationStatus)") }
        return String(decoding: data, as: UTF8.self)
    }
}

public struct S3ServerError: Error, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}
