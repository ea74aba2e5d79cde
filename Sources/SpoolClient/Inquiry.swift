import Foundation
import SpoolProtocol

/// One upload's status, read from a 211 reply (fields as docs/PROTOCOL.md lists them).
public struct UploadStatus: Sendable, Equatable {
    public let fields: [String: String]

    public init?(_ reply: Reply) {
        guard reply.code == .uploadStatus, reply.fields["id"] != nil, reply.fields["state"] != nil else { return nil }
        fields = reply.fields
    }

    public var id: String { fields["id"] ?? "" }
    public var state: String { fields["state"] ?? "" }
    public var received: Int64 { fields["received"].flatMap(Int64.init) ?? 0 }
    public var size: Int64 { fields["size"].flatMap(Int64.init) ?? 0 }
    public var rate: Int64? { fields["rate"].flatMap(Int64.init) }

    /// `spool status` and `spool watch` exit with this.
    public var exitCode: Int32 {
        switch state {
        case "complete": StatusExit.complete
        case "failed", "expired": StatusExit.failed
        default: StatusExit.inProgress
        }
    }

    /// A block of `label  value` lines for people.
    public var text: String {
        var progress = "\(received) of \(size) bytes (\(fields["percent"] ?? "?")%)"
        if let rate { progress += ", \(ProgressBar.formatRate(Double(rate)))" }
        let rows: [(String, String)] = [
            ("id", id), ("name", fields["name"] ?? ""), ("state", state), ("progress", progress),
            ("sha256", fields["sha256"] ?? ""), ("client", fields["client"] ?? ""), ("worker", fields["worker"] ?? ""),
            ("created", fields["created"] ?? ""), ("updated", fields["updated"] ?? ""),
            ("finished", fields["finished"] ?? "-"),
        ]
        return rows.map { $0.0.padding(toLength: 10, withPad: " ", startingAt: 0) + $0.1 }.joined(separator: "\n")
    }
}

/// Exit codes of `spool status` and `spool watch`.
public enum StatusExit {
    public static let complete: Int32 = 0
    public static let error: Int32 = 1
    public static let failed: Int32 = 2
    public static let inProgress: Int32 = 3
    public static let unknown: Int32 = 4
}

/// Questions to the server's chat channel, asked by a program.
public struct Inquiry {
    public let connection: Connection

    public init(connection: Connection) {
        self.connection = connection
    }

    /// The status of an upload named by id, or by name (the newest upload with exactly that name).
    public func status(of idOrName: String) throws(ClientError) -> UploadStatus? {
        guard let id = UploadID.isValid(idOrName) ? idOrName : try newest(named: idOrName) else { return nil }
        try connection.send(line: "STATUS \(id)")
        let reply = try connection.readReply()
        if reply.code == .notFound { return nil }
        guard let status = UploadStatus(reply) else { throw .refused(reply) }
        return status
    }

    /// Watches an upload: `line` gets each status as it is pushed; returns the last one.
    public func watch(_ id: String, line: (UploadStatus) -> Void) throws(ClientError) -> UploadStatus? {
        try connection.send(line: "WATCH \(id)")
        while true {
            let reply = try connection.readReplyLine()
            if reply.code == .notFound { return nil }
            guard let status = UploadStatus(reply) else { throw .refused(reply) }
            line(status)
            if reply.isLast { return status }
        }
    }

    private struct Summary: Decodable {
        let id: String
        let name: String
    }

    private func newest(named name: String) throws(ClientError) -> String? {
        try connection.send(line: "FIND --json \(name)")
        let lines = try connection.readReplyLines()
        guard lines.last?.code == .uploadList else { throw .refused(lines.last ?? Reply(.badLine, "")) }
        let decoder = JSONDecoder()
        for reply in lines.dropLast() {
            if let row = try? decoder.decode(Summary.self, from: Data(reply.text.utf8)), row.name == name {
                return row.id  // FIND lists newest first
            }
        }
        return nil
    }
}
