import Foundation
import SpoolSystem
import Testing

/// The watchdog spares a worker whose threads wait on the disk (`D`): reading that state.
@Suite struct ProcessStatTests {
    @Test func theStateFollowsTheLastParenthesis() {
        #expect(ProcessStat.state(of: "1234 (spoold) S 1 1234 1234 0 -1") == "S")
        #expect(ProcessStat.state(of: "99 (a) b) (c) D 1 2 3") == "D", "a command name may hold ) and spaces")
        #expect(ProcessStat.state(of: "garbage") == nil)
    }

    @Test func aRunningThreadIsNotWaitingOnTheDisk() throws {
        let stat = try Files.readSmall("/proc/self/stat")
        let state = ProcessStat.state(of: stat)
        #expect(state == "R" || state == "S", "\(stat)")
    }
}
