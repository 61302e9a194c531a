import Listeners
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
/// ``reconfigure(frontends:)`` changes frontends while running without touching open connections.
///
/// ```swift
/// let certificates = CertificateSet(defaultName: "web")
/// let reloader = CertificateReloader(storeRoot: "/var/lib/certkeeper", certificates: certificates, logger: logger)
/// reloader.loadAll()
/// let proxy = try await ProxyServer.start(
///     frontends: [ProxyFrontend(name: "https", host: "0.0.0.0", port: 443,
///                               backends: [ProxyBackend(host: "127.0.0.1", port: 8080)])],
///     certificates: certificates, logger: logger)
/// // run reloader.run() in a task; on SIGHUP: try await proxy.reconfigure(frontends: newFrontends)
/// await proxy.shutdown(grace: .seconds(10))
/// ```
public final class ProxyServer: Sendable {
    private struct State {
        /// Listeners by frontend name, in configuration order.
        var listeners: [(name: String, listener: FrontendListener)] = []
        var reconfiguring = false
        var stopped = false
    }

    private let group: any EventLoopGroup
    private let ownsGroup: Bool
    private let certificates: CertificateSet
    private let state: NIOLockedValueBox<State>
    private let registry = ConnectionRegistry()
    private let counters = ProxyCounters()
    private let healthChecks: HealthCheckRunner
    private let logger: Logger

    private init(group: any EventLoopGroup, ownsGroup: Bool, certificates: CertificateSet, logger: Logger) {
        self.group = group
        self.ownsGroup = ownsGroup
        self.certificates = certificates
        self.state = NIOLockedValueBox(State())
        self.healthChecks = HealthCheckRunner(group: group, logger: logger)
        self.logger = logger
    }

    /// Runs the servers' health checks until ``shutdown(grace:)`` or cancellation; ``ProxyService`` runs it.
    ///
    /// Without it, every server counts as up. Each checked server gets one loop (probe, record, sleep the
    /// interval) inside this call's task group; a reconfiguration stops the loops of the old servers and starts
    /// those of the new ones (a server that did not change keeps its state).
    public func runHealthChecks() async {
        await healthChecks.run()
    }

    /// Every frontend with its servers' states and counters, in configuration order.
    public func snapshot() -> [ProxyFrontendSnapshot] {
        let listeners = state.withLockedValue { $0.listeners }
        return listeners.map { name, listener in
            let settings = listener.current
            let counts = listener.counters.values
            return ProxyFrontendSnapshot(
                name: name, port: listener.boundPort, activeConnections: counts.active, totalConnections: counts.total,
                refusedConnections: counts.refused, noServerClosures: counts.noServer, handshakeFailures: counts.handshakeFailures,
                maxConnections: settings.frontend.maxConnections, balance: settings.pool.settings.balance,
                servers: settings.pool.servers.map(\.snapshot))
        }
    }

    /// The frontends new connections are served with, in configuration order.
    public var frontends: [ProxyFrontend] {
        state.withLockedValue { $0.listeners.map(\.listener.current.frontend) }
    }

    /// The port each frontend is listening on, by frontend name (useful with port 0). Empty after shutdown.
    public var boundPorts: [String: Int] {
        state.withLockedValue { state in
            Dictionary(uniqueKeysWithValues: state.listeners.map { ($0.name, $0.listener.boundPort) })
        }
    }

    /// Connection counters, all frontends together.
    public var stats: ProxyStats { counters.snapshot }

