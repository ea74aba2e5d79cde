#if canImport(Glibc)
import Glibc
#endif

/// Wait statuses and signal names, for the log.
extension Arbiter {
    static func exitCode(_ status: Int32) -> Int32? {
        status & 0x7f == 0 ? (status >> 8) & 0xff : nil
    }

    static func describe(status: Int32) -> String {
        if let code = exitCode(status) { return "exit \(code)" }
        return "killed by \(name(status & 0x7f))"
    }

    static func name(_ signal: Int32) -> String {
        switch signal {
        case SIGHUP: "HUP"
        case SIGINT: "INT"
        case SIGQUIT: "QUIT"
        case SIGKILL: "KILL"
        case SIGABRT: "ABRT"
        case SIGSEGV: "SEGV"
        case SIGTERM: "TERM"
        case SIGUSR1: "USR1"
        case SIGUSR2: "USR2"
        case SIGCHLD: "CHLD"
        case SIGTTIN: "TTIN"
        case SIGTTOU: "TTOU"
        case SIGWINCH: "WINCH"
        case SIGTRAP: "TRAP"
        case SIGILL: "ILL"
        case SIGBUS: "BUS"
        case SIGSTOP: "STOP"
        default: "signal \(signal)"
        }
    }
}
