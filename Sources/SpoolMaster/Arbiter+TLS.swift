import Logging
import SpoolSystem
import SpoolWorker

/// TLS in the master: it only reads and checks files. Contexts are made by each
/// worker after fork; the master starts no thread and keeps no BoringSSL state
/// beyond the checks.
extension Arbiter {
    /// At start: refuse to bind with a certificate that cannot serve, or with
    /// plain text on an address the network can reach unless told to.
    func loadTLS() throws(MasterError) {
        guard let files = config.tlsFiles else {
            let exposed = config.listeners.filter { !$0.isLoopback }
            if !exposed.isEmpty && !config.allowPlaintext {
                throw .startup(
                    "refusing to serve \(exposed.map(\.host).joined(separator: ", ")) in plain text: tokens and files would cross the network in clear. "
                        + "Give --tls-cert and --tls-key (docs/TLS.md), or start with --allow-plaintext")
            }
            if !exposed.isEmpty {
                logger.warning("serving in plain text on an address that is not loopback (--allow-plaintext): tokens and files cross the network in clear")
            }
            return
        }
        do {
            let credentials = try TLSCredentials.load(certificate: files.certificate, key: files.key)
            tls = credentials
            logger.info("TLS certificate loaded", metadata: tlsMetadata(credentials))
        } catch {
            throw .startup("TLS: \(error)")
        }
    }

    /// On HUP: workers started from now on serve the files as they are now, if
    /// they pass the checks; otherwise the old ones keep serving and the log says why.
    func reloadTLS() {
        guard let files = config.tlsFiles else { return }
        do {
            let credentials = try TLSCredentials.load(certificate: files.certificate, key: files.key)
            if credentials != tls {
                logger.notice("TLS certificate reloaded", metadata: tlsMetadata(credentials))
            }
            tls = credentials
        } catch {
            logger.error("TLS certificate not reloaded; the previous one keeps serving", metadata: [
                "error": "\(error)", "serial": "\(tls?.serial ?? "")",
            ])
        }
    }

    private func tlsMetadata(_ credentials: TLSCredentials) -> Logger.Metadata {
        ["certificate": "\(credentials.certificatePath)", "serial": "\(credentials.serial)", "not_after": "\(credentials.notAfter)"]
    }
}
