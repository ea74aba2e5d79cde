import SpoolSystem
import Testing

/// The times the database holds, read back (tus's `Upload-Expires`) and typed
/// by people (`--since`, `--until`): one parser of the ISO forms for both.
@Suite struct UTCTimeTests {
    @Test func aStoredTimeReadsBackToItsSeconds() {
        for seconds in [0, 784_111_777, 1_709_164_800, 1_796_000_000] {
            #expect(UTCTime.epochSeconds(UTCTime.format(seconds: seconds, milliseconds: 123)) == Int64(seconds))
        }
        #expect(UTCTime.epochSeconds("2026-12-04") == nil)  // a stored time always has its clock part
        #expect(UTCTime.epochSeconds("not a time at all") == nil)
    }

    @Test func whatPeopleTypeIsCheckedFieldByField() {
        #expect(UTCTime.parse("2026-11-25") == "2026-11-25T00:00:00.000Z")
        #expect(UTCTime.parse("2026-11-25T08:00:00Z") == "2026-11-25T08:00:00.000Z")
        #expect(UTCTime.parse("2026-11-25T08:00:00.250Z") == "2026-11-25T08:00:00.250Z")
        for bad in ["2026-13-01", "2026-11-32", "2026-11-25T24:00:00Z", "2026-11-25T08:00:00", "2026-11-25T08:00:00.2Z", "yesterday"] {
            #expect(UTCTime.parse(bad) == nil, "\(bad)")
        }
    }
}
