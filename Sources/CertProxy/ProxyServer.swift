import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import NIOSSL

/// A TLS-terminating TCP proxy: each frontend listens, terminates TLS with the certificate the
/// ``CertificateSet`` selects for the handshake's SNI, and relays the plain stream to its backends round-robin.
///
/// Certificates are looked up per handshake, so a certificate installed into the set serves the next handshake
/// while open connections keep theirs. Each connection and its backend connection share one event loop.
///
/// ```swift
/// let certificates = CertificateSet(defaultName: "web")
/// let reloader = CertificateReloader(storeRoot: "/var/lib/certkeeper", certificates: certificates, logger: logger)
/// reloader.loadAll()
/// let proxy = try await ProxyServer.start(
///     frontends: [ProxyFrontend(name: "https", host: "0.0.0.0", port: 443,
///                               backends: [ProxyBackend(host: "127.0.0.1", port: 8080)])],
///     certificates: certificates, logger: logger)
/// // run reloader.run() in a task; on SIGTERM:
/// await proxy.shutdown(grace: .seconds(10))
/// ```
public final class ProxyServer: Sendable {
    /// The frontends, as configured.
    public let frontends: [ProxyFrontend]
    /// The port each frontend is listening on, by frontend name (useful with port 0).
    public let boundPorts: [String: Int]

    private let group: any EventLoopGroup
    private let ownsGroup: Bool
    private let serverChannels: [any Channel]
    private let registry: ConnectionRegistry
    private let counters: ProxyCounters
    private let logger: Logger

    private init(
        frontends: [ProxyFrontend], boundPorts: [String: Int], group: any EventLoopGroup, ownsGroup: Bool,
        serverChannels: [any Channel], registry: ConnectionRegistry, counters: ProxyCounters, logger: Logger
    ) {
        self.frontends = frontends
        self.boundPorts = boundPorts
        self.group = group
        self.ownsGroup = ownsGroup
        self.serverChannels = serverChannels
        self.registry = registry
        self.counters = counters
        self.logger = logger
    }

    /// Connection counters, all frontends together.
    public var stats: ProxyStats { counters.snapshot }

    /// Binds every frontend and starts accepting.
    ///
    /// The TLS context of each frontend is built once here (it can do blocking I/O), not per connection.
    /// - Parameters:
    ///   - frontends: What to listen on and where to relay.
    ///   - certificates: Where TLS frontends find their certificates.
    ///   - eventLoopGroup: The loops to run on; when `nil`, the server creates `threads` loops and shuts them
    ///     down in ``shutdown(grace:)``.
    ///   - threads: Event loops to create when no group is given (the number of cores by default).
    ///   - logger: Where accepts, failures and shutdown are logged.
    /// - Returns: The running server.
    /// - Throws: ``ProxyError`` when a frontend has no backend, its TLS context cannot be built or it cannot
    ///   bind; frontends already bound are closed again.
    public static func start(
        frontends: [ProxyFrontend], certificates: CertificateSet, eventLoopGroup: (any EventLoopGroup)? = nil,
        threads: Int = System.coreCount, logger: Logger
    ) async throws(ProxyError) -> ProxyServer {
        var contexts: [NIOSSLContext?] = []
        for frontend in frontends {
            guard !frontend.backends.isEmpty else { throw .noBackends(frontend: frontend.name) }
            guard let tls = frontend.tls else {
                contexts.append(nil)
                continue
            }
            do {
                contexts.append(try NIOSSLContext(configuration: tls.makeTLSConfiguration(certificates: certificates)))
            } catch {
                throw .tlsContext(frontend: frontend.name, reason: "\(error)")
            }
        }

        let group = eventLoopGroup ?? MultiThreadedEventLoopGroup(numberOfThreads: max(1, threads))
        let registry = ConnectionRegistry()
        let counters = ProxyCounters()
        var channels: [any Channel] = []
        var ports: [String: Int] = [:]
        for (frontend, sslContext) in zip(frontends, contexts) {
            do {
                let channel = try await bind(
                    frontend, sslContext: sslContext, group: group, registry: registry, counters: counters,
                    logger: logger)
                channels.append(channel)
                ports[frontend.name] = channel.localAddress?.port ?? frontend.port
                logger.info(
                    "proxy frontend listening",
                    metadata: [
                        "frontend": "\(frontend.name)", "frontend.address": "\(frontend.host):\(ports[frontend.name]!)",
                        "frontend.tls": "\(frontend.tls != nil)",
                        "frontend.backends": "\(frontend.backends.map(\.description).joined(separator: ","))",
                    ])
            } catch {
                for channel in channels { try? await channel.close() }
                if eventLoopGroup == nil { try? await group.shutdownGracefully() }
                throw .bindFailed(frontend: frontend.name, address: "\(frontend.host):\(frontend.port)", reason: "\(error)")
            }
        }
        return ProxyServer(
            frontends: frontends, boundPorts: ports, group: group, ownsGroup: eventLoopGroup == nil,
            serverChannels: channels, registry: registry, counters: counters, logger: logger)
    }

