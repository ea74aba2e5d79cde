import SpoolS3
import Testing

/// SigV4 against AWS's published examples: S3's "GET Object" example
/// (examplebucket, test.txt, Range) and the Signature Version 4 test suite's
/// canonical request, string to sign and signature.
@Suite struct SigV4Tests {
    @Test func s3GetObjectExample() {
        let signer = SigV4(
            credentials: .init(accessKey: "AKIAIOSFODNN7EXAMPLE", secretKey: "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"), region: "us-east-1")
        let date = "20130524T000000Z"
        let authorization = signer.authorization(
            method: "GET", path: "/test.txt",
            headers: [("Host", "examplebucket.s3.amazonaws.com"), ("Range", "bytes=0-9"),
                      ("x-amz-content-sha256", SigV4.emptyPayloadHash), ("x-amz-date", date)],
            payloadHash: SigV4.emptyPayloadHash, date: date)
        #expect(authorization == "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request,"
            + "SignedHeaders=host;range;x-amz-content-sha256;x-amz-date,"
            + "Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41")
    }

    @Test func testSuiteCanonicalRequestStringToSignAndSignature() {
        let (request, signed) = SigV4.canonicalRequest(
            method: "GET", path: "/", query: [("foo", "Zoo"), ("foo", "aha")],
            headers: [("Host", "host.foo.com"), ("Date", "Mon, 09 Sep 2011 23:36:00 GMT")], payloadHash: SigV4.emptyPayloadHash)
        #expect(request == "GET\n/\nfoo=Zoo&foo=aha\ndate:Mon, 09 Sep 2011 23:36:00 GMT\nhost:host.foo.com\n\ndate;host\n" + SigV4.emptyPayloadHash)
        #expect(signed == "date;host")
        let signer = SigV4(
            credentials: .init(accessKey: "AKIDEXAMPLE", secretKey: "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"), region: "us-east-1",
            service: "host")
        let toSign = "AWS4-HMAC-SHA256\n20110909T233600Z\n20110909/us-east-1/host/aws4_request\n"
            + "e25f777ba161a0f1baf778a87faf057187cf5987f17953320e3ca399feb5f00d"
        #expect(signer.signature(date: "20110909T233600Z", stringToSign: toSign)
            == "be7148d34ebccdc6423b19085378aa0bee970bdc61d144bd1a8c48c33079ab09")
    }

    @Test func encodingKeepsOnlyUnreservedBytes() {
        #expect(SigV4.encode("a b/c~d.e_f-g") == "a%20b%2Fc~d.e_f-g")
        #expect(SigV4.encode("sha256/ab/été", keepSlash: true) == "sha256/ab/%C3%A9t%C3%A9")
        #expect(SigV4.encode("x=1&y") == "x%3D1%26y")
    }

    @Test func headerValuesAreTrimmedAndRepeatsJoined() {
        let (request, signed) = SigV4.canonicalRequest(
            method: "PUT", path: "/b/k", query: [("uploadId", "a b"), ("partNumber", "2")],
            headers: [("My-Header", "  a   b  "), ("my-header", "c"), ("Host", "s3")], payloadHash: "UNSIGNED-PAYLOAD")
        #expect(request == "PUT\n/b/k\npartNumber=2&uploadId=a%20b\nhost:s3\nmy-header:a b,c\n\nhost;my-header\nUNSIGNED-PAYLOAD")
        #expect(signed == "host;my-header")
    }
}
