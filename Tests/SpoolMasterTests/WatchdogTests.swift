import Testing
@testable import SpoolMaster

@Suite struct WatchdogTests {
    @Test func aBeatNewerThanTheClockReadIsNoSilence() {
        #expect(Arbiter.silence(lastBeat: 10_001, now: 10_000) == 0)
        #expect(Arbiter.silence(lastBeat: 10_000, now: 10_000) == 0)
        #expect(Arbiter.silence(lastBeat: 10_000, now: 72_500) == 62.5)
    }
}
