import SpoolClient
import SpoolSystem

#if canImport(Glibc)
import Glibc
#endif

/// What `spool upload` shows while it works: on standard output one
/// `<id> <sha256> <file>` line per stored file; on standard error failures,
/// notices, progress and a summary. A file sent alone gets a bar of its own; a
/// directory's files (`--recursive`) share one bar for the whole tree, counting
/// files and bytes done.
final class UploadDisplay {
    private let files: [UploadFile]
    private let wholeTree: Bool
    private let quiet: Bool
    private(set) var failures = 0
    private var stored = 0
    private var storedBytes: Int64 = 0
    /// Bytes of the files finished either way: the tree's bar counts from there.
    private var settledBytes: Int64 = 0
    private let totalBytes: Int64
    private var bar: ProgressBar?
    /// The file being sent alone, named in notices.
    private var current = ""
    private let started = UTCTime.monotonic()

    init(files: [UploadFile], whole: Bool, quiet: Bool) {
        self.files = files
        self.wholeTree = whole
        self.quiet = quiet
        totalBytes = files.reduce(0) { $0 + $1.size }
    }

    func notice(_ message: String) {
        bar?.finish()
        printError("spool: \(current): \(message)")
    }

    /// The progress callback for a file sent alone, if a bar is shown.
    func progress(for index: Int) -> ((Int64, Int64) -> Void)? {
        current = files[index].path
        guard !quiet else { return nil }
        guard wholeTree else {
            let own = ProgressBar(label: files[index].name)
            bar = own
            return { sent, total in own.update(sent: sent, total: total) }
        }
        let tree = treeBar()
        return { [unowned self] sent, _ in tree.update(sent: settledBytes + sent, total: totalBytes) }
    }

    func done(_ index: Int, _ result: Result<UploadResult, ClientError>) {
        bar?.finish()
        if !wholeTree { bar = nil }
        let file = files[index]
        settledBytes += file.size
        switch result {
        case .success(let upload):
            stored += 1
            storedBytes += upload.size
            print("\(upload.id) \(upload.sha256) \(file.path)")
            fflush(nil)
        case .failure(let error):
            failures += 1
            printError("spool: \(file.path): \(error)")
        }
        if wholeTree, !quiet { treeBar().update(sent: settledBytes, total: totalBytes) }
    }

    /// One line once more than one file was asked for: how many were stored, how
    /// much, how fast, and how many failed.
    func summarize() {
        bar?.finish()
        guard !quiet, files.count > 1 || wholeTree else { return }
        let seconds = max(UTCTime.monotonic() - started, 0.001)
        let tenths = Int((seconds * 10).rounded())
        var line = "spool: \(stored) of \(files.count) files stored, \(ProgressBar.formatBytes(storedBytes)) in \(tenths / 10).\(tenths % 10) s"
        if failures > 0 { line += "; \(failures) failed" }
        printError(line)
    }

    private func treeBar() -> ProgressBar {
        let label = "\(stored + failures)/\(files.count) files"
        if let bar {
            bar.label = label
            return bar
        }
        let made = ProgressBar(label: label)
        bar = made
        return made
    }
}
