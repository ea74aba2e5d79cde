import Foundation
import SpoolTestSupport

/// The built `spoold` and `spool`: the test runner lives in the same build products directory.
enum Binaries {
    static let directory: String = {
        let executable = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe"))
            ?? CommandLine.arguments[0]
        return URL(fileURLWithPath: executable).deletingLastPathComponent().path
    }()

    /// The repository's root, for scripts the tests drive (Tests/Clients, Tests/PowerLoss).
    static let repository: String = {
        var url = URL(fileURLWithPath: directory)
        while url.path != "/" {
            if FileManager.default.fileExists(atPath: url.path + "/Package.swift") { return url.path }
            url.deleteLastPathComponent()
        }
        return FileManager.default.currentDirectoryPath
    }()

    static var spoold: String { directory + "/spoold" }
    static var spool: String { directory + "/spool" }
}

struct Finished {
    let status: Int32
    let stdout: String
    let stderr: String
}

/// Runs a binary to completion, its output collected through files (no pipe can fill up and stall it).
func run(
    _ executable: String, _ arguments: [String], environment: [String: String] = [:], stdin: String? = nil,
    workingDirectory: String? = nil, timeout: TimeInterval = 120
) throws -> Finished {
    let dir = try TempDirectory()
    let outPath = dir.path + "/stdout", errPath = dir.path + "/stderr"
    _ = FileManager.default.createFile(atPath: outPath, contents: nil)
    _ = FileManager.default.createFile(atPath: errPath, contents: nil)
    let process = Process()
    process.executableURL = URL(fileURLWithPath: executable)
    process.arguments = arguments
    if let workingDirectory { process.currentDirectoryURL = URL(fileURLWithPath: workingDirectory) }
    var env = ProcessInfo.processInfo.environment
    // The client's resume journal: private to each run unless a test shares one on purpose.
    env["SPOOL_STATE_DIR"] = dir.path + "/state"
    env.merge(environment) { $1 }
    process.environment = env
    if let stdin {
        let inPath = dir.path + "/stdin"
        _ = FileManager.default.createFile(atPath: inPath, contents: Data(stdin.utf8))
        process.standardInput = FileHandle(forReadingAtPath: inPath)
    } else {
        process.standardInput = FileHandle.nullDevice
    }
    process.standardOutput = FileHandle(forWritingAtPath: outPath)
    process.standardError = FileHandle(forWritingAtPath: errPath)
    try process.run()
    let deadline = Date().addingTimeInterval(timeout)
    while process.isRunning && Date() < deadline { usleep(10_000) }
    if process.isRunning {
        killAndReap(process)
        throw HarnessError("\(executable) \(arguments.joined(separator: " ")) did not finish in \(Int(timeout)) s")
    }
    return Finished(
        status: process.terminationStatus,
        stdout: (try? String(contentsOfFile: outPath, encoding: .utf8)) ?? "",
        stderr: (try? String(contentsOfFile: errPath, encoding: .utf8)) ?? ""
    )
}

/// Ends a child that overran, for certain: SIGKILL, since it may have SIGTERM
/// blocked (a child inherits the mask of the test thread that spawned it; seen in
/// CI: a hung `spool` ignored `terminate()`), then polls for its end, since
/// `waitUntilExit` off the main thread can miss the exit and spin for good.
func killAndReap(_ process: Process, timeout: TimeInterval = 10) {
    kill(process.processIdentifier, SIGKILL)
    let deadline = Date().addingTimeInterval(timeout)
    while process.isRunning && Date() < deadline { usleep(10_000) }
}

struct HarnessError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

/// Polls `condition` until it holds or `timeout` passes; returns whether it held.
func eventually(timeout: TimeInterval = 10, _ condition: () throws -> Bool) rethrows -> Bool {
    let deadline = Date().addingTimeInterval(timeout)
    repeat {
        if try condition() { return true }
        usleep(20_000)
    } while Date() < deadline
    return try condition()
}
