import SpoolSystem

/// The configuration file: one `key = value` per line, as postgresql.conf and
/// systemd's environment files are written, because every setting is one value
/// (or a key repeated, for lists). `#` starts a comment at the start of a line or
/// after a space; a value in double quotes keeps its `#` and spaces, with `\"`
/// and `\\` escaped.
///
///     # /etc/spool/spoold.conf
///     listen = 0.0.0.0:8888
///     max-file-size = 2G        # per upload
///     cors-origin = https://app.example.com
///     cors-origin = https://admin.example.com
public struct SettingsFile: Sendable, Equatable {
    public struct Entry: Sendable, Equatable {
        public let key: String
        public let value: String
        public let line: Int
    }

    /// Where `spoold` looks when neither --config nor SPOOL_CONFIG names a file.
    public static let defaultPath = "/etc/spool/spoold.conf"

    public let path: String
    public let entries: [Entry]
    /// Lines that are not `key = value`: reported with the settings' own problems, all at once.
    public let problems: [SettingsProblem]

    public static func parse(_ text: String, path: String) -> SettingsFile {
        var entries: [Entry] = []
        var problems: [SettingsProblem] = []
        for (index, rawLine) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let number = index + 1
            let line = rawLine.trimmingWhitespace()
            if line.isEmpty || line.hasPrefix("#") { continue }
            let source = SettingSource.file(path: path, line: number)
            guard let equals = line.firstIndex(of: "=") else {
                problems.append(SettingsProblem(source: source, key: nil, message: "expected key = value, got \"\(line)\""))
                continue
            }
            let key = String(line[..<equals]).trimmingWhitespace()
            guard !key.isEmpty else {
                problems.append(SettingsProblem(source: source, key: nil, message: "a key is missing before ="))
                continue
            }
            switch value(String(line[line.index(after: equals)...]).trimmingWhitespace()) {
            case .success(let value): entries.append(Entry(key: key, value: value, line: number))
            case .failure(let failure): problems.append(SettingsProblem(source: source, key: key, message: failure.message))
            }
        }
        return SettingsFile(path: path, entries: entries, problems: problems)
    }

    /// Reads and parses the file; only a file that cannot be read fails here.
    public static func read(_ path: String) -> Result<SettingsFile, SettingsError> {
        let limit = 1 << 20
        do {
            let text = try Files.readSmall(path, limit: limit)
            guard text.utf8.count < limit else {
                return .failure(SettingsError([SettingsProblem(source: nil, key: nil, message: "\(path) is larger than 1 MiB")]))
            }
            return .success(parse(text, path: path))
        } catch {
            return .failure(SettingsError([SettingsProblem(source: nil, key: nil, message: "cannot read \(path): \(error)")]))
        }
    }

    /// A value with its comment cut off, unquoted if quoted.
    static func value(_ text: String) -> Result<String, Failure> {
        guard text.hasPrefix("\"") else {
            var kept = Substring(text)
            // `#` after a space starts a comment; `a#b` is a value.
            if let hash = text.indices.first(where: { text[$0] == "#" && $0 > text.startIndex && text[text.index(before: $0)].isWhitespace }) {
                kept = text[..<hash]
            }
            return .success(String(kept).trimmingWhitespace())
        }
        var out = ""
        var escaped = false
        var index = text.index(after: text.startIndex)
        while index < text.endIndex {
            let character = text[index]
            if escaped {
                guard character == "\"" || character == "\\" else { return .failure(Failure("unknown escape \\\(character) in a quoted value")) }
                out.append(character)
                escaped = false
            } else if character == "\\" {
                escaped = true
            } else if character == "\"" {
                let rest = String(text[text.index(after: index)...]).trimmingWhitespace()
                guard rest.isEmpty || rest.hasPrefix("#") else { return .failure(Failure("text after the closing quote: \"\(rest)\"")) }
                return .success(out)
            } else {
                out.append(character)
            }
            index = text.index(after: index)
        }
        return .failure(Failure("a quoted value is not closed"))
    }

    struct Failure: Error {
        let message: String
        init(_ message: String) { self.message = message }
    }
}
