import Crypto
import Dispatch
import NIOCore
import NIOEmbedded
import NIOPosix
import SpoolProtocol
import SpoolStore
import SpoolSystem
import SpoolTestSupport
import Testing
@testable import SpoolWorker

/// The line protocol's handler on NIO's testing channel, with a real store in a
/// temporary directory and a real thread pool of one thread, which a test can
/// keep busy: back-pressure seen from inside, where a socket test can only guess
/// at it from timings. Reading must stop while the pool works for the
/// connection, while the body's hash is behind, and while the client leaves our
/// replies unread, and start again after each.
@Suite(.timeLimit(.minutes(1))) struct ConnectionHandlerTests {
    /// A handler on a testing channel, its store, and the one-thread pool it uses.
    final class Rig: @unchecked Sendable {
        let data: TempDirectory
        let store: Store
        let pool = NIOThreadPool(numberOfThreads: 1)
        let channel = NIOAsyncTestingChannel()
        let handler: NIOLoopBound<ConnectionHandler>
        let blocker = DispatchSemaphore(value: 0)

        init() async throws {
            data = try TempDirectory()
            let directory = DataDirectory(data.path + "/data")
            store = try Store.openMigrating(directory: directory).0
            pool.start()
            let scoreboard = try Scoreboard.create()
            var limits = ServerLimits()
            limits.admission.minFreeBytes = 0
            let services = WorkerServices(
                store: store, pool: pool, pid: 1, logger: .init(label: "test"), board: scoreboard.board(0),
                scoreboard: scoreboard, slots: UploadSlots(), limits: limits,
                policy: AccessPolicy(limits: limits, tokensExist: false),
                wholeUploads: WholeUploads(store: store, pool: pool, board: scoreboard.board(0)))
            let channel = self.channel
            handler = try await channel.testingEventLoop.executeInContext {
                let handler = ConnectionHandler(services: services, registry: ConnectionRegistry())
                try channel.pipeline.syncOperations.addHandler(handler)
                return NIOLoopBound(handler, eventLoop: channel.eventLoop)
            }
            try await channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 9))
        }

        /// Keeps the pool's one thread busy until `release`.
        func occupyPool() { pool.submit { _ in self.blocker.wait() } }
        func release() { blocker.signal() }

        var reading: Bool {
            get async throws { try await channel.testingEventLoop.executeInContext { self.handler.value.readGate.reading } }
        }

        /// The reply lines written so far.
        func replies() async throws -> [String] {
            var lines: [String] = []
            while let buffer = try await channel.readOutbound(as: ByteBuffer.self) {
                lines += String(buffer: buffer).split(whereSeparator: \.isNewline).map(String.init)
            }
            return lines
        }

        /// Waits (up to 10 s) for `condition`, letting the pool's completions and the tasks due run.
        func eventually(_ condition: () async throws -> Bool) async throws -> Bool {
            for _ in 0..<1000 {
                await channel.testingEventLoop.run()
                if try await condition() { return true }
                try await Task.sleep(for: .milliseconds(10))
            }
            return try await condition()
        }

        func send(_ text: String) async throws {
            try await channel.writeInbound(ByteBuffer(string: text))
        }

        func close() async throws {
            release()
            _ = try? await channel.finish()
            try await pool.shutdownGracefully()
        }
    }

    @Test func readingStopsWhilePoolWorkIsOnItsWay() async throws {
        let rig = try await Rig()
        #expect(try await rig.replies().first?.hasPrefix("220 ") == true)
        #expect(try await rig.reading)
        rig.occupyPool()
        let body = [UInt8]("hello".utf8)
        try await rig.send("UPLOAD 5 \(Checksum.hex(SHA256.hash(data: body))) a.txt\n")
        // The row and the file are being made on the (busy) pool: no more input until they are.
        #expect(try await rig.reading == false)
        #expect(try await rig.replies().isEmpty)
        rig.release()
        #expect(try await rig.eventually { try await rig.reading })
        #expect(try await rig.replies().first?.hasPrefix("150 ") == true)
        try await rig.close()
    }

    @Test func readingStopsWhileTheHashIsBehind() async throws {
        let rig = try await Rig()
        _ = try await rig.replies()
        let size = 64 << 20
        try await rig.send("UPLOAD \(size) - big.bin\n")
        #expect(try await rig.eventually { try await rig.replies().contains { $0.hasPrefix("150 ") } })
        #expect(try await rig.reading)
        // The hash runs on the pool; with the pool busy, chunks queue until the high-water mark.
        rig.occupyPool()
        let chunk = ByteBuffer(repeating: 7, count: 1 << 20)
        var sent = 0
        while try await rig.reading, sent < 32 {
            try await rig.channel.writeInbound(chunk)
            sent += 1
        }
        #expect(try await rig.reading == false)
        #expect(sent <= PipelinedDigest.highWater / (1 << 20) + 1, "\(sent) MiB were taken in before reading stopped")
        rig.release()
        #expect(try await rig.eventually { try await rig.reading })
        try await rig.close()
    }

    @Test func readingStopsWhileRepliesAreUnread() async throws {
        let rig = try await Rig()
        _ = try await rig.replies()
        rig.channel.isWritable = false
        rig.channel.pipeline.fireChannelWritabilityChanged()
        #expect(try await rig.eventually { try await rig.reading == false })
        // What arrived meanwhile waits in the session: no reply is written past the mark.
        try await rig.send("PING\nPING\nPING\n")
        #expect(try await rig.replies().isEmpty)
        rig.channel.isWritable = true
        rig.channel.pipeline.fireChannelWritabilityChanged()
        await rig.channel.testingEventLoop.advanceTime(by: .milliseconds(2))
        let pongs = try await rig.replies()
        #expect(pongs.filter { $0 == "200 pong" }.count == 3, "\(pongs)")
        #expect(try await rig.reading)
        try await rig.close()
    }

    @Test(.disabled("hung twice under full parallel load (CI, 2026-12-04): to be found before it runs again"))
    func aWatchPushesNothingWhileItsLinesAreUnread() async throws {
        let rig = try await Rig()
        _ = try await rig.replies()
        let upload = try rig.store.begin(
            NewUpload(name: "slow.bin", size: 1000, sha256: "", clientIP: "127.0.0.1", clientPort: 1, workerPID: 1),
            id: { var rng = SystemRandomNumberGenerator(); return UploadID.generate(milliseconds: 1, using: &rng) }())
        try await rig.send("WATCH \(upload.id)\n")
        var seen: [String] = []
        #expect(try await rig.eventually { seen += try await rig.replies(); return seen.contains { $0.hasPrefix("211-") } }, "\(seen)")
        rig.channel.isWritable = false
        rig.channel.pipeline.fireChannelWritabilityChanged()
        for _ in 0..<10 { await rig.channel.testingEventLoop.advanceTime(by: .milliseconds(500)) }
        try await Task.sleep(for: .milliseconds(100))
        #expect(try await rig.replies().isEmpty, "lines pushed to a client that reads none")
        rig.channel.isWritable = true
        rig.channel.pipeline.fireChannelWritabilityChanged()
        await rig.channel.testingEventLoop.advanceTime(by: .milliseconds(500))
        #expect(try await rig.eventually { try await rig.replies().contains { $0.hasPrefix("211-") } })
        Files.close(upload.fd)
        try await rig.close()
    }
}
