import ArgumentParser
import SpoolStore
import SpoolSystem

extension Admin {
    struct Show: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Every field of one upload, and where its bytes are.")

        @OptionGroup var data: DataDirectoryOptions

        @Flag(help: "Print JSON.")
        var json = false

        @Argument(help: "The upload's id.")
        var id: String

        struct Details: Encodable {
            let upload: UploadRecord
            let path: String?
            let onDisk: Bool
            let sharedBy: Int

            enum CodingKeys: String, CodingKey {
                case upload, path
                case onDisk = "on_disk"
                case sharedBy = "shared_by"
            }
        }

        func run() throws {
            try reporting {
                let store = try openStore(data)
                guard let row = try store.upload(id: id.uppercased()) else { throw AdminFailure("no upload \(id)") }
                let bytes = store.bytesLocation(of: row)
                let (path, onDisk) = (bytes?.location, bytes?.present ?? false)
                let shared = try store.referenceCount(sha256: row.sha256)
                if json {
                    print(try jsonText(Details(upload: row, path: path, onDisk: onDisk, sharedBy: shared), pretty: true))
                    return
                }
                let fields: [(String, String)] = [
                    ("id", row.id), ("name", row.name), ("state", row.state.rawValue),
                    ("size", "\(row.size) (\(UploadTable.humanSize(row.size)))"), ("received", String(row.received)),
                    ("sha256", row.shownSHA256), ("client", Store.address(row.clientIP, row.clientPort)),
                    ("worker", String(row.workerPID)), ("created", row.createdAt), ("updated", row.updatedAt),
                    ("finished", row.finishedAt ?? "-"), ("error", row.error ?? "-"),
                    ("path", path.map { $0 + (onDisk ? "" : " (missing)") } ?? "-"),
                    ("shared by", "\(shared) complete upload\(shared == 1 ? "" : "s") with this content"),
                ]
                for (label, value) in fields {
                    print(label.padding(toLength: 10, withPad: " ", startingAt: 0) + value)
                }
            }
        }
    }
}
