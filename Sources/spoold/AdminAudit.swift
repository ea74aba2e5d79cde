import ArgumentParser
import Foundation
import SpoolStore

#if canImport(Glibc)
import Glibc
#endif

extension Admin {
    struct Audit: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Cross-check the database and the disk.",
            discussion: """
                Checks that every complete upload's object exists, has the recorded size and hashes to the \\
                recorded SHA-256 (--quick: sizes only); finds objects no upload refers to, temporary files no \\
                upload owns, and uploads left receiving by a dead worker. Exits 0 when clean, 1 when it found \\
                problems, 2 when it could not run. --repair quarantines orphans (spool/quarantine), marks \\
                uploads with missing or corrupt objects lost, turns stuck uploads interrupted; it never deletes \\
                an object an upload refers to.
                """
        )

        @OptionGroup var data: DataDirectoryOptions

        @Flag(help: "Check sizes only, without hashing.")
        var quick = false

        @Flag(help: "Fix what was found (see above).")
        var repair = false

        @Flag(help: "Print the report as JSON.")
        var json = false

        func run() throws {
            var found = false
            try reporting {
                let store = try openStore(data)
                let terminal = isatty(STDERR_FILENO) == 1 && !json
                var lastDraw = 0.0
                var report = try store.audit(quick: quick) { done, total in
                    guard terminal else { return }
                    let now = Date().timeIntervalSince1970
                    guard now - lastDraw > 0.1 || done == total else { return }
                    lastDraw = now
                    let percent = total > 0 ? done * 100 / total : 100
                    FileHandle.standardError.write(Data("\r\u{1B}[Kaudit: \(percent)% of \(UploadTable.humanSize(total))".utf8))
                }
                if terminal { FileHandle.standardError.write(Data("\r\u{1B}[K".utf8)) }
                if repair && !report.isClean { report.repairs = try store.repair(report) }
                found = !report.isClean
                if json {
                    print(try jsonText(report, pretty: true))
                } else {
                    print(Self.text(report, store: store))
                }
            }
            if found { throw ExitCode(1) }
        }

        static func text(_ report: AuditReport, store: Store) -> String {
            var lines = [
                "checked \(report.checkedUploads) complete uploads, \(report.checkedObjects) objects, "
                    + "\(UploadTable.humanSize(report.checkedBytes))\(report.quick ? " (sizes only)" : " hashed")"
            ]
            if report.isClean {
                lines.append("clean: no problems found")
            } else {
                lines.append("\(report.findings.count) problem\(report.findings.count == 1 ? "" : "s"):")
                for finding in report.findings {
                    let uploads = finding.uploads.isEmpty ? "" : " [\(finding.uploads.joined(separator: ", "))]"
                    lines.append("  \(finding.kind.rawValue): \(finding.path)\(uploads): \(finding.detail)")
                }
            }
            if !report.repairs.isEmpty {
                lines.append("repaired:")
                lines += report.repairs.map { "  " + $0 }
            }
            return lines.joined(separator: "\n")
        }
    }
}
