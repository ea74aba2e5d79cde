#if canImport(Glibc)
import Glibc
#endif

/// Named points on the durability path where a test build kills itself with
/// `SIGKILL`, so a test can check what a crash between two steps leaves behind
/// (docs/DESIGN.md). The point is chosen with the environment variable
/// `SPOOL_CRASH_AT`, read once; release builds compile every point to nothing.
public enum CrashPoint {
    #if DEBUG
    private static let chosen: String? = getenv("SPOOL_CRASH_AT").map { String(cString: $0) }
    #endif

    @inline(__always)
    public static func reach(_ name: StaticString) {
        #if DEBUG
        if let chosen, chosen == name.description { kill(getpid(), SIGKILL) }
        #endif
    }
}
