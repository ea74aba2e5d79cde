import NIOCore
import NIOHTTP1
import SpoolWeb

/// The upload page (docs/WEB.md): its embedded files, revalidated by ETag, gzipped
/// for a client that takes it, under a Content-Security-Policy that allows only
/// the page's own files. No token is needed for the page; its requests carry one.
extension HTTPHandler {
    func page(_ path: String, headOnly: Bool, _ head: HTTPRequestHead, _ context: ChannelHandlerContext) {
        guard let asset = WebAssets.asset(at: path) else {
            return respond(.notFound, message: "no such resource; see docs/HTTP.md", context)
        }
        var headers = [
            "Content-Type": asset.contentType, "ETag": asset.etag, "Cache-Control": "no-cache", "Vary": "Accept-Encoding",
            "Content-Security-Policy": WebAssets.contentSecurityPolicy, "X-Content-Type-Options": "nosniff",
            "Referrer-Policy": "no-referrer",
        ]
        if head.headers["If-None-Match"].contains(where: { $0.split(separator: ",").contains { $0.trimmingWhitespace() == asset.etag } }) {
            return respond(.notModified, headers, buffer: nil, context)
        }
        var body = asset.body
        if let gzip = asset.gzip, Self.acceptsGzip(head.headers["Accept-Encoding"]) {
            headers["Content-Encoding"] = "gzip"
            body = gzip
        }
        var buffer = context.channel.allocator.buffer(capacity: body.count)
        buffer.writeBytes(body)
        respond(.ok, headers, buffer: buffer, headOnly: headOnly, context)
    }

    /// `gzip` (or `*`) listed with a weight above 0 (RFC 9110 §12.5.3).
    static func acceptsGzip(_ values: [String]) -> Bool {
        values.flatMap { $0.split(separator: ",") }.contains { coding in
            let parts = coding.split(separator: ";").map { $0.filter { $0 != " " }.lowercased() }
            guard parts.first == "gzip" || parts.first == "*" else { return false }
            let weight = parts.dropFirst().first { $0.hasPrefix("q=") }.flatMap { Double($0.dropFirst(2)) } ?? 1
            return weight > 0
        }
    }
}
