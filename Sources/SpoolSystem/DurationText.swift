/// Durations as people write them on a command line: `90`, `90s`, `30m`, `24h`, `7d`, `1.5h`.
public enum DurationText {
    /// Seconds, or nil when the text is not a non-negative number with an optional unit.
    public static func seconds(_ text: String) -> Double? {
        let units: [Character: Double] = ["s": 1, "m": 60, "h": 3600, "d": 86_400]
        var number = Substring(text)
        var scale = 1.0
        if let last = text.last, let unit = units[last] {
            number = number.dropLast()
            scale = unit
        }
        guard !number.isEmpty, number.allSatisfy({ $0.isASCII && ($0.isNumber || $0 == ".") }),
            let value = Double(number), value.isFinite, value >= 0
        else { return nil }
        return value * scale
    }

    /// Seconds as `5s`, `0.25s`: for messages.
    public static func format(_ seconds: Double) -> String {
        seconds == seconds.rounded() && seconds < 1e15 ? "\(Int64(seconds))s" : "\(seconds)s"
    }
}
