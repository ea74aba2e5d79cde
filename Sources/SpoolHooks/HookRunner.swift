import CSpoolSys
import SpoolSystem

#if canImport(Glibc)
import Glibc
#endif

/// How one run of a hook ended.
public struct HookResult: Sendable, Equatable {
    public enum Ending: Sendable, Equatable {
        case exited(Int32)
        case signalled(Int32)
        /// Still running at its time limit: its process group was killed.
        case timedOut(Double)
        /// It could not be started (no such file, not executable, no processes left).
        case cannotRun(String)
    }

    public var ending: Ending
    /// The first bytes of its standard output and error (up to `HookRunner.kept` each).
    public var output: String
    public var errors: String

    public init(ending: Ending, output: String, errors: String) {
        (self.ending, self.output, self.errors) = (ending, output, errors)
    }

    public var succeeded: Bool { ending == .exited(0) }

    /// The first line of its standard output, cleaned for a reply line: what a
    /// refusing pre-create hook says to the client.
    public var firstOutputLine: String { Self.firstLine(output) }

    /// For the log and `spoold admin hooks`: "exit 3: <first line of stderr>".
    public var summary: String {
        let said = Self.firstLine(errors)
        let how: String
        switch ending {
        case .exited(let code): how = "exit \(code)"
        case .signalled(let signal): how = "killed by signal \(signal)"
        case .timedOut(let seconds): how = "timed out after \(DurationText.format(seconds))"
        case .cannotRun(let why): return "cannot run: \(why)"
        }
        return said.isEmpty ? how : "\(how): \(said)"
    }

    /// At most 200 printable characters of the first non-empty line.
    static func firstLine(_ text: String) -> String {
        let line = text.split(whereSeparator: \.isNewline).first { !$0.trimmingWhitespace().isEmpty } ?? ""
        let printable = line.unicodeScalars.filter { $0.value >= 0x20 && $0.value != 0x7f }
        return String(String.UnicodeScalarView(printable.prefix(200))).trimmingWhitespace()
    }
}

/// Runs a hook's command as a child process: `input` on its standard input, its
/// standard output and error read back, a time limit. Blocking: call it from a
/// thread that may wait (a worker's hook pool, the dispatcher process).
public enum HookRunner {
    /// Bytes of each stream kept; the rest is read and dropped, so a chatty hook never blocks.
    public static let kept = 4096

