import ArgumentParser
import Foundation
import SpoolStore
import SpoolSystem

extension Admin {
    struct Hooks: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Where the hook dispatcher is in the event log: its cursor, its lag, its last failures; replay from an event.",
            discussion: """
                The dispatcher delivers each event after the cursor to its notification hook, in order, and moves the \
                cursor once the hook succeeds (docs/HOOKS.md). --replay-from SEQ moves the cursor so that event SEQ is \
                delivered next (and everything after it, again); a running server's dispatcher follows at once.
                """)

        @OptionGroup var data: DataDirectoryOptions

        @Option(help: ArgumentHelp("Deliver again from this event on (its seq, as `spoold admin events --csv` shows).", valueName: "seq"))
        var replayFrom: Int64?

        @Option(help: "How many of the last failures to show.")
        var failures = 10

        @Flag(help: "Print JSON.")
        var json = false

        func validate() throws {
            if let replayFrom, replayFrom < 1 { throw ValidationError("--replay-from takes an event's seq, 1 or more") }
            if failures < 0 { throw ValidationError("--failures must not be negative") }
        }

        func run() throws {
            try reporting {
                let store = try openStore(data)
                if let replayFrom {
                    let last = try store.hookLedger(failures: 0).lastEvent
                    guard replayFrom <= last + 1 else {
                        throw AdminFailure("--replay-from \(replayFrom): the log ends at event \(last)")
                    }
                    try store.setHookCursor(replayFrom - 1)
                    printStandardError("hook cursor moved: event \(replayFrom) is delivered next")
                }
                let ledger = try store.hookLedger(failures: failures)
                if json {
                    print(try jsonText(ledger, pretty: true))
                    return
                }
                print(Self.describe(ledger, nowMilliseconds: UTCTime.epochMilliseconds()))
            }
        }

        static func describe(_ ledger: HookLedger, nowMilliseconds: Int64) -> String {
            var lines: [String] = []
            if let cursor = ledger.cursor {
                lines.append("cursor      \(cursor) (moved \(ledger.cursorUpdatedAt ?? "-"))")
            } else {
                lines.append("cursor      none: the dispatcher has not run (it starts at the end of the log)")
            }
            lines.append("last event  \(ledger.lastEvent)")
            if ledger.pending == 0 {
                lines.append("lag         none")
            } else {
                let age = ledger.oldestPendingAt.flatMap(UTCTime.epochSeconds).map { max(0, nowMilliseconds / 1000 - $0) }
                lines.append("lag         \(ledger.pending) events" + (age.map { ", the oldest \($0) s old" } ?? ""))
            }
            if ledger.failures.isEmpty {
                lines.append("failures    none kept")
            } else {
                lines.append("failures (newest first):")
                for f in ledger.failures {
                    lines.append("  \(f.at)  event \(f.seq)  \(f.hook)  attempt \(f.attempt)  \(f.outcome)")
                }
            }
            return lines.joined(separator: "\n")
        }
    }
}
