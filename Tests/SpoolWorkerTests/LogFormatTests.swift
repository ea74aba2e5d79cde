import Foundation
import Testing
@testable import SpoolSystem

@Suite struct LogFormatTests {
    @Test func jsonStringsEscapeWhatJSONForbids() throws {
        let text = "a \"quoted\" name\\path\nnext\tline \u{1} é ✓"
        let quoted = SpoolLogHandler.quote(text)
        #expect(quoted == "\"a \\\"quoted\\\" name\\\\path\\nnext\\tline \\u0001 é ✓\"")
        // And a JSON parser reads back exactly the text.
        let parsed = try JSONSerialization.jsonObject(with: Data("[\(quoted)]".utf8)) as? [String]
        #expect(parsed == [text])
    }
}
