// Build-time tool: turns files of the repository into Swift source, so the built
// binaries carry them while the files stay their one source of truth.
// Usage: EmbedTool migrations <output.swift> <file.sql>...   (migrations/*.sql)
//        EmbedTool web <output.swift> <file>...              (Sources/SpoolWeb/Resources)
import Foundation

func fail(_ message: String) -> Never {
    FileHandle.standardError.write(Data("EmbedTool: \(message)\n".utf8))
    exit(1)
}

/// The text as a Swift raw string literal: a delimiter longer than any run of # in it keeps it verbatim.
func literal(_ text: String) -> String {
    var longestRun = 0
    var run = 0
    for ch in text {
        run = ch == "#" ? run + 1 : 0
        longestRun = max(longestRun, run)
    }
    let hashes = String(repeating: "#", count: longestRun + 1)
    return "\(hashes)\"\"\"\n\(text)\n\"\"\"\(hashes)"
}

func read(_ path: String) -> String {
    guard let text = try? String(contentsOf: URL(fileURLWithPath: path), encoding: .utf8) else { fail("cannot read \(path) as UTF-8") }
    return text
}

/// gzip -9 of the file, base64, or nil when gzip is not there (the server then serves it uncompressed).
func gzipped(_ path: String) -> String? {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: "/bin/gzip")
    process.arguments = ["-9", "-n", "-c", path]
    let pipe = Pipe()
    process.standardOutput = pipe
    guard (try? process.run()) != nil else { return nil }
    let data = pipe.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    return process.terminationStatus == 0 ? data.base64EncodedString() : nil
}

var arguments = Array(CommandLine.arguments.dropFirst())
guard arguments.count >= 2, ["migrations", "web"].contains(arguments[0]) else {
    FileHandle.standardError.write(Data("usage: EmbedTool migrations|web OUTPUT.swift FILE...\n".utf8))
    exit(2)
}
let (kind, output) = (arguments[0], arguments[1])
let files = arguments.dropFirst(2).sorted()

let source: String
if kind == "migrations" {
    let entries = files.map { path in
        "        (file: \"\(URL(fileURLWithPath: path).lastPathComponent)\", sql: \(literal(read(path)))),"
    }
    source = """
        // Generated at build time from migrations/*.sql by EmbedTool. Do not edit.
        enum EmbeddedMigrations {
            static let files: [(file: String, sql: String)] = [
        \(entries.joined(separator: "\n"))
            ]
        }

        """
} else {
    let entries = files.map { path in
        let gzip = gzipped(path).map { "\"\($0)\"" } ?? "nil"
        return "        (file: \"\(URL(fileURLWithPath: path).lastPathComponent)\", text: \(literal(read(path))), gzipBase64: \(gzip)),"
    }
    source = """
        // Generated at build time from Sources/SpoolWeb/Resources by EmbedTool. Do not edit.
        enum EmbeddedWeb {
            static let files: [(file: String, text: String, gzipBase64: String?)] = [
        \(entries.joined(separator: "\n"))
            ]
        }

        """
}
do {
    try source.write(to: URL(fileURLWithPath: output), atomically: true, encoding: .utf8)
} catch {
    fail("cannot write \(output): \(error)")
}
