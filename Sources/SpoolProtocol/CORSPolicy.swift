/// Which web pages from other origins may call the HTTP door (CORS, the Fetch
/// standard). Off unless origins are given (`--cors-origin`): a browser then
/// refuses a page elsewhere the answers, which is the safe default.
///
/// Tokens travel in the `Authorization` header, never in cookies, so no answer
/// allows credentials: a page gets only what its own token can see.
public struct CORSPolicy: Equatable, Sendable {
    /// Exact origins (`https://app.example.com`), or `*` for any.
    public let origins: [String]

    /// Request headers a page may send: ours, and the standard ones a client needs.
    public static let allowedHeaders = "Authorization, Content-Type, Repr-Digest, Content-Digest, Range, If-None-Match, "
        + "Tus-Resumable, Upload-Length, Upload-Defer-Length, Upload-Offset, Upload-Metadata, Upload-Checksum, X-HTTP-Method-Override"
    public static let allowedMethods = "GET, HEAD, PUT, POST, PATCH, DELETE, OPTIONS"
    /// Response headers a page may read besides the safelisted ones.
    public static let exposedHeaders = "Location, Repr-Digest, ETag, Content-Disposition, Content-Range, Link, Retry-After, WWW-Authenticate, "
        + "Tus-Resumable, Tus-Version, Tus-Extension, Tus-Max-Size, Tus-Checksum-Algorithm, Upload-Offset, Upload-Length, "
        + "Upload-Defer-Length, Upload-Metadata, Upload-Expires"
    /// How long a browser may cache a preflight's answer, in seconds.
    public static let maxAge = 600

    public init(origins: [String] = []) {
        self.origins = origins
    }

    public var isEnabled: Bool { !origins.isEmpty }

    /// `*`, or `scheme://host[:port]` as a browser sends it in `Origin` (no path, no slash at the end).
    public static func isValidOrigin(_ text: String) -> Bool {
        if text == "*" { return true }
        let authority: Substring
        if text.hasPrefix("https://") {
            authority = text.dropFirst("https://".count)
        } else if text.hasPrefix("http://") {
            authority = text.dropFirst("http://".count)
        } else {
            return false
        }
        let forbidden: Set<Character> = ["/", " ", "?", "#", "@"]
        return !authority.isEmpty && !authority.contains(where: forbidden.contains)
    }

    public func allows(_ origin: String) -> Bool {
        origins.contains("*") || origins.contains(origin)
    }

    /// Headers for the answer to a request that carries `Origin`.
    public func responseHeaders(origin: String?) -> [(String, String)] {
        guard isEnabled else { return [] }
        // Answers differ by Origin, so caches must key on it, whether or not this one is allowed.
        var headers = [("Vary", "Origin")]
        if let origin, allows(origin) {
            headers.append(("Access-Control-Allow-Origin", origins.contains("*") ? "*" : origin))
            headers.append(("Access-Control-Expose-Headers", Self.exposedHeaders))
        }
        return headers
    }

    public enum Preflight: Equatable, Sendable {
        /// Not a preflight (no `Origin` or no `Access-Control-Request-Method`): a plain OPTIONS.
        case notPreflight
        /// Allowed: answer `204` with these headers.
        case allowed([String: String])
        /// The origin, or the method, is not allowed: answer `403` with this reason.
        case refused(String)
    }

    /// The answer to `OPTIONS` from a browser asking whether it may send a request.
    public func preflight(origin: String?, requestMethod: String?) -> Preflight {
        guard let origin, let requestMethod else { return .notPreflight }
        guard allows(origin) else {
            return .refused(isEnabled ? "origin \(origin) is not allowed (--cors-origin)" : "cross-origin requests are off (--cors-origin)")
        }
        guard Self.allowedMethods.split(separator: ",").contains(where: { $0.trimming(" ") == requestMethod }) else {
            return .refused("method \(requestMethod) is not allowed across origins")
        }
        return .allowed([
            "Access-Control-Allow-Origin": origins.contains("*") ? "*" : origin,
            "Access-Control-Allow-Methods": Self.allowedMethods,
            "Access-Control-Allow-Headers": Self.allowedHeaders,
            "Access-Control-Max-Age": "\(Self.maxAge)",
            "Vary": "Origin",
        ])
    }
}
