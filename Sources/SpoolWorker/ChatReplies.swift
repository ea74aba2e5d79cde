import Foundation
import SpoolProtocol
import SpoolStore
import SpoolSystem

/// The chat channel's replies, built from rows and live progress. Pure: the field
/// order here is the one documented in docs/PROTOCOL.md.
enum ChatReplies {
    /// `id state name received size percent rate sha256 client worker created updated finished`
    static func statusText(_ row: UploadRecord, live: LiveProgress?) -> String {
        let received = live.map { max($0.received, row.received) } ?? row.received
        let percent = row.size > 0 ? Double(received) * 100 / Double(row.size) : 100
        return [
            "id=\(row.id)", "state=\(row.state.rawValue)", "name=\(PercentCoding.encode(row.name))",
            "received=\(received)", "size=\(row.size)", "percent=\(oneDecimal(percent))",
            "rate=\(live.map { String($0.rate) } ?? "-")", "sha256=\(row.shownSHA256)", "client=\(Store.address(row.clientIP, row.clientPort))",
            "worker=\(row.workerPID)", "created=\(row.createdAt)", "updated=\(row.updatedAt)",
            "finished=\(row.finishedAt ?? "-")",
        ].joined(separator: " ")
    }

    /// One line per upload: `id state received/size percent% sha256-prefix name`.
    static func listLine(_ row: UploadRecord) -> String {
        let percent = row.size > 0 ? Double(row.received) * 100 / Double(row.size) : 100
        return "\(row.id) \(row.state.rawValue) \(row.received)/\(row.size) \(oneDecimal(percent))% "
            + "\(row.shownSHA256.prefix(12)) \(PercentCoding.encode(row.name))"
    }

    /// Rows still receiving show the live byte count from the scoreboard, not the last one written to the database.
    static func list(_ rows: [UploadRecord], json: Bool, scoreboard: Scoreboard) -> [Reply] {
        let lines = rows.map { original in
            var row = original
            if row.state == .receiving, let live = scoreboard.progress(of: row.id) { row.received = max(row.received, live.received) }
            return json ? jsonLine(row) : listLine(row)
        }
        return Reply.lines(.uploadList, lines + ["\(rows.count) upload\(rows.count == 1 ? "" : "s")"])
    }

    static func jsonLine(_ row: UploadRecord) -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        guard let data = try? encoder.encode(row) else { return "{}" }
        return String(decoding: data, as: UTF8.self)
    }

    static func stats(_ stats: StoreStats, live: (workers: Int, connections: Int, uploads: Int)) -> Reply {
        Reply(.serverStats, [
            "workers=\(live.workers)", "connections=\(live.connections)", "in_flight=\(live.uploads)",
            "completed_today=\(stats.completedSince)", "bytes_stored=\(stats.bytesStored)", "uploads=\(stats.uploads)",
        ].joined(separator: " "))
    }

    static func oneDecimal(_ value: Double) -> String {
        let tenths = Int((value * 10).rounded(.down))
        return "\(tenths / 10).\(tenths % 10)"
    }

    /// WATCH ends when the upload does: stored, failed, expired, or cut (resuming it starts a new watch).
    static func isFinal(_ state: UploadState) -> Bool { state != .receiving }
}

/// Answers to the chat channel's questions: the database plus the scoreboard.
/// Runs on the worker's thread pool (it reads SQLite).
struct ChatQueries: Sendable {
    let store: Store
    let scoreboard: Scoreboard
    /// Who asks: a token that is not an admin's sees only its own uploads.
    let viewer: Session.Identity?

    /// The token whose uploads alone may be seen, or nil for all of them.
    var restriction: String? {
        guard let viewer, !viewer.admin else { return nil }
        return viewer.token
    }

    func answer(_ command: Command) throws(StoreError) -> [Reply] {
        switch command {
        case .status(let id):
            guard let line = try status(id) else { return [Reply(.notFound, "no upload \(id)")] }
            return [Reply(.uploadStatus, line.text)]
        case .find(let text, let json):
            // Replies show names percent-encoded; a name copied from one finds its upload too.
            let found = try store.find(text, or: PercentCoding.decode(text), limit: ChatLimits.maxFind, token: restriction)
            return ChatReplies.list(found, json: json, scoreboard: scoreboard)
        case .list(let count, let json):
            var filter = UploadFilter()
            filter.limit = count
            filter.token = restriction
            return ChatReplies.list(try store.uploads(matching: filter), json: json, scoreboard: scoreboard)
        case .stats:
            // Its figures count every token's uploads: not for a token that may see only its own.
            if restriction != nil { return [Reply(.authenticationRequired, "STATS counts every token's uploads: AUTH with an admin token")] }
            let midnight = UTCTime.format(seconds: Int(UTCTime.epochMilliseconds() / 1000) / 86_400 * 86_400)
            return [ChatReplies.stats(try store.stats(completedSince: midnight), live: scoreboard.totals())]
        default:
            return [Reply(.badLine, "not a question")]
        }
    }

    /// The status line of one upload and whether it is over, or nil when there is no such upload.
    func status(_ id: String) throws(StoreError) -> (text: String, isFinal: Bool)? {
        guard let row = try store.upload(id: id), restriction == nil || row.token == restriction else { return nil }
        let live = row.state == .receiving ? scoreboard.progress(of: id) : nil
        return (ChatReplies.statusText(row, live: live), ChatReplies.isFinal(row.state))
    }
}
