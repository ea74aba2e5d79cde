import ArgumentParser
import Foundation
import SpoolMaster
import SpoolS3
import SpoolStore
import SpoolSystem

@main
struct Spoold: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "spoold",
        abstract: "The Spool upload server: a master process supervising forked workers.",
        version: "0.1.0",
        subcommands: [Serve.self, Config.self, Admin.self]
    )
}

/// Where the database and the spool live, for the admin commands: --data-dir,
/// else data-dir as `spoold serve` would resolve it (SPOOL_DATA_DIR, the
/// configuration file), else var.
struct DataDirectoryOptions: ParsableArguments {
    @Option(name: .customLong("data-dir"), help: "Data directory: database, spool, pid file (default: as spoold serve, else var).")
    var dataDir: String?

    @OptionGroup var file: ConfigFileOptions

    func validate() throws {
        if dataDir?.isEmpty == true { throw ValidationError("--data-dir must not be empty") }
    }

    /// The retention policy the server with these settings applies.
    var retention: RetentionPolicy {
        get throws {
            let sources: SettingSources
            do {
                sources = try file.sources(flags: [:])
            } catch {
                throw AdminFailure(error.description)
            }
            guard let policy = Settings.retention(sources) else {
                throw AdminFailure("the retain setting does not parse: spoold config check says why")
            }
            return policy
        }
    }

    /// The catalog and blob store the server with these settings uses (`database`,
    /// `objects`, `part-size`); by default SQLite and the spool directory.
    var backends: StoreBackends {
        get throws {
            let sources: SettingSources
            do { sources = try file.sources(flags: [:]) } catch { throw AdminFailure(error.description) }
            let (objects, partSize) = Settings.objectStore(sources)
            do {
                return try StoreBackends(objects: objects, partSize: partSize, database: Settings.catalogURL(sources))
            } catch {
                throw AdminFailure("\(error)")
            }
        }
    }

    var path: String {
        get throws {
            var flags: SettingLayer = [:]
            if let dataDir { flags[SettingKey.dataDir.name] = Assignment([dataDir], from: .flag("--data-dir")) }
            do {
                return Settings.dataDirectory(try file.sources(flags: flags))
            } catch {
                throw AdminFailure(error.description)
            }
        }
    }
}
