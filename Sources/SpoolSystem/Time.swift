#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Wall-clock times as UTC ISO 8601 strings with milliseconds. They sort as text,
/// which is how the database compares them.
public enum UTCTime {
    public static func now() -> String {
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME, &ts)
        return format(seconds: Int(ts.tv_sec), milliseconds: Int(ts.tv_nsec / 1_000_000))
    }

    public static func format(seconds: Int, milliseconds: Int = 0) -> String {
        var t = time_t(seconds)
        var parts = tm()
        gmtime_r(&t, &parts)
        return pad(parts.tm_year + 1900, 4) + "-" + pad(parts.tm_mon + 1, 2) + "-" + pad(parts.tm_mday, 2)
            + "T" + pad(parts.tm_hour, 2) + ":" + pad(parts.tm_min, 2) + ":" + pad(parts.tm_sec, 2)
            + "." + pad(Int32(milliseconds), 3) + "Z"
    }

    /// The UTC day (`2026-12-05`) of a time in seconds since the epoch, as a
    /// certificate's validity is told to people.
    public static func day(seconds: Int) -> String {
        String(format(seconds: seconds).prefix(10))
    }

    /// Seconds on a clock that never jumps, for measuring intervals.
    public static func monotonic() -> Double {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9
    }

    private static func pad(_ value: Int32, _ width: Int) -> String {
        let s = String(value)
        return s.count >= width ? s : String(repeating: "0", count: width - s.count) + s
    }
}

extension UTCTime {
    public static func epochMilliseconds() -> Int64 {
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME, &ts)
        return Int64(ts.tv_sec) * 1000 + Int64(ts.tv_nsec / 1_000_000)
    }
}

extension UTCTime {
    /// A point in time as people write it for --since and --until: a duration back
    /// from now (`90s`, `2h`, `7d`), a day (`2026-11-25`), or an ISO time
    /// (`2026-11-25T08:00:00Z`, with or without milliseconds). Returns the UTC ISO
    /// form the database compares, or nil.
    public static func parse(_ text: String, now: Int64 = epochMilliseconds()) -> String? {
        if let seconds = DurationText.seconds(text) {
            let at = now - Int64(seconds * 1000)
            return format(seconds: Int(at / 1000), milliseconds: Int(at % 1000))
        }
        guard let (fields, millis) = isoFields(text) else { return nil }
        var parts = fields
        return format(seconds: Int(timegm(&parts)), milliseconds: millis)
    }
}

extension UTCTime {
    /// Seconds since the epoch of a time as `format` writes it, or nil.
    public static func epochSeconds(_ iso: String) -> Int64? {
        guard iso.utf8.count >= 19, var (parts, _) = isoFields(iso) else { return nil }
        return Int64(timegm(&parts))
    }

    /// The fields of `YYYY-MM-DD`, `YYYY-MM-DDTHH:MM:SSZ` or
    /// `YYYY-MM-DDTHH:MM:SS.mmmZ`, each in range; nil for anything else.
    static func isoFields(_ text: String) -> (tm, millis: Int)? {
        let digits = Array(text.utf8)
        func number(_ range: Range<Int>) -> Int? {
            guard range.upperBound <= digits.count else { return nil }
            return Int(String(decoding: digits[range], as: UTF8.self))
        }
        guard digits.count >= 10, digits[4] == UInt8(ascii: "-"), digits[7] == UInt8(ascii: "-"),
            let year = number(0..<4), let month = number(5..<7), let day = number(8..<10),
            (1...12).contains(month), (1...31).contains(day)
        else { return nil }
        var hour = 0, minute = 0, second = 0, millis = 0
        if digits.count > 10 {
            guard digits[10] == UInt8(ascii: "T"), digits.count >= 20, digits.last == UInt8(ascii: "Z"),
                let h = number(11..<13), let m = number(14..<16), let s = number(17..<19),
                (0..<24).contains(h), (0..<60).contains(m), (0..<61).contains(s)
            else { return nil }
            (hour, minute, second) = (h, m, s)
            if digits.count == 24 {
                guard digits[19] == UInt8(ascii: "."), let ms = number(20..<23) else { return nil }
                millis = ms
            } else if digits.count != 20 {
                return nil
            }
        }
        var parts = tm()
        (parts.tm_year, parts.tm_mon, parts.tm_mday) = (Int32(year - 1900), Int32(month - 1), Int32(day))
        (parts.tm_hour, parts.tm_min, parts.tm_sec) = (Int32(hour), Int32(minute), Int32(second))
        return (parts, millis)
    }
}
