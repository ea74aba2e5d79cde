import Testing
@testable import SpoolWorker

@Suite struct RefusalCounterTests {
    @Test func aFloodFromOneAddressIsLoggedAtPowersOfTen() {
        var counter = RefusalCounter()
        let logged = (0..<1_000).compactMap { n in counter.refused("10.0.0.1", now: Double(n) * 0.01) }
        #expect(logged == [1, 10, 100, 1_000])
    }

    @Test func eachAddressHasItsOwnCount() {
        var counter = RefusalCounter()
        #expect(counter.refused("10.0.0.1", now: 0) == 1)
        #expect(counter.refused("10.0.0.2", now: 0) == 1)
        #expect(counter.refused("10.0.0.1", now: 1) == nil)
    }

    @Test func aQuietMinuteStartsTheCountAgain() {
        var counter = RefusalCounter()
        #expect(counter.refused("10.0.0.1", now: 0) == 1)
        #expect(counter.refused("10.0.0.1", now: 59) == nil)
        #expect(counter.refused("10.0.0.1", now: 118) == nil, "59 s after the last refusal: not quiet yet")
        #expect(counter.refused("10.0.0.1", now: 178) == 1)
    }

    @Test func manyAddressesAreForgottenRatherThanHeldForever() {
        var counter = RefusalCounter()
        for n in 0..<(RefusalCounter.capacity * 3) {
            _ = counter.refused("10.\(n >> 16).\((n >> 8) & 255).\(n & 255)", now: 0)
        }
        // The table was emptied when full, so this address starts again.
        #expect(counter.refused("10.0.0.0", now: 0) == 1)
    }
}
