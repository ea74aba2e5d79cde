#if canImport(Glibc)
import Glibc
#endif
import Crypto
import SpoolProtocol
import SpoolSystem

public struct AuditFinding: Codable, Equatable, Sendable {
    public enum Kind: String, Codable, Sendable, CaseIterable {
        /// A complete upload's object is not on disk.
        case missingObject = "missing_object"
        /// A complete upload's object has the wrong size (truncated, or grown).
        case sizeMismatch = "size_mismatch"
        /// A complete upload's object does not hash to its SHA-256.
        case checksumMismatch = "checksum_mismatch"
        /// An object no upload refers to.
        case orphanObject = "orphan_object"
        /// A temporary file no live or resumable upload owns.
        case staleTemp = "stale_temp"
        /// An upload still `receiving` that nobody is writing (its worker is gone).
        case stuckReceiving = "stuck_receiving"
    }

    public var kind: Kind
    /// The uploads concerned (several when they share one object).
    public var uploads: [String]
    public var path: String
    public var detail: String

    enum CodingKeys: String, CodingKey {
        case kind, uploads, path, detail
    }
}

public struct AuditReport: Codable, Equatable, Sendable {
    public var checkedUploads = 0
    public var checkedObjects = 0
    public var checkedBytes: Int64 = 0
    public var quick = false
    public var findings: [AuditFinding] = []
    /// What `--repair` did, one line per action.
    public var repairs: [String] = []

    public var isClean: Bool { findings.isEmpty }

    enum CodingKeys: String, CodingKey {
        case checkedUploads = "checked_uploads"
        case checkedObjects = "checked_objects"
        case checkedBytes = "checked_bytes"
        case quick, findings, repairs
    }
}

extension Store {
    /// Cross-checks the database and the spool directory. Reads only (the locks it
    /// takes on temporary files to see whether anyone writes them are let go at once).
    /// `progress` receives (bytes checked, bytes to check).
    public func audit(quick: Bool, stuckAfterSeconds: Double = 10, progress: (Int64, Int64) -> Void = { _, _ in })
        throws(StoreError) -> AuditReport
    {
        var report = AuditReport()
        report.quick = quick

        // 1. Every complete upload's object: there, the right size, the right hash.
        let complete = try uploads(matching: { var f = UploadFilter(); f.states = [.complete]; return f }())
        report.checkedUploads = complete.count
        let byContent = Dictionary(grouping: complete, by: \.sha256)
        let total = byContent.values.reduce(Int64(0)) { $0 + ($1.first?.size ?? 0) }
        for (sha256, rows) in byContent.sorted(by: { $0.key < $1.key }) {
            let ids = rows.map(\.id).sorted()
            let size = rows[0].size
            let path = blobs.objectLocation(sha256: sha256)
            report.checkedObjects += 1
            guard let actual = blobs.objectSize(sha256: sha256) else {
                report.findings.append(AuditFinding(kind: .missingObject, uploads: ids, path: path, detail: "object missing"))
                continue
            }
            if actual != size {
                report.findings.append(AuditFinding(
                    kind: .sizeMismatch, uploads: ids, path: path, detail: "\(actual) bytes on disk, \(size) recorded"))
                continue
            }
            if !quick {
                let hash: String
                do { hash = try blobs.hashObject(sha256: sha256) } catch { throw .system(error) }
                if hash != sha256 {
                    report.findings.append(AuditFinding(
                        kind: .checksumMismatch, uploads: ids, path: path, detail: "hashes to \(hash)"))
                }
            }
            report.checkedBytes += size
            progress(report.checkedBytes, total)
        }

        // 2. Objects nobody refers to. The objects are listed before the rows are
        // read: an upload records its row (and checksum) before it publishes its
        // object, so an object seen here whose upload is still finishing has its row already.
        let objects: [String]
        do { objects = try blobs.objectNames() } catch { throw .system(error) }
        let referenced = Set(try uploads(matching: {
            var f = UploadFilter(); f.states = [.complete, .receiving, .interrupted]; return f
        }()).map(\.sha256))
        for name in objects where !referenced.contains(name) {
            report.findings.append(AuditFinding(
                kind: .orphanObject, uploads: [], path: blobs.objectLocation(sha256: name), detail: "no upload refers to it"))
        }

        // 3. Temporary files, and uploads that claim to be receiving.
        let temps: [String]
        do { temps = try blobs.stagingNames() } catch { throw .system(error) }
        let open = try uploads(matching: { var f = UploadFilter(); f.states = [.receiving, .interrupted]; return f }())
        let owners = Dictionary(open.map { ("\($0.id).part", $0) }, uniquingKeysWith: { a, _ in a })
        for name in temps where owners[name] == nil {
            report.findings.append(AuditFinding(
                kind: .staleTemp, uploads: [], path: blobs.stagingLocation(named: name), detail: "no live or resumable upload owns it"))
        }
        let cutoff = UTCTime.epochMilliseconds() - Int64(stuckAfterSeconds * 1000)
        let cutoffText = UTCTime.format(seconds: Int(cutoff / 1000), milliseconds: Int(cutoff % 1000))
        for row in open where row.state == .receiving && row.updatedAt < cutoffText && !blobs.isBeingWritten(id: row.id) {
            report.findings.append(AuditFinding(
                kind: .stuckReceiving, uploads: [row.id], path: blobs.stagingLocation(id: row.id),
                detail: "receiving since \(row.updatedAt), but no worker holds it"))
        }
        return report
    }

    /// Fixes what `audit` found without deleting anything a row refers to:
    /// orphans and stale temporary files move to spool/quarantine; uploads whose
    /// object is missing or corrupt become `lost` (a corrupt object is quarantined
    /// too); stuck uploads become `interrupted`, resumable.
    public func repair(_ report: AuditReport) throws(StoreError) -> [String] {
        var actions: [String] = []
        for finding in report.findings {
            switch finding.kind {
            case .missingObject, .sizeMismatch, .checksumMismatch:
                if finding.kind != .missingObject {
                    let moved = try system { () throws(SystemError) in try blobs.quarantineObject(sha256: Self.lastComponent(finding.path)) }
                    actions.append("moved corrupt object \(finding.path) to \(moved)")
                }
                for id in finding.uploads {
                    try mark(id, .lost, received: 0, error: "audit: \(finding.detail)", finished: true)
                    actions.append("marked \(id) lost (\(finding.kind.rawValue))")
                }
            case .orphanObject:
                let moved = try system { () throws(SystemError) in try blobs.quarantineObject(sha256: Self.lastComponent(finding.path)) }
                actions.append("moved orphan object \(finding.path) to \(moved)")
            case .staleTemp:
                let moved = try system { () throws(SystemError) in try blobs.quarantineStaging(named: Self.lastComponent(finding.path)) }
                actions.append("moved stale temporary file \(finding.path) to \(moved)")
            case .stuckReceiving:
                for id in finding.uploads where !blobs.isBeingWritten(id: id) {
                    let received: Int64
                    do {
                        received = try blobs.durableStagedSize(id: id)
                    } catch where error.errno == ENOENT {
                        received = 0
                    } catch {
                        actions.append("left \(id) receiving: \(error)")
                        continue
                    }
                    try mark(id, .interrupted, received: received, error: "audit: no worker was receiving it", finished: false)
                    actions.append("marked \(id) interrupted (\(received) bytes kept, resumable)")
                }
            }
        }
        return actions
    }

    /// A finding's path ends with the object's or the staging's name.
    static func lastComponent(_ path: String) -> String {
        path.split(separator: "/").last.map(String.init) ?? path
    }
}
