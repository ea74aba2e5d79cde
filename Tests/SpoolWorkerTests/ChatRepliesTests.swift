@testable import SpoolStore
@testable import SpoolSystem
import Testing
@testable import SpoolWorker

@Suite struct ChatRepliesTests {
    let row = UploadRecord(
        id: "01M88Z99K7WC0KHZJ57X11XW77", name: "my file.txt", size: 4000, received: 1000,
        sha256: String(repeating: "ab", count: 32), clientIP: "::1", clientPort: 5555, state: .receiving, error: nil,
        workerPID: 42, createdAt: "2026-11-25T09:00:00.000Z", updatedAt: "2026-11-25T09:00:01.000Z", finishedAt: nil)

    @Test func statusLineHasItsFieldsInTheDocumentedOrder() {
        let live = LiveProgress(received: 3000, size: 4000, rate: 123_456, updatedMilliseconds: 0)
        #expect(ChatReplies.statusText(row, live: live) == "id=01M88Z99K7WC0KHZJ57X11XW77 state=receiving name=my%20file.txt "
            + "received=3000 size=4000 percent=75.0 rate=123456 sha256=\(row.sha256) client=[::1]:5555 worker=42 "
            + "created=2026-11-25T09:00:00.000Z updated=2026-11-25T09:00:01.000Z finished=-")
        #expect(ChatReplies.statusText(row, live: nil).contains(" received=1000 size=4000 percent=25.0 rate=- "))
    }

    @Test func listLinesAndPercentages() {
        #expect(ChatReplies.listLine(row) == "01M88Z99K7WC0KHZJ57X11XW77 receiving 1000/4000 25.0% abababababab my%20file.txt")
        #expect(ChatReplies.oneDecimal(99.99) == "99.9")
        #expect(ChatReplies.oneDecimal(100) == "100.0")
        var empty = row
        empty.size = 0
        empty.received = 0
        #expect(ChatReplies.listLine(empty).contains(" 0/0 100.0% "))
    }

    @Test func onlyReceivingIsLiveForWatch() {
        #expect(!ChatReplies.isFinal(.receiving))
        for state in UploadState.allCases where state != .receiving { #expect(ChatReplies.isFinal(state)) }
    }
}
