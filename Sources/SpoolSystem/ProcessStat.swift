/// Reading `/proc/<pid>/stat` (proc(5)): the fields after the command name,
/// which may itself hold spaces and parentheses, so it is skipped up to its last `)`.
public enum ProcessStat {
    /// The state letter (`R`, `S`, `D`, `Z`, `T`, …), or nil when the text is not a stat line.
    public static func state(of stat: String) -> Character? {
        guard let close = stat.lastIndex(of: ")") else { return nil }
        return stat[stat.index(after: close)...].first { $0 != " " }
    }
}
