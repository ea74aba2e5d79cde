import ArgumentParser
import SpoolSystem

/// A value on the command line in the form people type (`512K`, `2G`; `90s`,
/// `7d`), read once, where the option is parsed: the rest of the program sees
/// bytes or seconds, and a default is written once, as a user would spell it.
struct ParsedOption<Unit: OptionUnit>: ExpressibleByArgument, Sendable {
    let value: Unit.Value
    let text: String

    init?(argument: String) {
        guard let value = Unit.parse(argument) else { return nil }
        self.value = value
        text = argument
    }

    /// A default, spelled as a user would spell it.
    init(_ text: StaticString) {
        self.text = text.description
        value = Unit.parse(text.description) ?? Unit.zero
    }

    var defaultValueDescription: String { text }
}

protocol OptionUnit {
    associatedtype Value: Sendable
    static func parse(_ text: String) -> Value?
    static var zero: Value { get }
}

/// Sizes: powers of 1024 (`ByteSize`).
enum Bytes: OptionUnit {
    static func parse(_ text: String) -> Int64? { ByteSize.parse(text) }
    static var zero: Int64 { 0 }
}

/// Durations (`DurationText`).
enum Seconds: OptionUnit {
    static func parse(_ text: String) -> Double? { DurationText.seconds(text) }
    static var zero: Double { 0 }
}

typealias SizeValue = ParsedOption<Bytes>
typealias DurationValue = ParsedOption<Seconds>

extension ParsedOption where Unit == Bytes {
    var bytes: Int64 { value }
}

extension ParsedOption where Unit == Seconds {
    var seconds: Double { value }
}
