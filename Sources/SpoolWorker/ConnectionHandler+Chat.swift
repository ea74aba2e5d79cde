import Crypto
import NIOCore
import NIOPosix
import SpoolProtocol
import SpoolStore
import SpoolSystem

extension ConnectionHandler {

    // MARK: - Authentication

    func authenticate(_ secret: String, _ context: ChannelHandlerContext) {
        let store = services.store
        pauseReading(context)
        services.pool.runIfActive(eventLoop: context.eventLoop) { try store.authenticate(secret: secret) }
            .assumeIsolated().whenComplete { result in
                if case .success(let record?) = result {
                    self.token = record
                    self.session.authenticated(as: Session.Identity(token: record.name, admin: record.admin))
                    self.services.logger.info("authenticated", metadata: ["client": "\(self.clientIP):\(self.clientPort)", "token": "\(record.name)"])
                    self.resumeReading(context)
                    self.drive(context)
                    return
                }
                self.services.logger.warning("authentication failed", metadata: ["client": "\(self.clientIP):\(self.clientPort)"])
                // Answer slowly: a guess per second per connection, and three per connection.
                context.eventLoop.assumeIsolated().scheduleTask(in: .milliseconds(Int64(self.services.limits.failedAuthenticationDelay * 1000))) {
                    self.session.authenticationFailed()
                    self.resumeReading(context)
                    self.drive(context)
                }
            }
    }

    // MARK: - Chat

    var queries: ChatQueries {
        ChatQueries(store: services.store, scoreboard: services.scoreboard, viewer: session.identity)
    }

    func query(_ command: Command, _ context: ChannelHandlerContext) {
        let queries = self.queries
        let (minFree, draining) = (services.limits.admission.minFreeBytes, session.isDraining)
        pauseReading(context)
        services.pool.runIfActive(eventLoop: context.eventLoop) { () -> [Reply] in
            if command == .health {
                let report = Health.check(store: queries.store, scoreboard: queries.scoreboard, minFree: minFree, draining: draining)
                return [Reply(report.ready ? .ok : .notReady, (report.ready ? "ready: " : "not ready: ") + report.summary)]
            }
            do { return try queries.answer(command) } catch {
                return [Reply(.storageError, "cannot read the database right now: \(error)")]
            }
        }.assumeIsolated().whenComplete { result in
            switch result {
            case .success(let replies): self.session.answered(replies)
            case .failure(let error): self.session.answered([Reply(.storageError, "\(error)")])
            }
            self.resumeReading(context)
            self.drive(context)
        }
    }

    /// Pushes a status line now and every 500 ms, until the upload ends or the client speaks.
    func startWatch(_ id: String, _ context: ChannelHandlerContext) {
        watched = id
        watchLastText = ""
        watchLastChange = UTCTime.monotonic()
        let handler = NIOLoopBound(self, eventLoop: context.eventLoop)
        watchTimer = context.eventLoop.scheduleRepeatedTask(initialDelay: .zero, delay: .milliseconds(500)) { _ in
            handler.value.pushWatchLine(final: false)
        }
    }

    func stopWatch(_ context: ChannelHandlerContext) {
        pushWatchLine(final: true)
    }

    func pushWatchLine(final forced: Bool) {
        guard let id = watched, let context, !watchInFlight else {
            if forced { watchStopRequested = true }
            return
        }
        // A watcher that does not read its lines gets none until it does: they are
        // snapshots, and skipping some keeps the outbound buffer from growing.
        guard forced || context.channel.isWritable else { return }
        watchInFlight = true
        let queries = self.queries
        services.pool.runIfActive(eventLoop: context.eventLoop) { () -> Reply in
            do {
                guard let (text, isFinal) = try queries.status(id) else { return Reply(.notFound, "no upload \(id)") }
                return Reply(.uploadStatus, text, isLast: isFinal || forced)
            } catch {
                return Reply(.storageError, "cannot read the database right now: \(error)")
            }
        }.assumeIsolated().whenComplete { result in
            self.watchInFlight = false
            let reply: Reply
            switch result {
            case .success(let r): reply = r
            case .failure(let error): reply = Reply(.storageError, "\(error)")
            }
            let now = UTCTime.monotonic()
            if reply.text != self.watchLastText {
                self.watchLastText = reply.text
                self.watchLastChange = now
            }
            let still = now - self.watchLastChange > self.services.limits.timeouts.idle
            if reply.isLast || self.watchStopRequested || still {
                self.watchTimer?.cancel()
                self.watchTimer = nil
                self.watched = nil
                self.watchStopRequested = false
                var last = reply
                last.isLast = true
                self.session.answered([last])
                self.drive(context)
            } else {
                self.send(reply, context)
                context.flush()
            }
        }
    }
}
