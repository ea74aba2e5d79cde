// A fuzz target for the protocol: arbitrary bytes, split into arbitrary reads, go
// through the session state machine (framing, parsing, every state), with the
// handler's results chosen by the input too. Checked on every step: every reply
// is one well-formed line that parses back to itself; body bytes never exceed
// the declared size; the session never loops.
//
// Built with -DFUZZING and -sanitize=fuzzer,address by fuzz/run (libFuzzer calls
// LLVMFuzzerTestOneInput). Built normally it replays files: `spool-fuzz FILE|DIR…`.
import NIOCore
import SpoolProtocol

#if canImport(Glibc)
import Glibc
#endif

func fuzzOne(_ input: [UInt8]) {
    guard let control = input.first else { return }
    var session = Session()
    session.anonymousAllowed = control & 1 == 0
    var rest = input.dropFirst()
    var declared: Int64 = 0
    var written: Int64 = 0
    var failed = false
    var steps = 0
    var closed = false
    var flip = control
    // Small uploads handed to the store and not yet finished, oldest first: the
    // handler may finish them one at a time, in order, at any later point.
    var storing: [UploadRequest] = []
    func finishOldest() {
        let request = storing.removeFirst()
        if flip & 3 == 0 {
            session.wholeUploadFinished(id: nil, size: request.size, reply: Reply(.insufficientStorage, "no space"))
        } else {
            session.wholeUploadFinished(id: "01FUZZFUZZFUZZFUZZFUZZFUZZ", size: request.size,
                                        reply: Reply(.stored, "id=01FUZZFUZZFUZZFUZZFUZZFUZZ stored"))
        }
    }

    // Lines on their own, through the parser directly; and through HTTP's rules
    // (request targets, digest headers, ranges, names), which see the same kind of text.
    if let text = String(validating: input, as: UTF8.self) {
        for line in text.split(separator: "\n") {
            _ = try? CommandParser.parse(String(line))
            let words = line.split(separator: " ", maxSplits: 1)
            if words.count == 2 {
                if case .upload(let name) = HTTPRoute.parse(method: String(words[0]), target: String(words[1])) {
                    check(!name.isEmpty && !name.hasPrefix("/") && !name.split(separator: "/").contains(".."), "an upload route names a relative path")
                }
            }
            if case .sha256(let hex) = DigestHeader.parse([String(line)]) {
                check(DigestHeader.parse([DigestHeader.header(sha256: hex)]) == .sha256(hex), "a digest header parses back")
            }
            if case .part(let range) = ByteRange.parse(String(line), size: 1000) {
                check(range.lowerBound >= 0 && range.upperBound <= 1000 && !range.isEmpty, "a range lies inside the file")
            }
            if let bytes = Base64.decode(line) { check(Base64.decode(Base64.encode(bytes)) == bytes, "base64 round-trips") }
            // tus's headers: whatever comes, a value or a refusal with a 4xx status.
            if case .failure(let refusal) = Tus.metadata([String(line)]) { check((400..<500).contains(refusal.status), "a metadata refusal is a 4xx") }
            if case .success(let metadata) = Tus.metadata([String(line)]), case .success(let hex?) = Tus.wholeFileSHA256(metadata) {
                check(hex.utf8.count == 64, "a whole-file checksum is 64 hex digits")
            }
            if case .success(let checksum?) = Tus.chunkChecksum([String(line)]) {
                check(checksum.digest.count == checksum.algorithm.digestBytes, "a chunk checksum has its algorithm's length")
            }
            if case .success(let number) = Tus.number([String(line)], "Upload-Offset") { check(number >= 0, "an offset is not negative") }
            if case .success(.known(let length)) = Tus.creationLength(uploadLength: [String(line)], deferLength: []) {
                check(length >= 0, "a length is not negative")
            }
        }
        _ = PercentCoding.decode(text)
    }

    while !rest.isEmpty && !closed {
        let length = min(rest.count, Int(rest[rest.startIndex] % 97) + 1)
        let chunk = rest.prefix(length)
        rest = rest.dropFirst(length)
        flip = flip &* 31 &+ (chunk.last ?? 0)
        session.receive(ByteBuffer(bytes: chunk))
        actions: while let action = session.next() {
            steps += 1
            check(steps < 100_000, "the session keeps producing actions")
            switch action {
            case .reply(let reply):
                let line = reply.line
                check(line.hasSuffix("\n") && !line.dropLast().contains(where: { $0 == "\n" || $0 == "\r" }), "reply is one line")
                check(Reply.parse(Substring(line.dropLast())) == reply, "reply parses back: \(line)")
            case .beginUpload(let request):
                check(request.size >= 0 && !request.name.isEmpty, "a valid request")
                if flip & 3 == 0 {
                    session.uploadRefused(Reply(.insufficientStorage, "no space"))
                } else {
                    declared = request.size
                    written = 0
                    failed = false
                    session.uploadOpened(id: "01FUZZFUZZFUZZFUZZFUZZFUZZ", size: request.size, offset: 0)
                }
            case .storeUpload(let request, let body):
                check(session.bodyFollowsAtOnce(request) && request.sha256 != nil, "one-step stores only for a body sent at once, checksum declared")
                check(Int64(body.readableBytes) == request.size && request.size <= Session.wholeBodyLimit,
                      "a one-step body is exactly the declared size")
                storing.append(request)
                check(storing.count <= Session.storingLimit, "at most storingLimit small uploads at once")
                check(storing.reduce(0) { $0 + $1.size } <= Session.storingBytesLimit, "at most storingBytesLimit bytes of them")
                if flip & 4 == 0 { finishOldest() }
            case .resumeUpload:
                session.uploadRefused(Reply(.notFound, "no such upload"))
            case .writeBody(let bytes):
                check(!failed, "no body is written after a failure")
                written += Int64(bytes.readableBytes)
                check(written <= declared, "body within its declared size")
                if flip & 7 == 1 {
                    failed = true
                    session.bodyFailed(Reply(.storageError, "disk full"))
                }
            case .finishUpload:
                check(!failed && written == declared, "finish exactly at the declared size")
                session.uploadFinished(Reply(.stored, "id=01FUZZFUZZFUZZFUZZFUZZFUZZ stored"))
            case .abandonUpload:
                check(!failed && written == declared, "a missing DIGEST comes only after the whole body")
                session.uploadFinished(Reply(.checksumMismatch, "id=01FUZZFUZZFUZZFUZZFUZZFUZZ no digest"))
            case .query:
                session.answered([Reply(.uploadList, "0 uploads")])
            case .authenticate:
                if flip & 1 == 0 {
                    session.authenticated(as: Session.Identity(token: "fuzz", admin: false))
                } else {
                    session.authenticationFailed()
                }
            case .startWatch, .stopWatch:
                session.answered([Reply(.uploadStatus, "id=01FUZZFUZZFUZZFUZZFUZZFUZZ state=complete")])
            case .close:
                closed = true
                break actions
            }
        }
        if flip & 8 == 0 { while !storing.isEmpty { finishOldest() } }
        if flip & 15 == 2 { session.drain() }
        if flip & 15 == 3 {
            session.checkTimeouts(Session.Timeouts(idle: 1, line: 1, stall: 1), quietFor: 2, partialLineFor: 2)
        }
    }
}

