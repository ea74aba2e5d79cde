/// The command summary, served by HELP and kept in step with docs/PROTOCOL.md.
public enum Help {
    public static let usage: [String: String] = [
        "HELLO": "HELLO <version>  (the highest protocol version you speak; the reply names the one in use)",
        "AUTH": "AUTH <token>  (authenticate with an upload token; needed when the server has tokens)",
        "UPLOAD": "UPLOAD <size> <sha256|-> <name> [--at-once]  (then wait for 150 and send exactly <size> bytes; with --at-once, send them right behind the line; with -, follow them with DIGEST <sha256>)",
        "RESUME": "RESUME <id> <sha256>  (continue an interrupted upload: wait for 150 offset=N, send the bytes from N)",
        "STATUS": "STATUS <id>  (state, name, bytes, checksum, client, worker, times; rate while receiving)",
        "FIND": "FIND [--json] <text>  (uploads whose name contains <text> or whose sha256 starts with it, newest first)",
        "LIST": "LIST [n] [--json]  (the newest n uploads, 20 by default)",
        "WATCH": "WATCH <id>  (a status line at least every 500 ms until the upload ends; send any line to stop)",
        "STATS": "STATS  (workers, connections, uploads in flight, completed today, bytes stored)",
        "HELP": "HELP [command]",
        "PING": "PING  (answers 200 pong)",
        "HEALTH": "HEALTH  (200 ready, or 453 not ready, with each check: database, disk, workers)",
        "QUIT": "QUIT  (closes the connection)",
    ]

    public static let order = ["HELLO", "AUTH", "UPLOAD", "RESUME", "STATUS", "WATCH", "LIST", "FIND", "STATS", "HEALTH", "PING", "HELP", "QUIT"]

    /// The command closest to a mistyped one (at most two edits away), if any.
    public static func closest(to word: String) -> String? {
        let scored = order.map { ($0, distance(Array(word.utf8), Array($0.utf8))) }
        guard let best = scored.min(by: { $0.1 < $1.1 }), best.1 <= 2, best.1 < word.utf8.count else { return nil }
        return best.0
    }

    /// Levenshtein distance.
    static func distance(_ a: [UInt8], _ b: [UInt8]) -> Int {
        if a.isEmpty { return b.count }
        var previous = Array(0...b.count)
        for (i, x) in a.enumerated() {
            var current = [i + 1]
            for (j, y) in b.enumerated() {
                current.append(Swift.min(previous[j + 1] + 1, current[j] + 1, previous[j] + (x == y ? 0 : 1)))
            }
            previous = current
        }
        return previous[b.count]
    }

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
    /// 2: an UPLOAD's body follows its line at once.
    /// 3: only an UPLOAD line marked `--at-once` is followed by its body at once;
    /// any other waits for `150`, so a refusal can be answered at once (docs/PROTOCOL.md).
    public static let version = 3
    public static let softwareVersion = "0.1.0"
    public static let product = "spool/\(softwareVersion)"
    /// The longest control line accepted, in bytes, not counting the line ending.
    public static let maxLineBytes = 8192
}
