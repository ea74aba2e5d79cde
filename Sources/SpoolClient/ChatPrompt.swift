import SpoolProtocol
import SpoolSystem

#if canImport(Glibc)
import Glibc
#endif

/// `spool chat`: lines typed (or piped) go to the server; everything the server
/// sends is printed as it arrives, including lines pushed by WATCH while the user
/// types. It waits on both the input and the socket with poll(2), so neither
/// blocks the other.
public struct ChatPrompt {
    public let connection: Connection
    public let input: Int32
    /// Prompt only when a person is typing.
    public let interactive: Bool
    public let prompt = "spool> "

    public init(connection: Connection, input: Int32 = STDIN_FILENO, interactive: Bool) {
        self.connection = connection
        self.input = input
        self.interactive = interactive
    }

    /// Runs until the server closes the connection (after QUIT) or the input ends. Returns an exit code.
    public func run() -> Int32 {
        write(connection.greeting.description + "\n")
        var pendingInput: [UInt8] = []
        var inputOpen = true
        var quitSentAt: Double?
        if interactive { write(prompt) }
        while true {
            var fds = [pollfd(fd: connection.descriptor, events: Int16(POLLIN), revents: 0)]
            if inputOpen { fds.append(pollfd(fd: input, events: Int16(POLLIN), revents: 0)) }
            // Over TLS, decrypted lines may wait that the socket no longer shows.
            let waiting = connection.hasBufferedInput
            let ready = poll(&fds, nfds_t(fds.count), waiting ? 0 : 200)
            if ready < 0 && currentErrno() != EINTR { return 1 }
            if waiting { fds[0].revents |= Int16(POLLIN) }
            if let sent = quitSentAt, UTCTime.monotonic() - sent > 5 { return 0 }  // the server never closed: leave anyway

            if fds[0].revents != 0 {
                do {
                    let lines = try connection.receiveLines()
                    if interactive && !lines.isEmpty { write("\r\u{1B}[K") }
                    for line in lines { write(line + "\n") }
                    if interactive && !lines.isEmpty { write(prompt) }
                } catch {
                    if quitSentAt == nil && inputOpen {
                        write("spool: \(error)\n")
                        return 1
                    }
                    return 0  // closed after QUIT or after our input ended: the normal end
                }
            }
            if inputOpen, fds.count > 1, fds[1].revents != 0 {
                var chunk = [UInt8](repeating: 0, count: 4096)
                let n = read(input, &chunk, chunk.count)
                if n <= 0 {
                    inputOpen = false
                    if !pendingInput.isEmpty { send(pendingInput) }
                    pendingInput = []
                    // End of input: say goodbye and wait for the server to close.
                    try? connection.send(line: "QUIT")
                    quitSentAt = UTCTime.monotonic()
                    continue
                }
                pendingInput.append(contentsOf: chunk[0..<n])
                while let newline = pendingInput.firstIndex(of: UInt8(ascii: "\n")) {
                    let line = Array(pendingInput[..<newline])
                    pendingInput.removeSubrange(...newline)
                    send(line)
                    if String(decoding: line, as: UTF8.self).trimmingSpaces.uppercased() == "QUIT" {
                        quitSentAt = UTCTime.monotonic()
                    }
                }
            }
        }
    }

    private func send(_ line: [UInt8]) {
        try? connection.send(bytes: line + [UInt8(ascii: "\n")])
    }

    private func write(_ text: String) {
        Array(text.utf8).withUnsafeBytes { _ = try? Files.writeAll(STDOUT_FILENO, $0) }
    }
}

extension String {
    var trimmingSpaces: String {
        String(drop(while: { $0 == " " || $0 == "\t" || $0 == "\r" }).reversed().drop(while: { $0 == " " || $0 == "\t" || $0 == "\r" }).reversed())
    }
}
