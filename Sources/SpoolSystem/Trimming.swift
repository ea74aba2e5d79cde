extension StringProtocol {
    /// Without the white space (a carriage return included) at either end: what
    /// the configuration file and the policies written in it are read with.
    public func trimmingWhitespace() -> String {
        guard let first = firstIndex(where: { !$0.isWhitespace }), let last = lastIndex(where: { !$0.isWhitespace }) else { return "" }
        return String(self[first...last])
    }
}
