import ArgumentParser
import SpoolSystem

/// A size on the command line (`512K`, `10M`, `2G`, `1T`: powers of 1024), read
/// once, where the option is parsed: the rest of the program sees bytes, and
/// the default is written once, in the form people type.
struct SizeValue: ExpressibleByArgument, Sendable {
    let bytes: Int64
    let text: String

    init?(argument: String) {
        guard let bytes = ByteSize.parse(argument) else { return nil }
        self.bytes = bytes
        text = argument
    }

    /// A default, spelled as a user would spell it.
    init(_ text: StaticString) {
        self.text = text.description
        bytes = ByteSize.parse(text.description) ?? 0
    }

    var defaultValueDescription: String { text }
}

/// A duration on the command line (`90s`, `30m`, `24h`, `7d`), read once.
struct DurationValue: ExpressibleByArgument, Sendable {
    let seconds: Double
    let text: String

    init?(argument: String) {
        guard let seconds = DurationText.seconds(argument) else { return nil }
        self.seconds = seconds
        text = argument
    }

    init(_ text: StaticString) {
        self.text = text.description
        seconds = DurationText.seconds(text.description) ?? 0
    }

    var defaultValueDescription: String { text }
}