    /// Binds every frontend and starts accepting.
    ///
    /// The TLS context of each frontend is built once here (it can do blocking I/O), not per connection.
    /// - Parameters:
    ///   - frontends: What to listen on and where to relay; names must be unique.
    ///   - certificates: Where TLS frontends find their certificates.
    ///   - eventLoopGroup: The loops to run on; when `nil`, the server creates `threads` loops and shuts them
    ///     down in ``shutdown(grace:)``.
    ///   - threads: Event loops to create when no group is given (the number of cores by default).
    ///   - logger: Where accepts, failures and shutdown are logged.
    /// - Returns: The running server.
    /// - Throws: ``ProxyError`` when a frontend has no backend, two share a name, a TLS context cannot be built
    ///   or a frontend cannot bind; frontends already bound are closed again.
    public static func start(
        frontends: [ProxyFrontend], certificates: CertificateSet, eventLoopGroup: (any EventLoopGroup)? = nil,
        threads: Int = System.coreCount, logger: Logger
    ) async throws(ProxyError) -> ProxyServer {
        let settings = try PreparedFrontend.prepare(frontends, certificates: certificates, logger: logger)
        let group = eventLoopGroup ?? MultiThreadedEventLoopGroup(numberOfThreads: max(1, threads))
        let server = ProxyServer(group: group, ownsGroup: eventLoopGroup == nil, certificates: certificates, logger: logger)
        var bound: [(name: String, listener: FrontendListener)] = []
        for frontendSettings in settings {
            do {
                bound.append((frontendSettings.frontend.name, try await server.bind(frontendSettings)))
            } catch {
                for (_, listener) in bound { await listener.close() }
                if eventLoopGroup == nil { try? await group.shutdownGracefully() }
                throw error
            }
        }
        server.state.withLockedValue { $0.listeners = bound }
        server.healthChecks.check(settings.map(\.pool))
        return server
    }

    /// Switches to a new set of frontends without closing any open connection.
    ///
    /// Frontends are matched by ``ProxyFrontend/name``:
    /// - same name and same configured `host:port`: the listening socket stays; new connections use the new
    ///   settings (backends, timeouts, TLS on or off, ALPN, minimum version) from the moment this returns;
    /// - a new name: its address is bound;
    /// - a name that is gone: its listener is closed; its open connections run on until they end or idle out;
    /// - a changed address: the new address is bound, then the old listener is closed.
    ///
    /// A listener whose frontend is gone or moved is handed to a new frontend with the same configured address
    /// (a rename, or two frontends trading addresses) instead of being closed and bound again.
    ///
    /// If anything new cannot be bound, what this call bound is closed again, the old configuration stays fully
    /// in place and the error is thrown. Calls must not overlap (the second one throws).
    /// - Parameter frontends: The complete new configuration; names must be unique.
    /// - Throws: ``ProxyError/noBackends(frontend:)``, ``ProxyError/duplicateFrontend(name:)``,
    ///   ``ProxyError/tlsContext(frontend:reason:)``, ``ProxyError/bindFailed(frontend:address:reason:)``,
    ///   ``ProxyError/notRunning`` after ``shutdown(grace:)``, ``ProxyError/reconfigurationInProgress``.
    public func reconfigure(frontends: [ProxyFrontend]) async throws(ProxyError) {
        let previous = state.withLockedValue { state in
            Dictionary(state.listeners.map { ($0.name, $0.listener.current.pool) }, uniquingKeysWith: { first, _ in first })
        }
        let settings = try PreparedFrontend.prepare(frontends, certificates: certificates, previous: previous, logger: logger)
        let begun: Result<[(name: String, listener: FrontendListener)], ProxyError> = state.withLockedValue { state in
            if state.stopped { return .failure(.notRunning) }
            if state.reconfiguring { return .failure(.reconfigurationInProgress) }
            state.reconfiguring = true
            return .success(state.listeners)
        }
        let current = try begun.get()

        // Plan: keep same name + same address; otherwise adopt a released listener on the same address, or bind.
        var released = current.filter { old in
            !settings.contains { $0.frontend.name == old.name && $0.frontend.sameAddress(as: old.listener.current.frontend) }
        }
        var plan: [(settings: PreparedFrontend, listener: FrontendListener?)] = []
        for new in settings {
            if let kept = current.first(where: { $0.name == new.frontend.name && $0.listener.current.frontend.sameAddress(as: new.frontend) }) {
                plan.append((new, kept.listener))
            } else if let index = released.firstIndex(where: { $0.listener.current.frontend.sameAddress(as: new.frontend) }) {
                plan.append((new, released.remove(at: index).listener))
            } else {
                plan.append((new, nil))
            }
        }

        var newlyBound: [FrontendListener] = []
        var next: [(name: String, listener: FrontendListener)] = []
        do {
            for (new, existing) in plan {
                if let existing {
                    next.append((new.frontend.name, existing))
                } else {
                    let listener = try await bind(new)
                    newlyBound.append(listener)
                    next.append((new.frontend.name, listener))
                }
            }
        } catch {
            for listener in newlyBound { await listener.close() }
            state.withLockedValue { $0.reconfiguring = false }
            logger.error("proxy reconfiguration refused; the previous frontends keep serving", metadata: ["error": "\(error)"])
            throw error
        }

        let committed = state.withLockedValue { state -> Bool in
            state.reconfiguring = false
            guard !state.stopped else { return false }
            for (_, listener) in state.listeners { listener.current.pool.retire() }
            for (new, existing) in plan where existing != nil { existing!.switchTo(new) }
            state.listeners = next
            return true
        }
        guard committed else {
            for listener in newlyBound { await listener.close() }
            throw .notRunning
        }
        healthChecks.check(settings.map(\.pool))
        for (name, listener) in released {
            await listener.close()
            logger.info(
                "proxy frontend closed; its open connections continue",
                metadata: ["frontend": "\(name)", "frontend.address": "\(listener.current.frontend.host):\(listener.boundPort)"])
        }
        logger.info(
            "proxy reconfigured",
            metadata: [
                "proxy.frontends": "\(next.map(\.name).joined(separator: ","))", "proxy.bound": "\(newlyBound.count)",
                "proxy.closed": "\(released.count)",
            ])
    }

