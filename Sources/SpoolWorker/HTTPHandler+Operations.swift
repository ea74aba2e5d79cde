import NIOCore
import NIOHTTP1
import SpoolProtocol
import SpoolStore
import SpoolSystem

/// What operators and their tools ask the HTTP door: liveness, readiness and
/// metrics (docs/OPERATIONS.md).
extension HTTPHandler {
    /// /healthz answers from the event loop (it serves, so it is alive); /readyz runs
    /// the checks on the pool, and says 503 with the failed check when not ready.
    func health(ready: Bool, headOnly: Bool, _ context: ChannelHandlerContext) {
        let plain = ["Content-Type": "text/plain; charset=utf-8", "Cache-Control": "no-store"]
        guard ready else { return respond(.ok, plain, body: "ok\n", headOnly: headOnly, context) }
        let (store, scoreboard) = (services.store, services.scoreboard)
        let (minFree, draining) = (services.limits.admission.minFreeBytes, self.draining)
        pause(context)
        services.pool.runIfActive(eventLoop: context.eventLoop) {
            Health.check(store: store, scoreboard: scoreboard, minFree: minFree, draining: draining)
        }.assumeIsolated().whenComplete { result in
            self.unpause(context)
            switch result {
            case .success(let report):
                self.respond(report.ready ? .ok : .serviceUnavailable, plain, body: report.text, headOnly: headOnly, context)
            case .failure(let error):
                self.respond(.serviceUnavailable, plain, body: "not ready\ncheck failed: \(error)\n", headOnly: headOnly, context)
            }
        }
    }

    /// The whole server's figures, whichever worker answers: counters summed over
    /// every board (a dead worker's kept in the master's), gauges read now. They
    /// count every token's uploads, so once tokens exist only an admin token may ask.
    func metrics(token: TokenRecord?, headOnly: Bool, _ context: ChannelHandlerContext) {
        if let token, !token.admin {
            return respond(.forbidden, message: "metrics count every token's uploads: use an admin token", context)
        }
        let (store, scoreboard, minFree) = (services.store, services.scoreboard, services.limits.admission.minFreeBytes)
        let hooks = services.hooksNotify
        pause(context)
        services.pool.runIfActive(eventLoop: context.eventLoop) {
            MetricsText.render(totals: scoreboard.metricTotals(),
                               gauges: .read(store: store, scoreboard: scoreboard, minFree: minFree, hooks: hooks))
        }.assumeIsolated().whenComplete { result in
            self.unpause(context)
            switch result {
            case .success(let text):
                self.respond(.ok, ["Content-Type": MetricsText.contentType, "Cache-Control": "no-store"], body: text, headOnly: headOnly, context)
            case .failure(let error):
                self.respond(.internalServerError, message: "cannot gather the metrics: \(error)", context)
            }
        }
    }
}
