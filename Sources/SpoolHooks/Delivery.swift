import Foundation
import SpoolStore

/// What a notification hook reads on its standard input: the event, the upload
/// as it is when the hook runs (null once its row is deleted), and for a
/// finished upload the file that holds its bytes.
struct Delivery: Encodable {
    var hook: HookName
    var event: UploadEvent
    var upload: UploadRecord?
    /// The content-addressed object, absolute; read it, link or copy it, never
    /// move or change it (other uploads of the same bytes share it).
    var path: String?

    enum CodingKeys: String, CodingKey { case hook, event, upload, path }

    func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(hook, forKey: .hook)
        try c.encode(event, forKey: .event)
        try c.encode(upload, forKey: .upload)
        try c.encode(path, forKey: .path)
    }

    /// The same facts for scripts that would rather not parse JSON.
    var environment: [String: String] {
        var variables = ["SPOOL_EVENT_SEQ": String(event.seq), "SPOOL_UPLOAD_ID": event.uploadID]
        if let upload { variables["SPOOL_UPLOAD_NAME"] = upload.name }
        if let path { variables["SPOOL_UPLOAD_PATH"] = path }
        return variables
    }

    static func make(_ event: UploadEvent, hook: HookName, store: Store) throws(StoreError) -> Delivery {
        let upload = try store.upload(id: event.uploadID)
        var path: String?
        if hook == .postFinish, let upload, upload.state == .complete, !upload.sha256.isEmpty {
            path = absolute(store.blobs.objectLocation(sha256: upload.sha256))
        }
        return Delivery(hook: hook, event: event, upload: upload, path: path)
    }

    static func absolute(_ path: String) -> String {
        if path.hasPrefix("/") { return path }
        return FileManager.default.currentDirectoryPath + "/" + path
    }
}