    /// Receive-buffer sizing for client connections. NIO keeps each channel's last receive buffer for reuse, so an idle
    /// connection holds one buffer of the size the allocator last asked for; starting at 1 KiB instead of NIO's 2 KiB
    /// (a ClientHello, even with a post-quantum key share, takes one or two reads) saves 1 KiB per idle connection,
    /// and a client that uploads grows its buffer after the first full read (up to NIO's 64 KiB).
    static let clientReceiveBuffers = AdaptiveRecvByteBufferAllocator(minimum: 64, initial: 1024, maximum: 65536)

    /// Binds one frontend; its connections read their settings from the returned listener.
    private func bind(_ settings: PreparedFrontend) async throws(ProxyError) -> FrontendListener {
        let frontend = settings.frontend
        let current = NIOLockedValueBox(settings)
        let registry = self.registry
        let counters = self.counters
        let frontendCounters = FrontendCounters()
        let channel: any Channel
        do {
            let listenerGuard = ListenerGuard(label: "frontend \(frontend.name) \(frontend.host):\(frontend.port)", logger: logger)
            channel = try await ServerBootstrap(group: group)
                .serverChannelOption(.backlog, value: 256)
                .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
                .serverChannelInitializer { listenerGuard.install(on: $0) }
                .childChannelOption(.allowRemoteHalfClosure, value: true)
                .childChannelOption(.socketOption(.tcp_nodelay), value: 1)
                .childChannelOption(.recvAllocator, value: Self.clientReceiveBuffers)
                .childChannelInitializer { channel in
                    DescriptorHygiene.markAllCloseOnExec()
                    let settings = current.withLockedValue { $0 }
                    guard frontendCounters.admit(limit: settings.frontend.maxConnections) else {
                        // Over maxconn: accepted and closed at once, never queued.
                        counters.update { $0.accepted += 1 }
                        return channel.close()
                    }
                    registry.add(channel)
                    counters.update {
                        $0.accepted += 1
                        $0.active += 1
                    }
                    channel.closeFuture.whenComplete { _ in
                        frontendCounters.closed()
                        registry.remove(channel)
                        counters.update { $0.active -= 1 }
                    }
                    return channel.eventLoop.makeCompletedFuture {
                        try settings.configure(channel: channel, counters: counters, frontendCounters: frontendCounters)
                    }
                }
                .bind(host: frontend.host, port: frontend.port)
                .get()
        } catch {
            throw .bindFailed(frontend: frontend.name, address: "\(frontend.host):\(frontend.port)", reason: "\(error)")
        }
        let listener = FrontendListener(
            channel: channel, boundPort: channel.localAddress?.port ?? frontend.port, current: current, counters: frontendCounters)
        logger.info(
            "proxy frontend listening",
            metadata: [
                "frontend": "\(frontend.name)", "frontend.address": "\(frontend.host):\(listener.boundPort)",
                "frontend.tls": "\(frontend.tls != nil)",
                "frontend.backends": "\(frontend.backends.map(\.description).joined(separator: ","))",
                "frontend.balance": "\(frontend.pool.balance.rawValue)",
            ])
        return listener
    }

