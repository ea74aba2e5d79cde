import ArgumentParser
import Foundation
import SpoolStore
import SpoolSystem

extension Admin {
    struct CopyTo: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "copy-to",
            abstract: "Copy this installation into a PostgreSQL catalog and/or an S3 store (docs/SCALING.md).",
            discussion: """
                Reads this installation (its settings as for every admin command: by default SQLite and \
                the spool directory) and copies what the targets lack: every object into --objects, each \
                read back and hashed on the way; then the catalog's rows into --database, which must be \
                empty (its migrations are applied first): finished uploads, the whole event log with its \
                numbers, the tokens, the hook cursor. Uploads still on their way are not copied. Nothing \
                here is changed: stop the server first, copy, then start servers with the new settings. \
                Objects already in the target are kept, so a copy that stopped half way can be run again \
                with --objects alone, then with --database.
                """)

        @OptionGroup var data: DataDirectoryOptions

        @Option(help: ArgumentHelp("The PostgreSQL catalog to copy the rows into: postgres://USER[:PASSWORD]@HOST[:PORT]/DATABASE.", valueName: "url"))
        var database: String?

        @Option(help: ArgumentHelp("The S3 store to copy the objects into: s3://BUCKET[/PREFIX], with the AWS_* variables set.", valueName: "url"))
        var objects: String?

        @Option(help: "With --objects: the part size objects are sent in (as serve's --part-size).")
        var partSize: String = "8M"

        func validate() throws {
            if database == nil && objects == nil { throw ValidationError("give --database, --objects or both") }
            if ByteSize.parse(partSize).map({ (5 << 20...64 << 20).contains($0) && $0 % (1 << 20) == 0 }) != true {
                throw ValidationError("--part-size: expected a size from 5M to 64M, in whole MiB")
            }
        }

        func run() throws {
            var failed = false
            try reporting {
                let source = try openStore(data)
                let target: StoreBackends
                do {
                    target = try StoreBackends(objects: objects, partSize: ByteSize.parse(partSize) ?? 8 << 20, database: database)
                } catch {
                    throw AdminFailure("\(error)")
                }
                let user = ProcessInfo.processInfo.environment["USER"] ?? "unknown"
                let (destination, _) = try Store.openMigrating(directory: source.directory, actor: "admin:\(user)", backends: target)
                let report = try source.copy(to: destination, objects: objects != nil, rows: database != nil)
                if objects != nil {
                    print("objects: \(report.objectsCopied) copied, \(report.objectsPresent) already there"
                          + (report.objectsDamaged.isEmpty ? "" : ", \(report.objectsDamaged.count) damaged and not copied (spoold admin audit)"))
                    for name in report.objectsDamaged { print("  damaged: \(name)") }
                    failed = !report.objectsDamaged.isEmpty
                }
                if database != nil {
                    print("catalog: \(report.uploads) uploads, \(report.events) events, \(report.tokens) tokens copied"
                          + (report.skippedInProgress > 0 ? "; \(report.skippedInProgress) uploads on their way not copied" : ""))
                }
            }
            if failed { throw ExitCode(1) }
        }
    }
}