    private static func bind(
        _ frontend: ProxyFrontend, sslContext: NIOSSLContext?, group: any EventLoopGroup, registry: ConnectionRegistry,
        counters: ProxyCounters, logger: Logger
    ) async throws -> any Channel {
        let rotation = BackendRotation(frontend.backends)
        let timeouts = frontend.timeouts
        var frontendLogger = logger
        frontendLogger[metadataKey: "frontend"] = "\(frontend.name)"
        let connectionLogger = frontendLogger
        return try await ServerBootstrap(group: group)
            .serverChannelOption(.backlog, value: 256)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelOption(.allowRemoteHalfClosure, value: true)
            .childChannelOption(.socketOption(.tcp_nodelay), value: 1)
            .childChannelInitializer { channel in
                registry.add(channel)
                counters.update {
                    $0.accepted += 1
                    $0.active += 1
                }
                channel.closeFuture.whenComplete { _ in
                    registry.remove(channel)
                    counters.update { $0.active -= 1 }
                }
                var logger = connectionLogger
                logger[metadataKey: "client"] = "\(channel.remoteAddress?.description ?? "?")"
                return channel.eventLoop.makeCompletedFuture {
                    let sync = channel.pipeline.syncOperations
                    if let sslContext {
                        let closing = TLSClosingState()
                        try sync.addHandler(RawEOFCloser(state: closing))
                        try sync.addHandler(NIOSSLServerHandler(context: sslContext))
                        try sync.addHandler(CloseRequestObserver(state: closing))
                        try sync.addHandler(
                            HandshakeTimeoutHandler(timeout: timeouts.handshake, counters: counters, logger: logger))
                    }
                    try sync.addHandler(IdleStateHandler(allTimeout: timeouts.idle))
                    try sync.addHandler(IdleCloseHandler(counters: counters))
                    try sync.addHandler(
                        BackendConnectHandler(
                            waitForHandshake: sslContext != nil, rotation: rotation,
                            connectTimeout: timeouts.backendConnect, counters: counters, logger: logger))
                }
            }
            .bind(host: frontend.host, port: frontend.port)
            .get()
    }

    /// Stops accepting, lets open connections finish for up to `grace`, then closes the rest.
    ///
    /// New connections are refused as soon as this is called. When the server created its own event loops,
    /// they are shut down at the end. Safe to call once.
    /// - Parameter grace: How long open connections may keep running.
    public func shutdown(grace: Duration) async {
        for channel in serverChannels { try? await channel.close() }
        let open = registry.count
        logger.info("proxy stopped accepting; draining", metadata: ["proxy.open": "\(open)", "proxy.grace": "\(grace)"])
        let deadline = ContinuousClock.now + grace
        while registry.count > 0, ContinuousClock.now < deadline {
            try? await Task.sleep(for: .milliseconds(20))
        }
        let remaining = registry.all
        if !remaining.isEmpty {
            logger.info("closing connections still open after the grace period", metadata: ["proxy.open": "\(remaining.count)"])
        }
        for channel in remaining { try? await channel.close() }
        if ownsGroup { try? await group.shutdownGracefully() }
    }
}

/// The client channels open now, so shutdown can wait for them and close the rest.
final class ConnectionRegistry: Sendable {
    private let channels = NIOLockedValueBox([ObjectIdentifier: any Channel]())

    func add(_ channel: any Channel) {
        channels.withLockedValue { $0[ObjectIdentifier(channel)] = channel }
    }

    func remove(_ channel: any Channel) {
        _ = channels.withLockedValue { $0.removeValue(forKey: ObjectIdentifier(channel)) }
    }

    var count: Int { channels.withLockedValue { $0.count } }

    var all: [any Channel] { channels.withLockedValue { Array($0.values) } }
}