func check(_ condition: Bool, _ message: @autoclosure () -> String) {
    if !condition {
        print("invariant broken: \(message())")
        abort()
    }
}

#if FUZZING
// SwiftPM links an executable's entry point as `main`, so libFuzzer's own main is
// not used: ours hands control to libFuzzer's driver instead.
@_silgen_name("LLVMFuzzerRunDriver")
func LLVMFuzzerRunDriver(
    _ argc: UnsafeMutablePointer<Int32>,
    _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>>,
    _ callback: @convention(c) (UnsafePointer<UInt8>?, Int) -> Int32
) -> Int32

@main
struct Fuzz {
    static func main() {
        var argc = CommandLine.argc
        var argv = CommandLine.unsafeArgv
        exit(LLVMFuzzerRunDriver(&argc, &argv) { data, size in
            fuzzOne(data.map { Array(UnsafeBufferPointer(start: $0, count: size)) } ?? [])
            return 0
        })
    }
}
#else
@main
struct Replay {
    static func main() {
        var count = 0
        for path in CommandLine.arguments.dropFirst() {
            for file in files(at: path) {
                guard let bytes = read(file) else { continue }
                fuzzOne(bytes)
                count += 1
            }
        }
        print("replayed \(count) inputs")
    }

    static func files(at path: String) -> [String] {
        guard let dir = opendir(path) else { return [path] }
        defer { closedir(dir) }
        var found: [String] = []
        while let entry = readdir(dir) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { String(decoding: $0.prefix(while: { $0 != 0 }), as: UTF8.self) }
            if !name.hasPrefix(".") { found.append(path + "/" + name) }
        }
        return found.sorted()
    }

    static func read(_ path: String) -> [UInt8]? {
        guard let file = fopen(path, "rb") else { return nil }
        defer { fclose(file) }
        var bytes: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = fread(&buffer, 1, buffer.count, file)
            if n == 0 { break }
            bytes.append(contentsOf: buffer[0..<n])
        }
        return bytes
    }
}
#endif
