import ArgumentParser
import SpoolSystem

/// A size on an admin command line in the form people type (`512K`, `2G`), read
/// once, where the option is parsed: the rest of the program sees bytes. (The
/// settings of `serve` are read by Settings.resolve, whichever layer sets them.)
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

typealias SizeValue = ParsedOption<Bytes>

extension ParsedOption where Unit == Bytes {
    var bytes: Int64 { value }
}
