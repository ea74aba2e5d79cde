import ArgumentParser
import SpoolMaster

struct Config: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Check or print the configuration `spoold serve` would run with (file, environment, flags).",
        subcommands: [Check.self, Show.self]
    )

    struct Check: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Check the configuration without starting: exit 0 when `serve` would accept it, else 64 with every problem."
        )

        @OptionGroup var options: ServeOptions

        func run() throws {
            let (_, sources) = try options.resolve()
            for stray in sources.strayEnvironment() {
                let hint = stray.didYouMean.map { " (did you mean \($0)?)" } ?? ""
                printStandardError("spoold: warning: \(stray.name) is not a spoold setting; ignored\(hint)")
            }
            print(sources.file.map { "\($0.path): ok" } ?? "no configuration file; flags, environment and defaults: ok")
        }
    }

    struct Show: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Print the effective configuration, each value with where it came from; secrets masked.",
            discussion: "The output is itself a configuration file that reads back as the same settings."
        )

        @OptionGroup var options: ServeOptions

        func run() throws {
            let (settings, _) = try options.resolve()
            print(settings.rendered(), terminator: "")
        }
    }
}
