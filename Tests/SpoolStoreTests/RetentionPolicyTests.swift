import SpoolStore
import Testing

struct RetentionPolicyTests {
    @Test func statesTakeAnAgeOrForeverAndTheRestAreKept() throws {
        let policy = try #require(RetentionPolicy("complete=90d, failed=12h,expired=forever"))
        #expect(policy.ages == [.complete: 90 * 86_400, .failed: 12 * 3600])
        #expect(policy.description == "complete=90d,failed=12h,expired=forever,lost=forever")
        #expect(RetentionPolicy().ages.isEmpty && RetentionPolicy("")?.ages.isEmpty == true)
    }

    @Test(arguments: ["complete", "complete=", "complete=0", "complete=-1d", "receiving=1d", "interrupted=1d", "done=1d", "failed=1d,failed=2d"])
    func whatIsNotAPolicyIsRefused(text: String) {
        #expect(RetentionPolicy(text) == nil)
    }
}
