import Foundation
import SpoolTestSupport

/// A certificate authority and server certificates made with Debian's `openssl` at
/// test time, in a temporary directory: no key is ever committed.
final class TestCertificates: @unchecked Sendable {
    let directory: TempDirectory
    var path: String { directory.path }
    /// The CA that signs every certificate here (clients pass it as --cacert).
    var ca: String { path + "/ca.pem" }
    /// For localhost and 127.0.0.1, valid for 30 days.
    var server: String { path + "/server.pem" }
    var serverKey: String { path + "/server.key" }
    /// The same key, another certificate (another serial): what HUP rotates to.
    var renewed: String { path + "/renewed.pem" }
    /// The same key, for a name that is not localhost.
    var elsewhere: String { path + "/elsewhere.pem" }
    /// The same key, a certificate whose last day was yesterday.
    var expired: String { path + "/expired.pem" }
    /// A key that belongs to none of them.
    var otherKey: String { path + "/other.key" }
    /// A CA nobody here trusts, and a certificate it signed for localhost.
    var strangerCA: String { path + "/stranger-ca.pem" }

    init() throws {
        directory = try TempDirectory()
        try openssl(["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", "ca.key",
                     "-out", "ca.pem", "-days", "30", "-subj", "/CN=Spool Test CA"])
        try openssl(["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", "stranger-ca.key",
                     "-out", "stranger-ca.pem", "-days", "30", "-subj", "/CN=Stranger CA"])
        try openssl(["genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", "server.key"])
        try openssl(["genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", "other.key"])
        try openssl(["req", "-new", "-key", "server.key", "-out", "server.csr", "-subj", "/CN=localhost"])
        try sign("server.pem", names: "DNS:localhost,IP:127.0.0.1", days: "30")
        try sign("renewed.pem", names: "DNS:localhost,IP:127.0.0.1", days: "60")
        try sign("elsewhere.pem", names: "DNS:elsewhere.test", days: "30")
        // A negative number of days: notAfter yesterday, a certificate that has expired.
        try sign("expired.pem", names: "DNS:localhost,IP:127.0.0.1", days: "-1")
    }

    /// The serial number of a certificate, as lower-case hex (what spoold logs).
    func serial(_ certificate: String) throws -> String {
        let text = try openssl(["x509", "-in", certificate, "-noout", "-serial"])
        return String(text.trimmingCharacters(in: .whitespacesAndNewlines).dropFirst("serial=".count)).lowercased()
    }

    private func sign(_ output: String, names: String, days: String, ca: String = "ca") throws {
        let extensions = output + ".ext"
        try "subjectAltName=\(names)\n".write(toFile: path + "/" + extensions, atomically: true, encoding: .utf8)
        try openssl(["x509", "-req", "-in", "server.csr", "-CA", "\(ca).pem", "-CAkey", "\(ca).key", "-CAcreateserial",
                     "-out", output, "-days", days, "-extfile", extensions])
    }

    @discardableResult
    private func openssl(_ arguments: [String]) throws -> String {
        let result = try run("/usr/bin/openssl", arguments, workingDirectory: path, timeout: 30)
        guard result.status == 0 else { throw HarnessError("openssl \(arguments.joined(separator: " ")) failed:\n\(result.stderr)") }
        return result.stdout
    }
}
