import NIOSSL
import SpoolSystem

#if canImport(Glibc)
import Glibc
#endif

/// Why a certificate and key cannot be served, in words an operator can act on.
public enum TLSSetupError: Error, CustomStringConvertible, Equatable {
    case unreadable(path: String, reason: String)
    case notACertificate(path: String)
    case notAKey(path: String)
    case keyDoesNotMatch(certificate: String, key: String)
    case expired(path: String, notAfter: String)
    case notYetValid(path: String, notBefore: String)
    case context(String)

    public var description: String {
        switch self {
        case .unreadable(let path, let reason): "cannot read \(path): \(reason)"
        case .notACertificate(let path): "\(path) holds no PEM certificate (-----BEGIN CERTIFICATE-----)"
        case .notAKey(let path): "\(path) holds no PEM private key, or one protected by a passphrase (not supported)"
        case .keyDoesNotMatch(let certificate, let key): "the key in \(key) does not belong to the certificate in \(certificate)"
        case .expired(let path, let notAfter): "the certificate in \(path) expired on \(notAfter)"
        case .notYetValid(let path, let notBefore): "the certificate in \(path) is not valid before \(notBefore)"
        case .context(let reason): "cannot set up TLS: \(reason)"
        }
    }
}

/// A certificate chain and its key, read and checked by the master before it binds
/// (and again on HUP), held as PEM bytes. Workers inherit the bytes through fork
/// and each builds its own `NIOSSLContext`: nothing of BoringSSL's state crosses a
/// fork, and a file changed on disk reaches no worker until the master checked it.
public struct TLSCredentials: Sendable, Equatable {
    public let certificatePath: String
    public let keyPath: String
    let certificatePEM: [UInt8]
    let keyPEM: [UInt8]
    /// The leaf certificate's serial number, in hex, for the log.
    public let serial: String
    /// The leaf certificate's last valid day, for the log.
    public let notAfter: String

    /// Reads both files and checks that they make a server a client can trust today.
    public static func load(certificate: String, key: String, now: time_t = time(nil)) throws(TLSSetupError) -> TLSCredentials {
        let certificatePEM = try read(certificate)
        let keyPEM = try read(key)
        let chain: [NIOSSLCertificate]
        do { chain = try NIOSSLCertificate.fromPEMBytes(certificatePEM) } catch { throw .notACertificate(path: certificate) }
        guard let leaf = chain.first else { throw .notACertificate(path: certificate) }
        let privateKey: NIOSSLPrivateKey
        do { privateKey = try NIOSSLPrivateKey(bytes: keyPEM, format: .pem) } catch { throw .notAKey(path: key) }
        // BoringSSL refuses a key that does not belong to the leaf when a context is made with both.
        do {
            _ = try NIOSSLContext(configuration: configuration(chain: chain, key: privateKey, alpn: []))
        } catch {
            throw .keyDoesNotMatch(certificate: certificate, key: key)
        }
        if leaf.notValidAfter < now { throw .expired(path: certificate, notAfter: UTCTime.day(seconds: Int(leaf.notValidAfter))) }
        if leaf.notValidBefore > now { throw .notYetValid(path: certificate, notBefore: UTCTime.day(seconds: Int(leaf.notValidBefore))) }
        let serial = leaf.serialNumber.map { byte in (byte < 16 ? "0" : "") + String(byte, radix: 16) }.joined()
        return TLSCredentials(
            certificatePath: certificate, keyPath: key, certificatePEM: certificatePEM, keyPEM: keyPEM,
            serial: serial, notAfter: UTCTime.day(seconds: Int(leaf.notValidAfter)))
    }

    /// A server context for one listener; `alpn` is what it agrees to speak (`http/1.1` on HTTP).
    public func makeContext(alpn: [String]) throws(TLSSetupError) -> NIOSSLContext {
        do {
            let chain = try NIOSSLCertificate.fromPEMBytes(certificatePEM)
            let key = try NIOSSLPrivateKey(bytes: keyPEM, format: .pem)
            return try NIOSSLContext(configuration: Self.configuration(chain: chain, key: key, alpn: alpn))
        } catch {
            throw .context("\(error)")
        }
    }

    /// The library's modern defaults, with TLS 1.2 as the oldest version spoken.
    static func configuration(chain: [NIOSSLCertificate], key: NIOSSLPrivateKey, alpn: [String]) -> TLSConfiguration {
        var configuration = TLSConfiguration.makeServerConfiguration(
            certificateChain: chain.map { .certificate($0) }, privateKey: .privateKey(key))
        configuration.minimumTLSVersion = .tlsv12
        configuration.applicationProtocols = alpn
        return configuration
    }

    private static func read(_ path: String) throws(TLSSetupError) -> [UInt8] {
        // A certificate chain is a few KiB; anything past 1 MiB is a wrong path.
        let text: String
        do { text = try Files.readSmall(path, limit: 1 << 20) } catch { throw .unreadable(path: path, reason: error.description) }
        return Array(text.utf8)
    }
}
