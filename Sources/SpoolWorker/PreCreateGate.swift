import Logging
import NIOCore
import NIOPosix
import SpoolHooks
import SpoolStore
import SpoolSystem

/// The pre-create hook, asked before an upload is admitted by any front end
/// (`IncomingUpload.begin`, `WholeUploads.store`). The hook runs on a pool of its
/// own (`HookConfiguration.concurrency` threads), so a slow hook holds neither an
/// event loop nor the pool that stores uploads; more checks than threads wait
/// their turn. Its "no" becomes `Refusal.byPolicy`, which each front end maps to
/// its own reply (`553`, `403`).
final class PreCreateGate: Sendable {
    private let hooks: HookConfiguration
    private let pool: NIOThreadPool
    private let logger: Logger

    init(hooks: HookConfiguration, logger: Logger) {
        self.hooks = hooks
        self.logger = logger
        pool = NIOThreadPool(numberOfThreads: hooks.concurrency)
        pool.start()
    }

    func shutdown() { try? pool.syncShutdownGracefully() }

    /// nil: admitted. Without a pre-create hook (the directory has none) at once.
    func check(_ new: NewUpload, lengthDeferred: Bool, door: UploadDoor, on eventLoop: EventLoop) -> EventLoopFuture<Refusal?> {
        guard let command = hooks.command(for: .preCreate) else { return eventLoop.makeSucceededFuture(nil) }
        let request = PreCreateRequest(
            name: new.name, size: lengthDeferred ? nil : new.size, sha256: new.sha256.isEmpty ? nil : new.sha256,
            client: Store.address(new.clientIP, new.clientPort), token: new.token, door: door.label)
        let (timeout, logger) = (hooks.preCreateTimeout, self.logger)
        let environment = ["SPOOL_UPLOAD_NAME": new.name, "SPOOL_UPLOAD_SIZE": lengthDeferred ? "" : String(new.size)]
        return pool.runIfActive(eventLoop: eventLoop) { () -> Refusal? in
            let result = HookRunner.run(command, input: request.json, timeout: timeout, environment: environment)
            switch PreCreateVerdict(result) {
            case .admit:
                return nil
            case .refuse(let message):
                let metadata: Logger.Metadata = [
                    "name": "\(new.name)", "client": "\(request.client)", "outcome": "\(result.summary)", "message": "\(message)",
                ]
                if case .cannotRun = result.ending {
                    logger.error("pre-create hook cannot run; upload refused", metadata: metadata)
                } else {
                    logger.info("upload refused by the pre-create hook", metadata: metadata)
                }
                return .byPolicy(message)
            }
        }.recover { error in
            .byPolicy("refused: this server's pre-create hook cannot run now (\(error))")
        }
    }
}
