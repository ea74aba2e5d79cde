#if canImport(Glibc)
import Glibc
#endif
import Synchronization

/// Test builds only: makes one file-system call fail on purpose, so a test can
/// check what each failure on the durability path leaves behind (docs/DESIGN.md,
/// "Failures"). `SPOOL_FAULT=<call>[@<part of the path>]:<n>[:<errno>]` fails the
/// n-th call of `<call>` (`write`, `fsync`, `fdatasync`, `link`, `rename`,
/// `syncfs`, `unlink`, `open`) on a path containing that part,
/// with `EIO` unless another errno is named (`ENOSPC`, `EIO`, `EROFS`), in
/// worker processes and the master's chore children only.
/// `SPOOL_FAULT=sync:skip` instead makes every `fsync`, `fdatasync` and `syncfs`
/// report success without syncing: a disk that lies, which the power-loss test
/// (Tests/PowerLoss) must catch. The
/// `Files` wrappers are the one place those calls are made, so they are the one
/// place that asks. Chosen over `strace --inject` because it follows the forked
/// workers without a tracer slowing every call, and names paths, not descriptors.
/// Release builds compile every check to nothing.
public enum Fault {
    #if DEBUG
    struct Rule: Sendable {
        let call: String
        let pathPart: String?
        let nth: Int
        let errno: Int32
        var skipsSyncs: Bool { call == "sync" && nth == 0 }
    }

    static let rule: Rule? = getenv("SPOOL_FAULT").flatMap { parse(String(cString: $0)) }
    static let seen = Atomic<Int>(0)
    static let armed = Atomic<Bool>(false)

    static func parse(_ text: String) -> Rule? {
        let fields = text.split(separator: ":").map(String.init)
        if fields == ["sync", "skip"] { return Rule(call: "sync", pathPart: nil, nth: 0, errno: 0) }
        guard fields.count >= 2, let nth = Int(fields[1]), nth > 0 else { return nil }
        let target = fields[0].split(separator: "@", maxSplits: 1).map(String.init)
        let codes: [String: Int32] = ["EIO": EIO, "ENOSPC": ENOSPC, "EROFS": EROFS, "EDQUOT": EDQUOT]
        let code = fields.count > 2 ? codes[fields[2]] : EIO
        guard let call = target.first, let code else { return nil }
        return Rule(call: call, pathPart: target.count > 1 ? target[1] : nil, nth: nth, errno: code)
    }
    #endif

    /// Faults fire in workers and the master's chore children only: each arms them
    /// once forked (and counts its own calls), so the master's start-up and the
    /// admin commands never meet one.
    public static func arm() {
        #if DEBUG
        armed.store(true, ordering: .relaxed)
        #endif
    }

    /// True when syncs are to be skipped (`sync:skip`).
    @inline(__always)
    public static func skipsSync() -> Bool {
        #if DEBUG
        return rule?.skipsSyncs == true && armed.load(ordering: .relaxed)
        #else
        return false
        #endif
    }

    /// Throws the chosen error when this is the chosen call.
    @inline(__always)
    public static func check(_ call: StaticString, _ path: String) throws(SystemError) {
        #if DEBUG
        guard let rule, armed.load(ordering: .relaxed), rule.call == call.description, rule.pathPart.map({ path.contains($0) }) ?? true else { return }
        if seen.add(1, ordering: .relaxed).newValue == rule.nth {
            throw SystemError(call.description, "\(path) (injected)", errno: rule.errno)
        }
        #endif
    }
}
