import SpoolSystem

/// What S3 holds of an upload on its way, kept next to it as a small object
/// (`staging/<id>.manifest`), rewritten after each part is stored: the multipart
/// upload, its parts, and the SHA-256 state at their end. Parts cannot be read
/// back before completion, so a resume (on this host or another) continues the
/// hash from the saved state instead of from the bytes.
///
///     spool-staging 1
///     upload <key> <upload id>
///     part <number> <size> <etag> <hash state>
public struct StagingManifest: Sendable, Equatable {
    public struct Part: Sendable, Equatable {
        public var number: Int
        public var size: Int64
        public var etag: String
        /// The hash of every byte up to this part's end.
        public var hash: ResumableSHA256.Saved
    }

    public var key: String
    public var uploadID: String
    public var parts: [Part] = []

    public init(key: String, uploadID: String, parts: [Part] = []) {
        self.key = key
        self.uploadID = uploadID
        self.parts = parts
    }

    /// Bytes in the stored parts.
    public var stored: Int64 { parts.reduce(0) { $0 + $1.size } }

    public var text: String {
        var lines = ["spool-staging 1", "upload \(key) \(uploadID)"]
        for part in parts { lines.append("part \(part.number) \(part.size) \(part.etag) \(part.hash)") }
        return lines.joined(separator: "\n") + "\n"
    }

    /// nil for anything but what `text` writes (keys and ETags have no spaces: ours are hex and ids).
    public init?(_ text: String) {
        let lines = text.split(separator: "\n")
        guard lines.first == "spool-staging 1", lines.count >= 2 else { return nil }
        let upload = lines[1].split(separator: " ")
        guard upload.count == 3, upload[0] == "upload" else { return nil }
        self.init(key: String(upload[1]), uploadID: String(upload[2]))
        for line in lines.dropFirst(2) {
            let fields = line.split(separator: " ")
            guard fields.count == 5, fields[0] == "part", let number = Int(fields[1]), number == parts.count + 1,
                let size = Int64(fields[2]), size > 0, let hash = ResumableSHA256.Saved(fields[4]),
                hash.length == stored + size
            else { return nil }
            parts.append(Part(number: number, size: size, etag: String(fields[3]), hash: hash))
        }
    }
}