    /// Stops accepting, lets open connections finish for up to `grace`, then closes the rest.
    ///
    /// New connections are refused as soon as this is called. When the server created its own event loops,
    /// they are shut down at the end. Safe to call once.
    /// - Parameter grace: How long open connections may keep running.
    public func shutdown(grace: Duration) async {
        let listeners = state.withLockedValue { state in
            state.stopped = true
            defer { state.listeners = [] }
            return state.listeners
        }
        for (_, listener) in listeners { listener.current.pool.retire() }
        healthChecks.finish()
        for (_, listener) in listeners { await listener.close() }
        let open = registry.count
        logger.info("proxy stopped accepting; draining", metadata: ["proxy.open": "\(open)", "proxy.grace": "\(grace)"])
        await registry.waitUntilEmpty(upTo: grace)
        let remaining = registry.all
        if !remaining.isEmpty {
            logger.info("closing connections still open after the grace period", metadata: ["proxy.open": "\(remaining.count)"])
        }
        // All at once: a TLS channel's close waits (up to the TLS shutdown timeout) for the peer's close_notify, and
        // half-open clients never send one, so closing one after another would take that long per client.
        let closing = remaining.map { channel in
            let closed = channel.eventLoop.makePromise(of: Void.self)
            channel.close(promise: closed)
            return closed.futureResult
        }
        for closed in closing { try? await closed.get() }
        // Health-check probes run on these loops: let the last ones finish before the loops go away.
        await healthChecks.waitForLoopsToEnd(upTo: .seconds(30))
        if ownsGroup { try? await group.shutdownGracefully() }
    }
}

/// One listening socket and the settings its next accepted connection gets (swapped by reconfiguration).
final class FrontendListener: Sendable {
    let channel: any Channel
    let boundPort: Int
    /// Connection counts of this listener, kept across reconfigurations.
    let counters: FrontendCounters
    private let settings: NIOLockedValueBox<PreparedFrontend>

    init(channel: any Channel, boundPort: Int, current: NIOLockedValueBox<PreparedFrontend>, counters: FrontendCounters) {
        self.channel = channel
        self.boundPort = boundPort
        self.settings = current
        self.counters = counters
    }

    var current: PreparedFrontend { settings.withLockedValue { $0 } }

    func switchTo(_ new: PreparedFrontend) {
        settings.withLockedValue { $0 = new }
    }

    func close() async {
        try? await channel.close()
    }
}

extension ProxyFrontend {
    /// Whether both bind the same configured `host:port` (port 0 counts as equal to port 0).
    func sameAddress(as other: ProxyFrontend) -> Bool {
        host == other.host && port == other.port
    }
}

/// The client channels open now, so shutdown can wait for them and close the rest.
final class ConnectionRegistry: Sendable {
    private let channels = NIOLockedValueBox([ObjectIdentifier: any Channel]())
    private let open = DrainCount()

    func add(_ channel: any Channel) {
        let added = channels.withLockedValue { $0.updateValue(channel, forKey: ObjectIdentifier(channel)) == nil }
        if added { open.increment() }
    }

    func remove(_ channel: any Channel) {
        let removed = channels.withLockedValue { $0.removeValue(forKey: ObjectIdentifier(channel)) != nil }
        if removed { open.decrement() }
    }

    /// Returns when no connection is open, or after `limit` (woken by the last close, not polling).
    func waitUntilEmpty(upTo limit: Duration) async {
        await open.waitForZero(upTo: limit)
    }

    var count: Int { channels.withLockedValue { $0.count } }

    var all: [any Channel] { channels.withLockedValue { Array($0.values) } }
}
