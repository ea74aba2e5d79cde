import ArgumentParser
import Logging
import Foundation
import SpoolMaster
import SpoolS3
import SpoolStore
import SpoolSystem

struct Serve: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run the server: bind, migrate, fork workers, supervise them.",
        discussion: """
            Every option is also a key in the configuration file (--config) and a SPOOL_… environment \
            variable (--max-file-size, max-file-size = 2G, SPOOL_MAX_FILE_SIZE=2G): flags override the \
            environment, which overrides the file. HUP reads the file again.
            """
    )

    @OptionGroup var options: ServeOptions

    func run() throws {
        let (settings, sources) = try options.resolve()
        SpoolLogging.bootstrap(level: settings.logLevel, format: settings.logFormat)
        let logger = Logger(label: "master")
        for stray in sources.strayEnvironment() {
            logger.warning("environment variable ignored: not a spoold setting", metadata: [
                "variable": "\(stray.name)", "did_you_mean": "\(stray.didYouMean ?? "")",
            ])
        }
        var config = MasterConfiguration(settings)
        config.settingSources = sources
        do {
            config.backends = try StoreBackends(objects: settings.objects, partSize: settings.partSize, database: settings.database)
        } catch {
            logger.critical("cannot start: \(error)")
            throw ExitCode(64)
        }
        let code: Int32
        do {
            code = try Arbiter(config: config).run()
        } catch {
            logger.critical("cannot start: \(error)")
            throw ExitCode(1)
        }
        throw ExitCode(code)
    }
}
