/// The command summary, served by HELP and kept in step with docs/PROTOCOL.md.
public enum Help {
    public static let usage: [String: String] = [
        "HELLO": "HELLO <version>  (the highest protocol version you speak; the reply names the one in use)",
        "UPLOAD": "UPLOAD <size> <sha256> <name>  (then wait for 150 and send exactly <size> bytes)",
        "RESUME": "RESUME <id> <sha256>  (continue an interrupted upload: wait for 150 offset=N, send the bytes from N)",
        "HELP": "HELP [command]",
        "PING": "PING  (answers 200 pong)",
        "QUIT": "QUIT  (closes the connection)",
    ]

    public static let order = ["HELLO", "UPLOAD", "RESUME", "PING", "HELP", "QUIT"]

    public static func reply(topic: String?) -> [Reply] {
        if let topic {
            guard let text = usage[topic] else {
                return [Reply(.badArguments, "no help for \"\(topic.prefix(32))\"; commands: \(order.joined(separator: " "))")]
            }
            return [Reply(.help, text)]
        }
        return Reply.lines(.help, ["commands:"] + order.compactMap { usage[$0] } + ["end of help"])
    }
}

/// Versions and names that both sides agree on.
public enum ProtocolInfo {
    /// The highest protocol version this build speaks.
    public static let version = 1
    public static let softwareVersion = "0.1.0"
    public static let product = "spool/\(softwareVersion)"
    /// The longest control line accepted, in bytes, not counting the line ending.
    public static let maxLineBytes = 8192
}
