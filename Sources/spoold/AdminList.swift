import ArgumentParser
import SpoolStore

extension Admin {
    struct List: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "List uploads, newest first.",
            discussion: "Times: a duration back from now (90s, 2h, 7d), a day (2026-11-25) or an ISO time (2026-11-25T08:00:00Z)."
        )

        @OptionGroup var data: DataDirectoryOptions
        @OptionGroup var output: OutputOptions

        @Option(help: "Only uploads in this state (repeat for several): \(UploadState.allCases.map(\.rawValue).joined(separator: ", ")).")
        var state: [String] = []

        @Option(help: "Only uploads created at or after this time.")
        var since: String?

        @Option(help: "Only uploads created before this time.")
        var until: String?

        @Option(help: "Only uploads whose name matches this glob (*, ?, [abc]).")
        var name: String?

        @Option(help: "Only uploads from this client IP address.")
        var client: String?

        @Option(help: "Only uploads whose SHA-256 starts with these hex digits.")
        var checksum: String?

        @Option(help: "Show at most this many uploads.")
        var limit: Int?

        @Option(help: "Order: \(UploadSort.allCases.map(\.rawValue).joined(separator: ", ")).")
        var sort: String = UploadSort.newest.rawValue

        func validate() throws {
            if let limit, limit < 1 { throw ValidationError("--limit must be at least 1") }
            for s in state where UploadState(rawValue: s) == nil {
                throw ValidationError("unknown --state \"\(s)\"; states: \(UploadState.allCases.map(\.rawValue).joined(separator: ", "))")
            }
            if UploadSort(rawValue: sort) == nil {
                throw ValidationError("unknown --sort \"\(sort)\"; choose \(UploadSort.allCases.map(\.rawValue).joined(separator: ", "))")
            }
            if let checksum, checksum.isEmpty || !checksum.allSatisfy(\.isHexDigit) {
                throw ValidationError("--checksum takes hexadecimal digits")
            }
            _ = try parseTime(since, "--since")
            _ = try parseTime(until, "--until")
        }

        func run() throws {
            try reporting {
                var filter = UploadFilter()
                filter.states = state.compactMap(UploadState.init(rawValue:))
                filter.since = try parseTime(since, "--since")
                filter.until = try parseTime(until, "--until")
                filter.nameGlob = name
                filter.clientIP = client
                filter.checksumPrefix = checksum
                filter.limit = limit
                filter.sort = UploadSort(rawValue: sort) ?? .newest
                let rows = try openStore(data).uploads(matching: filter)
                try output.print(rows, csv: (UploadCSV.header, UploadCSV.row), table: UploadTable.render)
            }
        }
    }
}

/// The columns of `admin list --csv`.
enum UploadCSV {
    static let header = ["id", "name", "state", "size", "received", "sha256", "client_ip", "client_port", "worker_pid",
                         "created_at", "updated_at", "finished_at", "error", "token"]

    static func row(_ row: UploadRecord) -> [String] {
        [row.id, row.name, row.state.rawValue, String(row.size), String(row.received), row.sha256, row.clientIP,
         String(row.clientPort), String(row.workerPID), row.createdAt, row.updatedAt, row.finishedAt ?? "", row.error ?? "",
         row.token ?? ""]
    }
}