    public static func run(_ command: HookCommand, input: [UInt8], timeout: Double, environment: [String: String] = [:]) -> HookResult {
        var toChild: [Int32] = [-1, -1]
        var fromChild: [Int32] = [-1, -1]
        var errChild: [Int32] = [-1, -1]
        guard spool_pipe_cloexec(&toChild) == 0 else { return HookResult(ending: .cannotRun("\(SystemError.last("pipe"))"), output: "", errors: "") }
        guard spool_pipe_cloexec(&fromChild) == 0 else {
            closeAll(toChild)
            return HookResult(ending: .cannotRun("\(SystemError.last("pipe"))"), output: "", errors: "")
        }
        guard spool_pipe_cloexec(&errChild) == 0 else {
            closeAll(toChild + fromChild)
            return HookResult(ending: .cannotRun("\(SystemError.last("pipe"))"), output: "", errors: "")
        }
        var pid: Int32 = 0
        let rc = withCStrings(command.arguments) { argv in
            withCStrings(environmentLines(adding: environment.merging(["SPOOL_HOOK": command.hook.rawValue]) { $1 })) { envp in
                spool_spawn(command.arguments[0], argv, envp, toChild[0], fromChild[1], errChild[1], &pid)
            }
        }
        close(toChild[0])
        close(fromChild[1])
        close(errChild[1])
        guard rc == 0 else {
            closeAll([toChild[1], fromChild[0], errChild[0]])
            return HookResult(ending: .cannotRun("\(command.arguments[0]): \(String(cString: strerror(rc)))"), output: "", errors: "")
        }
        for fd in [toChild[1], fromChild[0], errChild[0]] { _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK) }
        let deadline = UTCTime.monotonic() + timeout
        // A hook that exits without reading its input makes our write fail with
        // EPIPE; the SIGPIPE that comes with it must not end this process.
        var pipeSignal = sigset_t()
        var mask = sigset_t()
        sigemptyset(&pipeSignal)
        sigaddset(&pipeSignal, SIGPIPE)
        pthread_sigmask(SIG_BLOCK, &pipeSignal, &mask)
        defer {
            var now = timespec(tv_sec: 0, tv_nsec: 0)
            while sigtimedwait(&pipeSignal, nil, &now) > 0 {}
            pthread_sigmask(SIG_SETMASK, &mask, nil)
        }
        // Readable once the child exits: its end is noticed at once, not at the next look.
        let exited = spool_pidfd_open(pid)
        defer { if exited >= 0 { close(exited) } }
        var streams = Streams(input: input, stdin: toChild[1], stdout: fromChild[0], stderr: errChild[0])
        streams.pump(until: deadline)
        let ending = reap(pid, exited: exited, deadline: deadline, timeout: timeout)
        streams.closeAll()
        return HookResult(
            ending: ending, output: String(decoding: streams.output, as: UTF8.self), errors: String(decoding: streams.errors, as: UTF8.self))
    }

    /// Waits for the child until the deadline, then kills its whole group. With a
    /// pidfd the wait is a poll on it; without one (an old kernel), a look every 2 ms.
    private static func reap(_ pid: Int32, exited: Int32, deadline: Double, timeout: Double) -> HookResult.Ending {
        var status: Int32 = 0
        while true {
            let done = waitpid(pid, &status, WNOHANG)
            if done == pid { break }
            if done < 0 && errno != EINTR { return .cannotRun("\(SystemError.last("waitpid"))") }
            let left = deadline - UTCTime.monotonic()
            if left <= 0 {
                kill(-pid, SIGKILL)
                while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
                return .timedOut(timeout)
            }
            if exited >= 0 {
                var watch = pollfd(fd: exited, events: Int16(POLLIN), revents: 0)
                _ = poll(&watch, 1, Int32(min(left * 1000 + 1, 1000)))
            } else {
                usleep(2_000)
            }
        }
        if status & 0x7f == 0 { return .exited((status >> 8) & 0xff) }
        return .signalled(status & 0x7f)
    }

    /// The input written and both outputs read, together, so neither side waits on a full pipe.
    private struct Streams {
        var input: [UInt8]
        var written = 0
        var stdin: Int32
        var stdout: Int32
        var stderr: Int32
        var output: [UInt8] = []
        var errors: [UInt8] = []

        init(input: [UInt8], stdin: Int32, stdout: Int32, stderr: Int32) {
            (self.input, self.stdin, self.stdout, self.stderr) = (input, stdin, stdout, stderr)
            if input.isEmpty { closeInput() }
        }

        mutating func pump(until deadline: Double) {
            var buffer = [UInt8](repeating: 0, count: 16_384)
            while stdout >= 0 || stderr >= 0 {
                let left = deadline - UTCTime.monotonic()
                if left <= 0 { return }
                var fds = [
                    pollfd(fd: stdin, events: Int16(POLLOUT), revents: 0),
                    pollfd(fd: stdout, events: Int16(POLLIN), revents: 0),
                    pollfd(fd: stderr, events: Int16(POLLIN), revents: 0),
                ]
                let ready = poll(&fds, 3, Int32(min(left * 1000 + 1, 1000)))
                if ready < 0 && errno != EINTR { return }
                if stdin >= 0 && fds[0].revents != 0 { writeInput() }
                if stdout >= 0 && fds[1].revents != 0 { read(&stdout, into: &output, buffer: &buffer) }
                if stderr >= 0 && fds[2].revents != 0 { read(&stderr, into: &errors, buffer: &buffer) }
            }
        }

        mutating func writeInput() {
            let n = input[written...].withUnsafeBytes { raw in write(stdin, raw.baseAddress, raw.count) }
            if n > 0 { written += n }
            // EPIPE: the hook does not read its input, which is its right.
            if written == input.count || (n < 0 && errno != EAGAIN && errno != EINTR) { closeInput() }
        }

        mutating func closeInput() {
            if stdin >= 0 { close(stdin) }
            stdin = -1
        }

        func read(_ fd: inout Int32, into kept: inout [UInt8], buffer: inout [UInt8]) {
            let n = buffer.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, $0.count) }
            if n > 0 {
                kept.append(contentsOf: buffer[0..<min(n, max(0, HookRunner.kept - kept.count))])
            } else if n == 0 || (errno != EAGAIN && errno != EINTR) {
                close(fd)
                fd = -1
            }
        }

        mutating func closeAll() {
            closeInput()
            for fd in [stdout, stderr] where fd >= 0 { close(fd) }
            (stdout, stderr) = (-1, -1)
        }
    }

    private static func closeAll(_ fds: [Int32]) {
        for fd in fds where fd >= 0 { close(fd) }
    }

    /// The server's environment with `adding` over it, as NAME=VALUE lines.
    static func environmentLines(adding: [String: String]) -> [String] {
        var lines: [String] = []
        var index = 0
        while let entry = environ[index] {
            let line = String(cString: entry)
            let name = line.prefix { $0 != "=" }
            if adding[String(name)] == nil { lines.append(line) }
            index += 1
        }
        return lines + adding.map { "\($0.key)=\($0.value)" }.sorted()
    }

    /// A NULL-terminated array of C strings, alive during `body`.
    static func withCStrings<T>(_ strings: [String], _ body: ([UnsafeMutablePointer<CChar>?]) -> T) -> T {
        let copies = strings.map { strdup($0) }
        defer { for copy in copies { free(copy) } }
        return body(copies + [nil])
    }
}
