import ArgumentParser
import SpoolSystem

@main
struct Spoold: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "spoold",
        abstract: "The Spool upload server: a master process supervising forked workers.",
        version: "0.1.0",
        subcommands: [Serve.self, Admin.self]
    )
}

/// Where the database and the spool live; shared by every subcommand.
struct DataDirectoryOptions: ParsableArguments {
    @Option(name: .customLong("data-dir"), help: "Data directory: database, spool, pid file.")
    var dataDir: String = "var"

    func validate() throws {
        if dataDir.isEmpty { throw ValidationError("--data-dir must not be empty") }
    }
}
