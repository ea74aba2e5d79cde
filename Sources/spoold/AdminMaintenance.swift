import ArgumentParser
import Foundation
import SpoolStore
import SpoolSystem

extension Admin {
    struct Stats: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Counts per state, bytes stored and saved by deduplication, uploads per day for 14 days.")

        @OptionGroup var data: DataDirectoryOptions

        @Flag(help: "Print JSON.")
        var json = false

        func run() throws {
            try reporting {
                let today = Int(UTCTime.epochMilliseconds() / 1000) / 86_400 * 86_400
                let days = (0..<14).reversed().map { String(UTCTime.format(seconds: today - $0 * 86_400).prefix(10)) }
                let store = try openStore(data)
                var stats = try store.adminStats(today: days.last ?? "", days: days)
                stats.retention = try store.retentionForecast(try data.retention, nowMilliseconds: UTCTime.epochMilliseconds())
                if json {
                    print(try jsonText(stats, pretty: true))
                    return
                }
                print("uploads        \(stats.uploads)")
                for state in UploadState.allCases {
                    print("  " + state.rawValue.padding(toLength: 13, withPad: " ", startingAt: 0) + String(stats.perState[state.rawValue] ?? 0))
                }
                print("bytes stored   \(stats.bytesStored) (\(UploadTable.humanSize(stats.bytesStored)))")
                print("bytes saved    \(stats.bytesSaved) (\(UploadTable.humanSize(stats.bytesSaved)), by deduplication)")
                print("uploads per day (UTC):")
                for day in stats.perDay { print("  \(day.day)  \(day.uploads)") }
                if let retention = stats.retention {
                    print("retention      \(retention.policy)")
                    let due = retention.due.filter { $0.uploads > 0 }
                    if due.isEmpty {
                        print("  nothing due")
                    } else {
                        print("  due now, removed by the server's next turns (200 a turn):")
                        for item in due {
                            print("  " + item.state.rawValue.padding(toLength: 13, withPad: " ", startingAt: 0)
                                + "\(item.uploads) (\(UploadTable.humanSize(item.bytes)))")
                        }
                    }
                }
            }
        }
    }

    struct Delete: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Delete uploads: their rows, and their objects when no other upload shares them.")

        @OptionGroup var data: DataDirectoryOptions

        @Flag(help: "Show what would be deleted, and delete nothing.")
        var dryRun = false

        @Argument(help: "Upload ids.")
        var ids: [String]

        func validate() throws {
            if ids.isEmpty { throw ValidationError("name at least one upload id") }
        }

        func run() throws {
            try reporting {
                let store = try openStore(data)
                var missing = 0
                for raw in ids {
                    let id = raw.uppercased()
                    guard let row = try store.upload(id: id) else {
                        printStandardError("spoold: no upload \(raw)")
                        missing += 1
                        continue
                    }
                    if dryRun {
                        let shared = try store.referenceCount(sha256: row.sha256)
                        print("would delete \(id) (\(row.state.rawValue), \(row.name))"
                              + (shared > 1 || (shared == 1 && row.state != .complete) ? "; its object is shared and stays" : ""))
                        continue
                    }
                    switch try store.delete(id: id) {
                    case .deleted(let removed, let objectError):
                        print("deleted \(id)" + (removed ? " and its object" : "; object kept (shared or absent)"))
                        if let objectError { printStandardError("spoold: \(id): its object stays (\(objectError)); admin audit --repair removes it") }
                    case .notFound:
                        printStandardError("spoold: no upload \(raw)")
                        missing += 1
                    case .receiving:
                        throw AdminFailure("upload \(id) is being received; stop it (or wait) before deleting it")
                    }
                }
                if missing > 0 { throw AdminFailure("\(missing) of \(ids.count) uploads not found") }
            }
        }
    }

    struct Purge: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Delete every upload in a state, last touched before a time (objects as for delete).")

        @OptionGroup var data: DataDirectoryOptions

        @Option(help: "The state to purge (not receiving).")
        var state: String

        @Option(help: "Only uploads last touched before this time: 7d, 24h, a day or an ISO time.")
        var olderThan: String

        @Flag(help: "Show what would be deleted, and delete nothing.")
        var dryRun = false

        func validate() throws {
            guard let parsed = UploadState(rawValue: state), parsed != .receiving else {
                throw ValidationError("--state must be one of complete, failed, interrupted, expired, lost")
            }
            _ = try parseTime(olderThan, "--older-than")
        }

        func run() throws {
            try reporting {
                let store = try openStore(data)
                var filter = UploadFilter()
                filter.states = [UploadState(rawValue: state) ?? .failed]
                filter.updatedBefore = try parseTime(olderThan, "--older-than")
                filter.sort = .oldest
                let rows = try store.uploads(matching: filter)
                var objects = 0
                for row in rows {
                    if dryRun {
                        print("would delete \(row.id) (\(row.state.rawValue), updated \(row.updatedAt), \(row.name))")
                    } else if case .deleted(let removed, let objectError) = try store.delete(id: row.id) {
                        if removed { objects += 1 }
                        if let objectError { printStandardError("spoold: \(row.id): its object stays (\(objectError)); admin audit --repair removes it") }
                        print("deleted \(row.id)" + (removed ? " and its object" : ""))
                    }
                }
                print("\(dryRun ? "would delete" : "deleted") \(rows.count) upload\(rows.count == 1 ? "" : "s")"
                      + (dryRun ? "" : ", \(objects) object\(objects == 1 ? "" : "s")"))
            }
        }
    }

    struct Migrate: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Apply pending migrations (the server does this at start too).",
            discussion: "With --check, change nothing: exit 0 when the database is current, 1 when migrations are pending.")

        @OptionGroup var data: DataDirectoryOptions

        @Flag(help: "Report whether the database is current, and change nothing.")
        var check = false

        func run() throws {
            var pending = false
            try reporting {
                let directory = DataDirectory(try data.path)
                let backends = try data.backends
                if check {
                    let status = try Store.schemaStatus(directory: directory, catalog: backends.catalog)
                    print("schema version \(status.current) of \(status.latest)"
                          + (status.pending > 0 ? ": \(status.pending) pending" : ": current"))
                    pending = status.pending > 0
                    return
                }
                let user = ProcessInfo.processInfo.environment["USER"] ?? "unknown"
                let (_, applied) = try Store.openMigrating(directory: directory, actor: "admin:\(user)", backends: backends)
                for migration in applied { print("applied \(migration.version) \(migration.name)") }
                print(applied.isEmpty ? "already current" : "current")
            }
            if pending { throw ExitCode(1) }
        }
    }

    struct Events: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "The event log: what happened to uploads, by whom, from where (oldest first).")

        @OptionGroup var data: DataDirectoryOptions
        @OptionGroup var output: OutputOptions

        @Option(help: "Only this upload's events.")
        var id: String?

        @Option(help: "Only events at or after this time.")
        var since: String?

        @Option(help: "At most this many events.")
        var limit: Int?

        func validate() throws {
            _ = try parseTime(since, "--since")
            if let limit, limit < 1 { throw ValidationError("--limit must be at least 1") }
        }

        func run() throws {
            try reporting {
                let events = try openStore(data).events(id: id?.uppercased(), since: try parseTime(since, "--since"), limit: limit)
                try output.print(
                    events,
                    csv: (["seq", "at", "upload_id", "kind", "actor", "client", "detail"],
                          { e in [String(e.seq), e.at, e.uploadID, e.kind, e.actor, e.client ?? "", e.detail ?? ""] }),
                    table: { events in
                        events.map { e in
                            "\(e.at)  \(e.uploadID)  \(e.kind.padding(toLength: 11, withPad: " ", startingAt: 0)) "
                                + "\(e.actor)\(e.client.map { " from \($0)" } ?? "")\(e.detail.map { ": \($0)" } ?? "")\n"
                        }.joined()
                    })
            }
        }
    }
}
