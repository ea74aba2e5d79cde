import SpoolSystem

/// Where an S3 object store is: `--objects s3://bucket/prefix`, with the
/// endpoint, region and credentials from the usual `AWS_*` variables.
public struct S3Location: Sendable, Equatable {
    public var host: String
    public var port: Int
    public var bucket: String
    /// Every key starts with it: empty, or ending with `/`.
    public var prefix: String
    public var region: String
    public var accessKey: String
    public var secretKey: String

    /// `s3://bucket/some/prefix`; the endpoint (`AWS_ENDPOINT_URL_S3` or
    /// `AWS_ENDPOINT_URL`, an `http://host:port` URL: path-style addressing, as
    /// self-hosted stores want), `AWS_REGION` (or `AWS_DEFAULT_REGION`, else
    /// us-east-1), `AWS_ACCESS_KEY_ID` and `AWS_SECRET_ACCESS_KEY` from `environment`.
    public init(_ url: String, environment: [String: String]) throws(S3Error) {
        guard url.hasPrefix("s3://") else { throw .configuration("--objects \(url): expected s3://BUCKET[/PREFIX]") }
        let rest = url.dropFirst(5)
        let bucket = rest.prefix { $0 != "/" }
        guard Self.isBucketName(bucket) else {
            throw .configuration("--objects \(url): \"\(bucket)\" is not a bucket name (3-63 of a-z, 0-9, '.', '-')")
        }
        var prefix = String(rest.dropFirst(bucket.count).drop { $0 == "/" })
        if !prefix.isEmpty, !prefix.hasSuffix("/") { prefix += "/" }
        guard let endpoint = environment["AWS_ENDPOINT_URL_S3"] ?? environment["AWS_ENDPOINT_URL"] else {
            throw .configuration("--objects \(url): set AWS_ENDPOINT_URL to the store's http://HOST:PORT")
        }
        guard endpoint.hasPrefix("http://") else {
            throw .configuration("AWS_ENDPOINT_URL=\(endpoint): only http:// endpoints are supported (a store on this host or a trusted network)")
        }
        let authority = endpoint.dropFirst(7).prefix { $0 != "/" }
        let plain = authority.contains(":") ? nil : HostPort(host: String(authority), port: 80)
        guard let hostPort = HostPort(String(authority)) ?? plain, !hostPort.host.isEmpty else {
            throw .configuration("AWS_ENDPOINT_URL=\(endpoint): expected http://HOST:PORT")
        }
        guard let access = environment["AWS_ACCESS_KEY_ID"], !access.isEmpty,
            let secret = environment["AWS_SECRET_ACCESS_KEY"], !secret.isEmpty
        else { throw .configuration("--objects \(url): set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY") }
        host = hostPort.host
        port = hostPort.port > 0 ? hostPort.port : 80
        self.bucket = String(bucket)
        self.prefix = prefix
        region = environment["AWS_REGION"] ?? environment["AWS_DEFAULT_REGION"] ?? "us-east-1"
        accessKey = access
        secretKey = secret
    }

    /// `s3://bucket/prefix/`, for messages.
    public var url: String { "s3://\(bucket)/\(prefix)" }

    static func isBucketName(_ name: Substring) -> Bool {
        (3...63).contains(name.count)
            && name.utf8.allSatisfy { (UInt8(ascii: "a")...UInt8(ascii: "z")).contains($0) || (UInt8(ascii: "0")...UInt8(ascii: "9")).contains($0) || $0 == UInt8(ascii: ".") || $0 == UInt8(ascii: "-") }
    }
}
