import ArgumentParser
import Foundation
import SpoolStore

struct Admin: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Inspect uploads in the database and the spool directory.",
        subcommands: [List.self]
    )
}

extension Admin {
    struct List: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List uploads, newest first.")

        @OptionGroup var data: DataDirectoryOptions

        @Flag(help: "Print a JSON array instead of a table.")
        var json = false

        @Option(help: "Show at most this many uploads.")
        var limit: Int?

        func validate() throws {
            if let limit, limit < 1 { throw ValidationError("--limit must be at least 1") }
        }

        func run() throws {
            let store: Store
            do {
                store = try Store(directory: DataDirectory(data.dataDir))
            } catch {
                throw AdminFailure(error.description)
            }
            let rows: [UploadRecord]
            do { rows = try store.uploads(limit: limit) } catch { throw AdminFailure(error.description) }
            if json {
                let encoder = JSONEncoder()
                encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
                let data = try encoder.encode(rows)
                print(String(decoding: data, as: UTF8.self))
            } else {
                print(UploadTable.render(rows), terminator: "")
            }
        }
    }
}

/// An error an operator reads: printed as `spoold: message`, exit status 2.
struct AdminFailure: Error, CustomStringConvertible {
    let description: String
    init(_ message: String) { description = message }
}
