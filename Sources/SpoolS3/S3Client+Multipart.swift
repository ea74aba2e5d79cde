/// Multipart uploads: how an object too large for one PUT, or arriving over
/// time, gets to S3 a part at a time. Parts cannot be read until completed.
extension S3Client {
    public func createMultipartUpload(_ key: String) throws(S3Error) -> String {
        let response = try request("POST", key: key, query: [("uploads", "")], operation: "CreateMultipartUpload")
        guard (200..<300).contains(response.status) else { throw failure("CreateMultipartUpload", response) }
        guard let id = XMLScan.value("UploadId", in: response.text), !id.isEmpty else {
            throw .malformed(operation: "CreateMultipartUpload", detail: "no UploadId")
        }
        return id
    }

    /// Sends part `number` (1...10000); returns its ETag.
    public func uploadPart(_ key: String, uploadID: String, number: Int, body: RequestBody, sha256: String) throws(S3Error) -> String {
        let response = try request(
            "PUT", key: key, query: [("partNumber", String(number)), ("uploadId", uploadID)], body: body, payloadHash: sha256,
            operation: "UploadPart")
        guard (200..<300).contains(response.status) else { throw failure("UploadPart", response) }
        guard let etag = response.header("ETag"), !etag.isEmpty else { throw .malformed(operation: "UploadPart", detail: "no ETag") }
        return etag
    }

    public enum CompleteOutcome: Sendable, Equatable {
        case completed
        /// `ifAbsent` and the key existed: the upload was not completed (abort it).
        case exists
        /// The store knows no such upload: completed before (an answer lost), or aborted.
        case noSuchUpload
    }

    /// Joins the parts into the object. `ifAbsent`: `If-None-Match: *`, for
    /// stores that honour it on completion (AWS does; the caller checks for an
    /// object first anyway).
    public func completeMultipartUpload(
        _ key: String, uploadID: String, parts: [(number: Int, etag: String)], ifAbsent: Bool
    ) throws(S3Error) -> CompleteOutcome {
        var xml = "<CompleteMultipartUpload>"
        for part in parts { xml += "<Part><PartNumber>\(part.number)</PartNumber><ETag>\(XMLScan.escape(part.etag))</ETag></Part>" }
        xml += "</CompleteMultipartUpload>"
        let body = Array(xml.utf8)
        let response = try request(
            "POST", key: key, query: [("uploadId", uploadID)], headers: ifAbsent ? [("if-none-match", "*")] : [],
            body: .bytes(body), payloadHash: Self.sha256Hex(body), operation: "CompleteMultipartUpload")
        if response.status == 412 { return .exists }
        if response.status == 404, XMLScan.value("Code", in: response.text) == "NoSuchUpload" { return .noSuchUpload }
        // S3 may answer 200 with an error document when the join fails late.
        guard (200..<300).contains(response.status), XMLScan.value("Code", in: response.text) == nil else {
            throw failure("CompleteMultipartUpload", response)
        }
        return .completed
    }

    public func abortMultipartUpload(_ key: String, uploadID: String) throws(S3Error) {
        let response = try request("DELETE", key: key, query: [("uploadId", uploadID)], operation: "AbortMultipartUpload")
        guard (200..<300).contains(response.status) || response.status == 404 else { throw failure("AbortMultipartUpload", response) }
    }

    public struct PendingUpload: Sendable, Equatable {
        public var key: String
        public var uploadID: String
        /// As S3 gives it (ISO 8601).
        public var initiated: String
    }

    /// Multipart uploads begun and neither completed nor aborted, under `prefix`.
    public func listMultipartUploads(prefix: String) throws(S3Error) -> [PendingUpload] {
        var found: [PendingUpload] = []
        var markers: (key: String, id: String)?
        repeat {
            var query = [("uploads", ""), ("prefix", prefix)]
            if let markers { query += [("key-marker", markers.key), ("upload-id-marker", markers.id)] }
            let response = try request("GET", key: nil, query: query, operation: "ListMultipartUploads")
            guard (200..<300).contains(response.status) else { throw failure("ListMultipartUploads", response) }
            let text = response.text
            for entry in XMLScan.elements("Upload", in: text) {
                guard let key = XMLScan.value("Key", in: entry), let id = XMLScan.value("UploadId", in: entry) else {
                    throw .malformed(operation: "ListMultipartUploads", detail: "an entry without Key or UploadId")
                }
                found.append(PendingUpload(key: key, uploadID: id, initiated: XMLScan.value("Initiated", in: entry) ?? ""))
            }
            markers = nil
            if XMLScan.value("IsTruncated", in: text) == "true", let key = XMLScan.value("NextKeyMarker", in: text),
                let id = XMLScan.value("NextUploadIdMarker", in: text)
            {
                markers = (key, id)
            }
        } while markers != nil
        return found
    }

    public struct StoredPart: Sendable, Equatable {
        public var number: Int
        public var etag: String
        public var size: Int64
    }

    /// The parts S3 holds for an upload, by number; nil when it knows no such upload.
    public func listParts(_ key: String, uploadID: String) throws(S3Error) -> [StoredPart]? {
        var found: [StoredPart] = []
        var marker: String?
        repeat {
            var query = [("uploadId", uploadID), ("max-parts", "1000")]
            if let marker { query.append(("part-number-marker", marker)) }
            let response = try request("GET", key: key, query: query, operation: "ListParts")
            if response.status == 404 { return nil }
            guard (200..<300).contains(response.status) else { throw failure("ListParts", response) }
            let text = response.text
            for entry in XMLScan.elements("Part", in: text) {
                guard let number = XMLScan.value("PartNumber", in: entry).flatMap({ Int($0) }),
                    let etag = XMLScan.value("ETag", in: entry), let size = XMLScan.value("Size", in: entry).flatMap({ Int64($0) })
                else { throw .malformed(operation: "ListParts", detail: "a part without PartNumber, ETag or Size") }
                found.append(StoredPart(number: number, etag: etag, size: size))
            }
            marker = XMLScan.value("IsTruncated", in: text) == "true" ? XMLScan.value("NextPartNumberMarker", in: text) : nil
        } while marker != nil
        return found.sorted { $0.number < $1.number }
    }
}
