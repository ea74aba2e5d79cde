/// Sizes as people write them on a command line: `1048576`, `512K`, `10M`, `2G`, `1T` (powers of 1024).
public enum ByteSize {
    public static func parse(_ text: String) -> Int64? {
        let scales: [Character: Int64] = ["K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40]
        var digits = Substring(text)
        var scale: Int64 = 1
        if let last = text.uppercased().last, let s = scales[last] {
            digits = digits.dropLast()
            scale = s
        }
        guard let value = Int64(digits), value >= 0 else { return nil }
        let (product, overflow) = value.multipliedReportingOverflow(by: scale)
        return overflow ? nil : product
    }
}
