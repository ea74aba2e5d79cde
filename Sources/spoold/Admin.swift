import ArgumentParser
import Foundation
import SpoolStore
import SpoolSystem

struct Admin: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Inspect and maintain uploads: reads the database and the spool directly, server running or not.",
        subcommands: [List.self, Show.self, Audit.self, Stats.self, Delete.self, Purge.self, Migrate.self, Events.self, Hooks.self, Token.self, CopyTo.self]
    )
}

/// How lists are printed: an aligned table by default.
struct OutputOptions: ParsableArguments {
    @Flag(help: "Print a JSON array.")
    var json = false

    @Flag(help: "Print JSON Lines: one object per line.")
    var jsonl = false

    @Flag(help: "Print CSV with a header row.")
    var csv = false

    func validate() throws {
        if [json, jsonl, csv].filter({ $0 }).count > 1 { throw ValidationError("choose one of --json, --jsonl, --csv") }
    }

    /// Prints `items` in the chosen format; `table` renders the default, `csv` gives the header then a row per item.
    func print<T: Encodable>(_ items: [T], csv: (header: [String], row: (T) -> [String]), table: ([T]) -> String) throws {
        if json {
            Swift.print(try jsonText(items, pretty: true))
        } else if jsonl {
            for item in items { Swift.print(try jsonText(item, pretty: false)) }
        } else if self.csv {
            let lines = [csv.header] + items.map(csv.row)
            Swift.print(lines.map { $0.map(CSV.field).joined(separator: ",") + "\r\n" }.joined(), terminator: "")
        } else {
            Swift.print(table(items), terminator: "")
        }
    }
}

/// RFC 4180 fields: quoted when they hold a comma, a quote or a line break.
enum CSV {
    static func field(_ value: String) -> String {
        guard value.contains(where: { $0 == "," || $0 == "\"" || $0 == "\n" || $0 == "\r" }) else { return value }
        return "\"" + value.replacingOccurrences(of: "\"", with: "\"\"") + "\""
    }
}

/// An admin command that could not run: printed as `spoold: message`, exit status 2.
struct AdminFailure: Error {
    let message: String
    init(_ message: String) { self.message = message }
}

extension ParsableCommand {
    /// Runs `body`, turning an AdminFailure or StoreError into a message and exit status 2.
    func reporting(_ body: () throws -> Void) throws {
        do {
            try body()
        } catch let failure as AdminFailure {
            printStandardError("spoold: \(failure.message)")
            throw ExitCode(2)
        } catch let error as StoreError {
            printStandardError("spoold: \(error)")
            throw ExitCode(2)
        }
    }
}

func openStore(_ options: DataDirectoryOptions) throws -> Store {
    let user = ProcessInfo.processInfo.environment["USER"] ?? "unknown"
    let directory = DataDirectory(try options.path)
    return try Store(directory: directory, actor: "admin:\(user)", backends: try options.backends)
}

func printStandardError(_ message: String) {
    FileHandle.standardError.write(Data((message + "\n").utf8))
}

func jsonText<T: Encodable>(_ value: T, pretty: Bool) throws -> String {
    let encoder = JSONEncoder()
    encoder.outputFormatting = pretty ? [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes] : [.sortedKeys, .withoutEscapingSlashes]
    return String(decoding: try encoder.encode(value), as: UTF8.self)
}

/// A point in time for --since, --until, --older-than.
func parseTime(_ text: String?, _ option: String) throws -> String? {
    guard let text else { return nil }
    guard let iso = UTCTime.parse(text) else {
        throw ValidationError("\(option) takes a duration back from now (2h, 7d), a day (2026-11-25) or an ISO time, got \"\(text)\"")
    }
    return iso
}
