import Crypto
import Foundation
import SpoolProtocol

/// One file of the upload page, as it is served: its bytes, the same gzipped
/// (when that is smaller), its type and its ETag (of the bytes, so a new build
/// with the same page keeps its caches).
public struct WebAsset: Sendable {
    public let path: String
    public let contentType: String
    public let body: [UInt8]
    public let gzip: [UInt8]?
    public let etag: String
}

/// The page's files, embedded at build time from Sources/SpoolWeb/Resources
/// (Plugins/EmbedWeb). `/` is index.html; every other file is served at `/<its name>`.
public enum WebAssets {
    public static let all: [String: WebAsset] = {
        var assets: [String: WebAsset] = [:]
        for file in EmbeddedWeb.files {
            let body = Array(file.text.utf8)
            let gzip = file.gzipBase64.flatMap { Data(base64Encoded: $0) }.map(Array.init).flatMap { $0.count < body.count ? $0 : nil }
            let digest = Checksum.hex(SHA256.hash(data: body).prefix(12))
            let path = file.file == "index.html" ? "/" : "/" + file.file
            assets[path] = WebAsset(path: path, contentType: contentType(file.file), body: body, gzip: gzip, etag: "\"\(digest)\"")
        }
        return assets
    }()

    public static func asset(at path: String) -> WebAsset? { all[path] }

    static func contentType(_ name: String) -> String {
        switch name.split(separator: ".").last {
        case "html": "text/html; charset=utf-8"
        case "js": "text/javascript; charset=utf-8"
        case "css": "text/css; charset=utf-8"
        case "svg": "image/svg+xml"
        default: "application/octet-stream"
        }
    }

    /// The page's own files only: no inline script or style, no other origin, no
    /// frames, no plugins, no form posts anywhere. Its requests go to this origin.
    public static let contentSecurityPolicy =
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; "
        + "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
}
