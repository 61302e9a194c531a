// swift-tools-version:6.0
import PackageDescription

let package = Package(
    name: "certkeeper",
    platforms: [.macOS(.v14)],
    products: [
        .executable(name: "certkeeper", targets: ["certkeeper"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-nio-ssl.git", from: "2.37.6"),
        .package(url: "https://github.com/apple/swift-crypto.git", "3.12.3"..<"5.0.0"),
        .package(url: "https://github.com/apple/swift-certificates.git", from: "1.21.1"),
        .package(url: "https://github.com/apple/swift-asn1.git", from: "1.7.4"),
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.2"),
        .package(url: "https://github.com/swift-server/async-http-client.git", from: "1.37.0"),
        .package(url: "https://github.com/jpsim/Yams.git", from: "6.2.2"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle.git", from: "2.13.0"),
        .package(url: "https://github.com/apple/swift-metrics.git", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus.git", from: "2.4.1"),
    ],
    targets: [
        // Pure ACME (RFC 8555 / 9773) wire types, JWS/JWK, CSRs, problem documents. No I/O.
        .target(
            name: "ACMEProtocol",
            dependencies: [
                "Durations",
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "_CryptoExtras", package: "swift-crypto"),
                .product(name: "X509", package: "swift-certificates"),
                .product(name: "SwiftASN1", package: "swift-asn1"),
            ]
        ),
        // ACME transport and flows over async-http-client, plus http-01 solvers.
        .target(
            name: "ACMEClient",
            dependencies: [
                "ACMEProtocol", "CertStore", "Listeners", "Durations",
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "NIOFoundationCompat", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        // The on-disk certificate store: versioned archive, atomic live swap, verification, state.
        .target(
            name: "CertStore",
            dependencies: [
                "ACMEProtocol", "NameRules",
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "_CryptoExtras", package: "swift-crypto"),
                .product(name: "X509", package: "swift-certificates"),
                .product(name: "SwiftASN1", package: "swift-asn1"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        // Pure renewal-window and back-off maths; time is always a parameter.
        .target(name: "RenewalPolicy", dependencies: ["Durations"]),
        // The one name rule (certificate, node and cluster names, state keys): config, store and peers agree.
        .target(name: "NameRules"),
        // YAML configuration: parsing and validation with key paths.
        .target(
            name: "CertkeeperConfig",
            dependencies: ["Durations", "NameRules", .product(name: "Yams", package: "Yams")]
        ),
        // Running external programs (deploy hooks, dns-01 hooks) with timeouts.
        .target(
            name: "CertHooks",
            dependencies: [.product(name: "Logging", package: "swift-log")]
        ),
        // The built-in CA of `issuer: internal`: a root in the state directory that signs leaf certificates.
        .target(
            name: "InternalCA",
            dependencies: [
                "NameRules",
                "CertStore",
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "_CryptoExtras", package: "swift-crypto"),
                .product(name: "X509", package: "swift-certificates"),
                .product(name: "SwiftASN1", package: "swift-asn1"),
            ]
        ),
        // Orchestration: lock, check again, order (or sign internally), verify, install, hooks.
        .target(
            name: "Renewal",
            dependencies: [
                "ACMEProtocol", "ACMEClient", "CertStore", "RenewalPolicy", "CertkeeperConfig", "CertHooks", "InternalCA", "Durations",
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ]
        ),
        // inotify on the store (kernel API through Glibc), debounced, with overflow rescans.
        .target(
            name: "StoreWatch",
            dependencies: [.product(name: "Logging", package: "swift-log")]
        ),
        // Seconds from outside (configuration, a CA, a peer) into Durations that cannot overflow.
        .target(name: "Durations"),
        // Log lines per key and interval, so what a client can repeat at will cannot flood the log.
        .target(
            name: "LogThrottle",
            dependencies: [.product(name: "NIOConcurrencyHelpers", package: "swift-nio")]
        ),
        // What every listener does alike: accept back-off at the descriptor limit with a throttled warning, and
        // close-on-exec for every socket.
        .target(
            name: "Listeners",
            dependencies: [
                "LogThrottle",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        // The TLS-terminating TCP proxy: frontends, relay, SNI certificate selection, hot swap.
        .target(
            name: "CertProxy",
            dependencies: [
                "CertStore", "StoreWatch", "ACMEProtocol", "Listeners", "LogThrottle",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOTLS", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ]
        ),
        // The cluster's own CA, node certificates and the mutual-TLS configurations of the peer API.
        .target(
            name: "ClusterTrust",
            dependencies: [
                "CertStore", "NameRules",
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "X509", package: "swift-certificates"),
                .product(name: "SwiftASN1", package: "swift-asn1"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
            ]
        ),
        // Peer sync: the mutual-TLS peer API, long-polls, pull/verify/install, standby takeover.
        .target(
            name: "PeerSync",
            dependencies: [
                "CertStore", "CertkeeperConfig", "Renewal", "StoreWatch", "Listeners", "Durations", "ClusterTrust", "LogThrottle", "InternalCA",
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "X509", package: "swift-certificates"),
                .product(name: "SwiftASN1", package: "swift-asn1"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOTLS", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "CoreMetrics", package: "swift-metrics"),
            ]
        ),
        // Stats: /metrics (Prometheus text), a status page and JSON, collected from the proxy's snapshot per request.
        .target(
            name: "CertStats",
            dependencies: [
                "CertProxy", "Listeners",
                .product(name: "CoreMetrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ]
        ),
        // certbot import: reads /etc/letsencrypt (renewal configs, live/archive, accounts), validates, installs into the store.
        .target(
            name: "CertbotImport",
            dependencies: [
                "ACMEProtocol", "CertStore", "Renewal", "CertkeeperConfig",
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "_CryptoExtras", package: "swift-crypto"),
                .product(name: "X509", package: "swift-certificates"),
                .product(name: "SwiftASN1", package: "swift-asn1"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        // The agent: composition of one node's parts (one store, the node name, the daemon's services, the
        // config → proxy mapping, the SIGHUP reload, the cluster status report), reachable from tests.
        .target(
            name: "Agent",
            dependencies: [
                "Renewal", "CertkeeperConfig", "CertStore", "CertProxy", "ClusterTrust", "PeerSync", "CertStats", "Durations",
                "CertbotImport", "CertHooks", "InternalCA",
                .product(name: "CoreMetrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "UnixSignals", package: "swift-service-lifecycle"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        .executableTarget(
            name: "certkeeper",
            dependencies: [
                "Agent", "Renewal", "CertkeeperConfig", "CertStore", "RenewalPolicy", "CertProxy", "ClusterTrust", "PeerSync",
                "CertbotImport",
                "InternalCA", "CertHooks", "CertStats", "Durations",
                .product(name: "CoreMetrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "UnixSignals", package: "swift-service-lifecycle"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ],
            // Release builds on Linux link with lld, and
            // - place the functions that start-up and the proxy's connections run next to each other
            //   (bench/certkeeper.order, regenerated by bench/order-file.sh beside it): they were spread over 30 MB of code, and
            //   fault-around made ~18 MiB of it resident;
            // - pack the ~134,000 relative relocations of the position-independent executable into DT_RELR
            //   (glibc >= 2.36: Debian 12, Ubuntu 24.04), which the loader no longer reads as 3 MB of tables;
            // - export no symbols (the static Swift runtime's link arguments export every one: 1 MB of symbol table).
            // Measured in the README ("Idle memory, measured").
            linkerSettings: [
                .unsafeFlags(
                    [
                        "-use-ld=lld", "-Xlinker", "-z", "-Xlinker", "pack-relative-relocs",
                        "-Xlinker", "--no-export-dynamic",
                        "-Xlinker", "--symbol-ordering-file=\(Context.packageDirectory)/bench/certkeeper.order",
                        "-Xlinker", "--no-warn-symbol-ordering",
                    ],
                    .when(platforms: [.linux], configuration: .release))
            ]
        ),
        // Coverage-guided fuzz targets: one function per parser that bytes from outside reach (peer API, MQTT
        // CONNECT, PROXY v2, HTTP/1 heads, PEM and bundles, ACME JSON, YAML configuration). Test tooling, not
        // part of the certkeeper binary.
        .target(
            name: "FuzzTargets",
            dependencies: [
                "ACMEProtocol", "ACMEClient", "CertStore", "CertkeeperConfig", "CertProxy", "CertStats", "PeerSync", "InternalCA",
                "CertkeeperTestSupport",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOEmbedded", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Crypto", package: "swift-crypto"),
            ]
        ),
        // Built with `-DFUZZING --sanitize=fuzzer` (scripts/fuzz.sh) it is a libFuzzer binary; built normally it
        // replays corpus files through the same targets.
        .executableTarget(name: "certkeeper-fuzz", dependencies: ["FuzzTargets"]),
        // Test-only helpers: test CAs, processes, Pebble, a fake ACME server.
        .target(
            name: "CertkeeperTestSupport",
            dependencies: [
                "ACMEProtocol",
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "X509", package: "swift-certificates"),
                .product(name: "SwiftASN1", package: "swift-asn1"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ],
            path: "Tests/Support"
        ),
        .testTarget(name: "ACMEProtocolTests", dependencies: ["ACMEProtocol", "CertkeeperTestSupport"]),
        .testTarget(name: "CertStoreTests", dependencies: ["CertStore", "CertkeeperTestSupport"]),
        .testTarget(name: "RenewalPolicyTests", dependencies: ["RenewalPolicy"]),
        .testTarget(
            name: "PeerSyncTests",
            dependencies: [
                "PeerSync", "CertStore", "CertkeeperConfig", "ClusterTrust", "Renewal", "CertkeeperTestSupport", "Durations", "InternalCA",
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "SwiftASN1", package: "swift-asn1"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "X509", package: "swift-certificates"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        .testTarget(name: "CertkeeperConfigTests", dependencies: ["CertkeeperConfig"]),
        .testTarget(
            name: "InternalCATests",
            dependencies: [
                "InternalCA", "Renewal", "RenewalPolicy", "CertStore", "CertkeeperConfig",
                .product(name: "X509", package: "swift-certificates"),
                .product(name: "SwiftASN1", package: "swift-asn1"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        .testTarget(
            name: "CertbotImportTests",
            dependencies: [
                "CertbotImport", "ACMEProtocol", "CertStore", "CertkeeperConfig", "Renewal", "CertkeeperTestSupport",
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "_CryptoExtras", package: "swift-crypto"),
                .product(name: "X509", package: "swift-certificates"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        .testTarget(name: "CertHooksTests", dependencies: ["CertHooks"]),
        .testTarget(name: "StoreWatchTests", dependencies: ["StoreWatch"]),
        .testTarget(
            name: "CertProxyTests",
            dependencies: [
                "CertProxy", "CertStore", "CertkeeperTestSupport", "LogThrottle",
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "NIOEmbedded", package: "swift-nio"),
                .product(name: "X509", package: "swift-certificates"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        .testTarget(
            name: "CertStatsTests",
            dependencies: [
                "CertStats", "CertProxy", "CertkeeperTestSupport",
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        .testTarget(
            name: "AgentTests",
            dependencies: [
                "Agent", "CertkeeperConfig", "CertProxy", "CertkeeperTestSupport", "ClusterTrust",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "ServiceLifecycleTestKit", package: "swift-service-lifecycle"),
            ]
        ),
        .testTarget(
            name: "ClusterTrustTests",
            dependencies: [
                "ClusterTrust", "CertkeeperTestSupport",
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "X509", package: "swift-certificates"),
                .product(name: "SwiftASN1", package: "swift-asn1"),
                .product(name: "Crypto", package: "swift-crypto"),
            ]
        ),
        .testTarget(name: "FuzzTargetsTests", dependencies: ["FuzzTargets", "CertStore", "PeerSync", "CertkeeperTestSupport"]),
        .testTarget(
            name: "EndToEndTests",
            dependencies: [
                "CertkeeperTestSupport", "ACMEProtocol", "CertStore",
                .product(name: "X509", package: "swift-certificates"),
            ]
        ),
    ]
)
