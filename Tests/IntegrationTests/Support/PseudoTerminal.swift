import CSpoolSys
import Foundation

/// A pseudo-terminal pair: the program under test gets the follower side as its
/// terminal; the test types into and reads from the leader side.
final class PseudoTerminal {
    let leader: Int32
    let follower: FileHandle
    private var output = ""

    init() throws {
        var name = [CChar](repeating: 0, count: 128)
        leader = spool_open_pty(&name, UInt(name.count))
        guard leader >= 0 else { throw HarnessError("no pseudo-terminal") }
        let fd = open(String(decoding: name.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self), O_RDWR | O_NOCTTY)
        guard fd >= 0 else { throw HarnessError("cannot open the follower side") }
        follower = FileHandle(fileDescriptor: fd, closeOnDealloc: true)
    }

    deinit { close(leader) }

    func type(_ text: String) throws {
        let bytes = Array(text.utf8)
        guard write(leader, bytes, bytes.count) == bytes.count else { throw HarnessError("cannot type") }
    }

    /// Reads what the program printed until `marker` shows up; returns everything read so far.
    func read(until marker: String, timeout: TimeInterval = 10) throws -> String {
        let deadline = Date().addingTimeInterval(timeout)
        while !output.contains(marker) {
            guard Date() < deadline else { throw HarnessError("\"\(marker)\" never appeared; saw: \(output)") }
            var pfd = pollfd(fd: leader, events: Int16(POLLIN), revents: 0)
            guard poll(&pfd, 1, 100) > 0 else { continue }
            var chunk = [UInt8](repeating: 0, count: 4096)
            let n = Foundation.read(leader, &chunk, chunk.count)
            if n > 0 { output += String(decoding: chunk[0..<n], as: UTF8.self) }
        }
        return output
    }
}
