// swift-tools-version: 6.0
import PackageDescription

let package = Package(
    name: "Spool",
    platforms: [.macOS(.v13)],
    products: [
        .executable(name: "spoold", targets: ["spoold"]),
        .executable(name: "spool", targets: ["spool"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-nio", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-nio-ssl", from: "2.37.6"),
        .package(url: "https://github.com/apple/swift-crypto", from: "3.12.3"),
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
    ],
    targets: [
        // System glue: the SQLite C library and the few C calls Swift cannot make
        // safely (async-signal-safe handlers, variadic prctl).
        .systemLibrary(
            name: "CSQLite",
            pkgConfig: "sqlite3",
            providers: [.apt(["libsqlite3-dev"])]
        ),
        .target(name: "CSpoolSys"),
        .target(
            name: "SpoolSystem",
            dependencies: [
                "CSpoolSys",
                .product(name: "Logging", package: "swift-log"),
            ]
        ),

        // The wire protocol: pure parsing, encoding and framing, no I/O.
        .target(
            name: "SpoolProtocol",
            dependencies: [.product(name: "NIOCore", package: "swift-nio")]
        ),

        // SQLite metadata and the spool directory. The schema lives in migrations/,
        // embedded at build time by the EmbedMigrations plugin.
        .target(
            name: "SpoolStore",
            dependencies: [
                "CSQLite", "SpoolSystem", "SpoolProtocol",
                .product(name: "Crypto", package: "swift-crypto"),
            ],
            plugins: ["EmbedMigrations"]
        ),

        // Hooks (docs/HOOKS.md): running a hook's command, the pre-create verdict,
        // and the dispatcher that delivers the event log to the notification hooks.
        .target(
            name: "SpoolHooks",
            dependencies: [
                "SpoolStore", "SpoolSystem", "CSpoolSys",
                .product(name: "Logging", package: "swift-log"),
            ]
        ),

        // An S3 client of our own (no S3 SDK for Swift here): SigV4 signing as
        // pure functions, the few operations the object store uses, over blocking
        // kept-alive HTTP/1.1 connections (the store calls it from its thread pool).
        .target(
            name: "SpoolS3",
            dependencies: ["SpoolProtocol", "SpoolStore", "SpoolSystem", "CSpoolSys", .product(name: "Crypto", package: "swift-crypto")]
        ),

        // The catalog on PostgreSQL (docs/SCALING.md): the protocol's client of our
        // own (blocking, no threads, so the master can migrate before it forks),
        // under the catalog's SQL. Its schema lives in migrations/postgres/.
        .target(
            name: "SpoolPostgres",
            dependencies: ["SpoolProtocol", "SpoolStore", "SpoolSystem", .product(name: "Crypto", package: "swift-crypto")],
            plugins: ["EmbedMigrations"]
        ),

        // The upload page served at / on the HTTP door (docs/WEB.md): its files,
        // embedded at build time, with their ETags and gzip.
        .target(
            name: "SpoolWeb",
            dependencies: ["SpoolProtocol", .product(name: "Crypto", package: "swift-crypto")],
            exclude: ["Resources"],
            plugins: ["EmbedWeb"]
        ),

        // A worker process: accepts on the inherited socket, serves connections with NIO.
        .target(
            name: "SpoolWorker",
            dependencies: [
                "SpoolProtocol", "SpoolStore", "SpoolSystem", "SpoolHooks", "SpoolWeb",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "NIOTLS", package: "swift-nio"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),

        // The master process: binds, migrates, forks and supervises workers.
        .target(
            name: "SpoolMaster",
            dependencies: [
                "SpoolWorker", "SpoolStore", "SpoolSystem", "SpoolHooks", "CSpoolSys",
                .product(name: "Logging", package: "swift-log"),
            ]
        ),

        // The client library behind the `spool` binary (blocking sockets, sendfile;
        // TLS through NIOSSL driven as a sans-I/O engine on an EmbeddedChannel).
        .target(
            name: "SpoolClient",
            dependencies: [
                "SpoolProtocol", "SpoolSystem", "CSpoolSys",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOEmbedded", package: "swift-nio"),
                .product(name: "NIOTLS", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "Crypto", package: "swift-crypto"),
            ]
        ),

        .executableTarget(
            name: "spoold",
            dependencies: [
                "SpoolMaster", "SpoolWorker", "SpoolStore", "SpoolSystem", "SpoolHooks", "SpoolS3", "SpoolPostgres",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        .executableTarget(
            name: "spool",
            dependencies: [
                "SpoolClient", "SpoolProtocol", "SpoolSystem",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),

        // Micro-benchmarks (bench/run runs them, with the end-to-end ones).
        .executableTarget(
            name: "spool-bench",
            dependencies: ["SpoolSystem", .product(name: "Crypto", package: "swift-crypto")],
            path: "bench/spool-bench"
        ),

        // The protocol's fuzz target (fuzz/run builds it with libFuzzer; built
        // normally it replays the inputs it is given).
        .executableTarget(
            name: "spool-fuzz",
            dependencies: ["SpoolProtocol", .product(name: "NIOCore", package: "swift-nio")],
            path: "fuzz/spool-fuzz"
        ),

        // Build-time embedding of migrations/*.sql into SpoolStore, and of the web
        // page's files into SpoolWeb.
        .executableTarget(name: "EmbedTool"),
        .plugin(
            name: "EmbedMigrations",
            capability: .buildTool(),
            dependencies: ["EmbedTool"]
        ),
        .plugin(
            name: "EmbedWeb",
            capability: .buildTool(),
            dependencies: ["EmbedTool"]
        ),

        // What the test targets share (temporary directories). Only tests depend on it.
        .target(name: "SpoolTestSupport", path: "Tests/SpoolTestSupport"),
        .testTarget(
            name: "SpoolProtocolTests",
            dependencies: ["SpoolProtocol", .product(name: "NIOCore", package: "swift-nio")]
        ),
        .testTarget(
            name: "SpoolStoreTests",
            dependencies: [
                "SpoolStore", "SpoolSystem", "SpoolProtocol", "SpoolTestSupport", "SpoolPostgres",
                .product(name: "Crypto", package: "swift-crypto"),
            ]
        ),
        .testTarget(
            name: "SpoolWorkerTests",
            dependencies: [
                "SpoolWorker", "SpoolStore", "SpoolSystem", "SpoolProtocol", "SpoolTestSupport",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOEmbedded", package: "swift-nio"),
                .product(name: "Crypto", package: "swift-crypto"),
            ]
        ),
        .testTarget(
            name: "SpoolS3Tests",
            dependencies: [
                "SpoolS3", "SpoolStore", "SpoolSystem", "SpoolProtocol", "SpoolTestSupport",
                .product(name: "Crypto", package: "swift-crypto"),
            ]
        ),
        .testTarget(
            name: "SpoolPostgresTests",
            dependencies: ["SpoolPostgres", "SpoolStore", "SpoolSystem", "SpoolProtocol", "SpoolTestSupport"]
        ),
        .testTarget(
            name: "SpoolHooksTests",
            dependencies: ["SpoolHooks", "SpoolStore", "SpoolSystem", "SpoolTestSupport"]
        ),
        .testTarget(
            name: "SpoolMasterTests",
            dependencies: ["SpoolMaster", "SpoolSystem"]
        ),
        .testTarget(
            name: "IntegrationTests",
            dependencies: [
                "SpoolProtocol", "SpoolStore", "SpoolClient", "SpoolSystem", "CSQLite", "CSpoolSys", "SpoolTestSupport", "SpoolS3",
                .product(name: "Crypto", package: "swift-crypto"),
            ]
        ),
    ],
    swiftLanguageModes: [.v6]
)
