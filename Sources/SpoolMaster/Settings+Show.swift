import SpoolSystem

extension Settings {
    /// The effective configuration as a configuration file, each line saying
    /// where its value came from: `spoold config show` prints it, and what it
    /// prints reads back as the same settings (secrets aside, which it masks).
    public func rendered() -> String {
        var lines: [String] = []
        for key in SettingKey.all {
            guard let assignment = assignments[key.name], !assignment.values.isEmpty else {
                lines.append("# \(key.name) is not set")
                continue
            }
            for value in assignment.values {
                let shown = key.secret ? "********" : Self.quotedIfNeeded(value)
                lines.append(("\(key.name) = \(shown)").padding(toLength: 40) + "  # \(assignment.source)")
            }
        }
        return lines.joined(separator: "\n") + "\n"
    }

    /// Quotes a value that would otherwise read back differently: blank at its
    /// ends, a comment sign after a space, a quote at the start, or empty.
    static func quotedIfNeeded(_ value: String) -> String {
        let plain = !value.isEmpty && value.trimmingWhitespace() == value && !value.hasPrefix("\"")
            && !value.contains(" #") && !value.contains("\t#")
        guard !plain else { return value }
        return "\"" + value.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"") + "\""
    }
}

extension String {
    fileprivate func padding(toLength length: Int) -> String {
        count >= length ? self : self + String(repeating: " ", count: length - count)
    }
}
