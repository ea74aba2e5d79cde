// Build-time tool: turns migrations/*.sql into a Swift source file, so the built
// binaries carry the schema while migrations/ stays its one source of truth.
// Usage: EmbedMigrationsTool <output.swift> <file.sql>...
import Foundation

let arguments = CommandLine.arguments.dropFirst()
guard let output = arguments.first else {
    FileHandle.standardError.write(Data("usage: EmbedMigrationsTool OUTPUT.swift FILE.sql...\n".utf8))
    exit(2)
}

var entries: [String] = []
for path in arguments.dropFirst().sorted() {
    let url = URL(fileURLWithPath: path)
    guard let sql = try? String(contentsOf: url, encoding: .utf8) else {
        FileHandle.standardError.write(Data("EmbedMigrationsTool: cannot read \(path) as UTF-8\n".utf8))
        exit(1)
    }
    // A raw string delimiter longer than any run of # in the file keeps the text verbatim.
    var longestRun = 0
    var run = 0
    for ch in sql {
        run = ch == "#" ? run + 1 : 0
        longestRun = max(longestRun, run)
    }
    let hashes = String(repeating: "#", count: longestRun + 1)
    entries.append(
        "        (file: \"\(url.lastPathComponent)\", sql: \(hashes)\"\"\"\n\(sql)\n\"\"\"\(hashes)),"
    )
}

let source = """
    // Generated at build time from migrations/*.sql by EmbedMigrationsTool. Do not edit.
    enum EmbeddedMigrations {
        static let files: [(file: String, sql: String)] = [
    \(entries.joined(separator: "\n"))
        ]
    }

    """
do {
    try source.write(to: URL(fileURLWithPath: output), atomically: true, encoding: .utf8)
} catch {
    FileHandle.standardError.write(Data("EmbedMigrationsTool: cannot write \(output): \(error)\n".utf8))
    exit(1)
}
