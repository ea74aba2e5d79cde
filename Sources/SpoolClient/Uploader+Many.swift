import SpoolProtocol
import SpoolSystem

#if canImport(Glibc)
import Glibc
#endif

extension Uploader {
    /// Small files in flight at once on one connection: at most this many, and this
    /// many bytes of them (the server reads ahead as far as its own limits, and TCP
    /// holds the rest).
    static let window = 64
    static let windowBytes = 2 << 20

    /// Uploads `files` in order. To a server that speaks protocol 2, small new files
    /// go back to back, each with its body, without waiting for the verdict on the
    /// one before: the server stores those that arrive together in one batch (one
    /// sync and one commit), so many small files cost far less than one round trip
    /// and one sync each. Every other file (large, resumed, or to an older server)
    /// goes alone through `upload(path:name:)` once the ones before it are settled.
    ///
    /// `done` gets each file's result, in order, except that a small file refused
    /// for now (a 4xx) or cut off with its connection is retried alone after the
    /// files in flight with it, and reported then. `progress` gives the callback for
    /// a file that goes alone (small ones in flight have no progress to show).
    public func upload(
        files: [(path: String, name: String)],
        progress: (Int) -> ((Int64, Int64) -> Void)?,
        done: (Int, Result<UploadResult, ClientError>) -> Void
    ) {
        var flight = Flight()
        func alone(_ index: Int) {
            let file = files[index]
            do {
                done(index, .success(try upload(path: file.path, name: file.name, progress: progress(index) ?? { _, _ in })))
            } catch {
                done(index, .failure(error))
            }
        }
        func land() {
            while !flight.sent.isEmpty { readVerdict(&flight, done: done) }
            let retry = flight.retry
            flight.retry = []
            retry.sorted().forEach(alone)
        }
        for (index, file) in files.enumerated() {
            if let small = smallNewFile(file.path, name: file.name, index: index) {
                do throws(ClientError) {
                    try send(small, in: &flight, done: done)
                    continue
                } catch {
                    connection = nil  // every file in flight is in doubt too: land() retries them
                    flight.retry.append(index)
                    land()
                    continue
                }
            }
            land()
            alone(index)
        }
        land()
    }

    /// Small files sent and not yet answered, and those to retry alone once these have landed.
    struct Flight {
        var sent: [SmallFile] = []
        var retry: [Int] = []
        var bytes: Int { sent.reduce(0) { $0 + $1.contents.count } }
    }

    struct SmallFile {
        let index: Int
        let name: String
        let digest: FileDigest
        let contents: [UInt8]
    }

    /// The file, read and hashed, if it is small, unknown to the journal, and the
    /// server takes a body with its UPLOAD line.
    private func smallNewFile(_ path: String, name: String, index: Int) -> SmallFile? {
        guard options.limitRate == nil, options.checksum != .after, let current = try? currentConnection(),
            (try? current.protocolVersion()) ?? 1 >= 2
        else {
            return nil
        }
        guard let fd = try? Files.open(path, flags: O_RDONLY) else { return nil }
        defer { Files.close(fd) }
        guard let file = try? FileIdentity(fd: fd, path: path), file.size < Self.digestAfterThreshold,
            options.journal?.lookup(file: file) == nil,
            let (digest, contents) = try? FileDigest.contents(fd: fd, path: path, size: file.size),
            options.journal?.lookup(sha256: digest.sha256, size: digest.size) == nil
        else { return nil }
        return SmallFile(index: index, name: name, digest: digest, contents: contents)
    }

    private func send(
        _ small: SmallFile, in flight: inout Flight, done: (Int, Result<UploadResult, ClientError>) -> Void
    ) throws(ClientError) {
        let current = try currentConnection()
        let request = UploadRequest(name: small.name, size: small.digest.size, sha256: small.digest.sha256,
                                    bodyAtOnce: try current.protocolVersion() >= 3)
        try current.send(bytes: Array(request.line.utf8) + small.contents)
        flight.sent.append(small)
        while flight.sent.count > Self.window || flight.bytes > Self.windowBytes {
            readVerdict(&flight, done: done)
        }
    }

    /// Reads the replies for the oldest file in flight and reports it, or puts it
    /// aside to retry alone: refused for now, or cut off with the connection (and
    /// then every file in flight with it).
    private func readVerdict(_ flight: inout Flight, done: (Int, Result<UploadResult, ClientError>) -> Void) {
        guard let oldest = flight.sent.first else { return }
        guard let current = connection else {
            flight.retry += flight.sent.map(\.index)
            flight.sent = []
            return
        }
        flight.sent.removeFirst()
        do throws(ClientError) {
            let id = try Self.goAhead(try current.readReply(), size: oldest.digest.size, new: true).id
            done(oldest.index, .success(try verify(try current.readReply(), id: id, digest: oldest.digest, resumedAt: 0)))
        } catch where error.isTransient {
            flight.retry.append(oldest.index)
            if case .refused = error {} else { connection = nil }  // a refusal leaves the stream in step
        } catch {
            done(oldest.index, .failure(error))
        }
    }
}
