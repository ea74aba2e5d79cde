import Foundation
import SpoolStore

/// The aligned text table printed by `spoold admin list`.
enum UploadTable {
    static let headers = ["ID", "STATE", "SIZE", "RECEIVED", "SHA256", "CLIENT", "WORKER", "CREATED", "NAME"]

    static func render(_ rows: [UploadRecord]) -> String {
        let cells = rows.map { row in
            [
                row.id, row.state.rawValue, humanSize(row.size), humanSize(row.received), String(row.shownSHA256.prefix(12)),
                Store.address(row.clientIP, row.clientPort),
                String(row.workerPID), row.createdAt, row.name,
            ]
        }
        var widths = headers.map(\.count)
        for line in cells {
            for (i, cell) in line.enumerated() { widths[i] = max(widths[i], cell.count) }
        }
        func format(_ line: [String]) -> String {
            line.enumerated().map { i, cell in
                i == line.count - 1 ? cell : cell.padding(toLength: widths[i] + 2, withPad: " ", startingAt: 0)
            }.joined() + "\n"
        }
        return ([headers] + cells).map(format).joined() + "\(rows.count) upload\(rows.count == 1 ? "" : "s")\n"
    }

    /// 1023 B, 1.0 KiB, 4.2 MiB, …
    static func humanSize(_ bytes: Int64) -> String {
        if bytes < 1024 { return "\(bytes) B" }
        let units = ["KiB", "MiB", "GiB", "TiB", "PiB"]
        var value = Double(bytes) / 1024
        var unit = 0
        while value >= 1024 && unit < units.count - 1 {
            value /= 1024
            unit += 1
        }
        let tenths = Int((value * 10).rounded())
        return "\(tenths / 10).\(tenths % 10) \(units[unit])"
    }
}
