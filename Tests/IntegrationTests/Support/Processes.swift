import Foundation

/// What /proc says about processes: the tests check real parentage and liveness.
enum Processes {
    /// Parent pid and state letter from /proc/PID/stat, or nil when the process is gone.
    static func stat(_ pid: Int32) -> (ppid: Int32, state: Character)? {
        guard let text = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
            let close = text.lastIndex(of: ")")
        else { return nil }
        let fields = text[text.index(after: close)...].split(separator: " ")
        guard fields.count > 2, let state = fields[0].first, let ppid = Int32(fields[1]) else { return nil }
        return (ppid, state)
    }

    /// Alive means present and not a zombie.
    static func isAlive(_ pid: Int32) -> Bool {
        guard let info = stat(pid) else { return false }
        return info.state != "Z" && info.state != "X"
    }

    static func children(of parent: Int32) -> [Int32] {
        let entries = (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []
        return entries.compactMap(Int32.init).filter { pid in
            guard let info = stat(pid) else { return false }
            return info.ppid == parent && info.state != "Z"
        }.sorted()
    }

    static func commandLine(_ pid: Int32) -> [String] {
        guard let data = FileManager.default.contents(atPath: "/proc/\(pid)/cmdline") else { return [] }
        return data.split(separator: 0).map { String(decoding: $0, as: UTF8.self) }
    }
}
