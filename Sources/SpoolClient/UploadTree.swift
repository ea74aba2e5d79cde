import SpoolSystem

#if canImport(Glibc)
import Glibc
#endif

/// One file to upload: where it is, and the name the server records.
public struct UploadFile: Sendable, Equatable {
    public let path: String
    public let name: String
    public let size: Int64

    public init(path: String, name: String, size: Int64) {
        self.path = path
        self.name = name
        self.size = size
    }
}

/// What `spool upload` was asked to send, checked and expanded before any
/// connection is made: a file is named by its last path component; with
/// `recursive`, a directory stands for every regular file under it, named by its
/// path from the directory's parent (`photos/2026/a.jpg`), as `scp -r` names them.
public struct UploadTree {
    public private(set) var files: [UploadFile] = []
    /// Whether any argument was a directory (the command then shows one progress line for all).
    public private(set) var hasDirectory = false
    /// What was left out, one sentence each: symbolic links to directories (not
    /// followed, so a link loop cannot make the walk endless), sockets, devices.
    public private(set) var skipped: [String] = []

    /// Why the arguments cannot be uploaded as given.
    public struct Problem: Error, CustomStringConvertible, Sendable {
        public let description: String
    }

    public init(_ paths: [String], recursive: Bool) throws(Problem) {
        for path in paths {
            var info = stat()
            // A path that cannot be read is left for the upload itself to report, with the other files still sent.
            guard stat(path, &info) == 0, (info.st_mode & S_IFMT) == S_IFDIR else {
                files.append(UploadFile(path: path, name: Self.lastComponent(path), size: Int64(info.st_size)))
                continue
            }
            guard recursive else {
                throw Problem(description: "\(path) is a directory; use --recursive to upload every file under it")
            }
            hasDirectory = true
            try walk(path, name: Self.rootName(path))
        }
    }

    /// Every entry of `directory`, in byte order of their names, depth first.
    private mutating func walk(_ directory: String, name: String?) throws(Problem) {
        let entries: [String]
        do { entries = try Files.list(directory).sorted { Array($0.utf8).lexicographicallyPrecedes(Array($1.utf8)) } } catch {
            throw Problem(description: "cannot read the directory \(directory): \(error)")
        }
        let base = directory.hasSuffix("/") ? directory : directory + "/"
        for entry in entries {
            let path = base + entry
            let child = name.map { "\($0)/\(entry)" } ?? entry
            var link = stat(), target = stat()
            guard lstat(path, &link) == 0 else { throw Problem(description: "cannot read \(path): \(SystemError.last("stat"))") }
            let isLink = (link.st_mode & S_IFMT) == S_IFLNK
            let followed = !isLink || stat(path, &target) == 0
            let info = isLink ? target : link
            switch (followed, info.st_mode & S_IFMT) {
            case (true, S_IFREG):
                files.append(UploadFile(path: path, name: child, size: Int64(info.st_size)))
            case (true, S_IFDIR) where !isLink:
                try walk(path, name: child)
            case (true, S_IFDIR):
                skipped.append("\(path): a symbolic link to a directory, not followed")
            case (false, _):
                skipped.append("\(path): a symbolic link to nothing")
            default:
                skipped.append("\(path): not a regular file")
            }
        }
    }

    static func lastComponent(_ path: String) -> String {
        path.split(separator: "/").last.map(String.init) ?? path
    }

    /// The name a directory's files are recorded under: its own name, read from the
    /// resolved path for `.` and `..`; none for `/`.
    static func rootName(_ path: String) -> String? {
        var name = lastComponent(path)
        if name == "." || name == ".." || path.hasSuffix("/.") || path.hasSuffix("/..") {
            guard let resolved = realpath(path, nil) else { return nil }
            defer { free(resolved) }
            name = lastComponent(String(cString: resolved))
        }
        return name.isEmpty || name == "/" ? nil : name
    }
}
