import Listeners
import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import NIOSSL
import NIOTLS

/// What one client connection needs before it is relayed: the handshake limit, the backend connection, and
/// the counters. One handler instead of a handler per concern keeps the per-connection pipeline short.
///
/// TLS connections wait for the handshake (closed after `timeouts.handshake`); plain ones connect at once. What
/// the client sends meanwhile is buffered and reads are held while the backend connects. The ``BackendPool``
/// picks the server; one that cannot be reached is left for the next eligible one (each server at most once per
/// client), and when none is left (all down, full or refusing) the client is closed at once. Once connected, the
/// PROXY v2 header (if configured) and the buffered bytes go first, then a ``GlueHandler`` pair (which also
/// applies the idle limit) replaces this handler. Behind an ``MQTTConnectGate`` it connects only on
/// ``MQTTConnectAccepted``, to the server the client id is stuck to when the frontend sticks clients.
final class ClientConnectionHandler: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundIn = NIOAny

    private enum State {
        case handshaking
        /// Handshake done (or plain): waiting for the ``MQTTConnectGate`` to accept the client's CONNECT.
        case awaitingMQTTConnect
        case connecting
        case glued
        case closed
    }

    private let tls: Bool
    /// The last backend that refused this client's connection, until it is logged (one line per decision).
    private var lastConnectFailure: (server: String, backend: String, error: String)?
    private let pool: BackendPool
    private let timeouts: ProxyTimeouts
    private let counters: ProxyCounters
    private let frontendCounters: FrontendCounters
    private let waitsForMQTTConnect: Bool
    private let stickyClients: StickyClients?
    private let logger: Logger
    private var state: State
    private var handshakeTimer: Scheduled<Void>?
    private var backend: ProxyBackend?
    /// Servers already tried for this client.
    private var tried: Set<Int> = []
    private var buffered: [ByteBuffer] = []
    private var inputClosedEarly = false
    /// The MQTT client id, once the gate has accepted the CONNECT.
    private var mqttClientID: String?

    init(
        tls: Bool, pool: BackendPool, timeouts: ProxyTimeouts, counters: ProxyCounters, frontendCounters: FrontendCounters,
        waitsForMQTTConnect: Bool = false, stickyClients: StickyClients? = nil, logger: Logger
    ) {
        self.tls = tls
        self.pool = pool
        self.timeouts = timeouts
        self.counters = counters
        self.frontendCounters = frontendCounters
        self.waitsForMQTTConnect = waitsForMQTTConnect
        self.stickyClients = stickyClients
        self.logger = logger
        self.state = tls ? .handshaking : .connecting
    }

    func handlerAdded(context: ChannelHandlerContext) {
        if tls {
            let loopBound = NIOLoopBound(context, eventLoop: context.eventLoop)
            handshakeTimer = context.eventLoop.assumeIsolated().scheduleTask(in: timeouts.handshake) { [self] in
                self.handshakeFailed(context: loopBound.value, reason: "no TLS handshake within \(self.timeouts.handshake)")
            }
        } else if context.channel.isActive {
            connectOrAwaitMQTT(context: context)
        }
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        handshakeTimer?.cancel()
        handshakeTimer = nil
    }

    func channelActive(context: ChannelHandlerContext) {
        if !tls, backend == nil, case .connecting = state { connectOrAwaitMQTT(context: context) }
        context.fireChannelActive()
    }

    func channelInactive(context: ChannelHandlerContext) {
        state = .closed
        buffered = []
        handshakeTimer?.cancel()
        context.fireChannelInactive()
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if let tlsEvent = event as? TLSUserEvent, case .handshakeCompleted = tlsEvent, case .handshaking = state {
            handshakeTimer?.cancel()
            handshakeTimer = nil
            connectOrAwaitMQTT(context: context)
        } else if let accepted = event as? MQTTConnectAccepted, case .awaitingMQTTConnect = state {
            mqttClientID = accepted.clientID
            connect(context: context)
        } else if let channelEvent = event as? ChannelEvent, case .inputClosed = channelEvent {
            if case .handshaking = state {
                // EOF before the handshake completed (a port probe, a client giving up): it never will.
                handshakeFailed(context: context, reason: "client closed before the handshake completed")
                return
            }
            inputClosedEarly = true
        }
        context.fireUserInboundEventTriggered(event)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        buffered.append(unwrapInboundIn(data))
    }

    func read(context: ChannelHandlerContext) {
        // Reads must flow while the TLS handshake runs and the CONNECT arrives; while the backend connects, hold
        // them (the glue reads).
        switch state {
        case .handshaking, .awaitingMQTTConnect: context.read()
        case .connecting, .glued, .closed: break
        }
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        if case .handshaking = state {
            handshakeFailed(context: context, reason: "\(error)")
        } else if case .closed = state {
            // Already said (a failed handshake is logged once; BoringSSL then reports the same close again).
            context.close(promise: nil)
        } else {
            logger.debug("client connection error", metadata: metadata(context, ["error": "\(error)"]))
            context.close(promise: nil)
        }
    }

    private func handshakeFailed(context: ChannelHandlerContext, reason: @autoclosure () -> String) {
        guard case .handshaking = state else { return }
        state = .closed
        handshakeTimer?.cancel()
        handshakeTimer = nil
        counters.update { $0.handshakeFailures += 1 }
        frontendCounters.handshakeFailed()
        logger.debug("TLS handshake failed", metadata: metadata(context, ["tls.error": "\(reason())"]))
        context.close(promise: nil)
    }

    private func connectOrAwaitMQTT(context: ChannelHandlerContext) {
        if waitsForMQTTConnect {
            state = .awaitingMQTTConnect
        } else {
            connect(context: context)
        }
    }

    private func connect(context: ChannelHandlerContext) {
        state = .connecting
        let acquired =
            if let stickyClients, let mqttClientID {
                pool.acquire(clientID: mqttClientID, stickingIn: stickyClients, excluding: tried)
            } else {
                pool.acquire(excluding: tried)
            }
        guard let (index, server) = acquired else {
            noServerLeft(context: context)
            return
        }
        if let failure = lastConnectFailure {
            // Said only now that another server is tried: when none is left, noServerLeft says it in one line.
            lastConnectFailure = nil
            let message = "backend unreachable, trying the next server"
            if let heldBack = pool.failureWarnings.admit(failure.backend) {
                var extra: Logger.Metadata = ["error": "\(failure.error)", "server": "\(failure.server)", "backend": "\(failure.backend)"]
                if heldBack > 0 { extra["backend.failures_not_logged"] = "\(heldBack)" }
                logger.warning("\(message)", metadata: metadata(context, extra))
            } else {
                logger.debug("\(message)", metadata: metadata(context, ["error": "\(failure.error)", "backend": "\(failure.backend)"]))
            }
        }
        tried.insert(index)
        let backend = server.settings.address
        self.backend = backend
        let loopBound = NIOLoopBound(context, eventLoop: context.eventLoop)
        let bootstrap = ClientBootstrap(group: context.eventLoop)
            .connectTimeout(timeouts.backendConnect)
            .channelOption(.allowRemoteHalfClosure, value: true)
            .channelOption(.socketOption(.tcp_nodelay), value: 1)
            .channelInitializer { channel in
                DescriptorHygiene.markAllCloseOnExec()
                return channel.eventLoop.makeSucceededVoidFuture()
            }
        let connecting = server.resolved.map { bootstrap.connect(to: $0) } ?? bootstrap.connect(host: backend.host, port: backend.port)
        connecting.assumeIsolated().whenComplete { [self] result in
            let context = loopBound.value
            switch result {
            case .success(let backendChannel):
                self.glue(context: context, backend: backendChannel, server: server)
            case .failure(let error):
                server.connectFailed()
                self.counters.update { $0.backendFailures += 1 }
                self.lastConnectFailure = (server.settings.name, backend.description, "\(error)")
                guard case .connecting = self.state, context.channel.isActive else {
                    self.logger.debug("backend unreachable; the client had gone", metadata: self.metadata(context, ["error": "\(error)", "backend": "\(backend)"]))
                    self.lastConnectFailure = nil
                    return
                }
                self.connect(context: context)
            }
        }
    }

    /// Every server is down, full or has refused this client: close it now rather than leave it waiting.
    private func noServerLeft(context: ChannelHandlerContext) {
        state = .closed
        frontendCounters.noServer()
        let message = tried.isEmpty ? "no server available, closing the client"
            : lastConnectFailure != nil ? "backend unreachable and no server left to try, closing the client" : "no server left to try, closing the client"
        var extra: Logger.Metadata = ["servers.tried": "\(tried.count)"]
        if let failure = lastConnectFailure {
            extra["error"] = "\(failure.error)"
            extra["server"] = "\(failure.server)"
            extra["backend"] = "\(failure.backend)"
        }
        lastConnectFailure = nil
        if let heldBack = pool.failureWarnings.admit("no server") {
            if heldBack > 0 { extra["closures_not_logged"] = "\(heldBack)" }
            logger.warning("\(message)", metadata: metadata(context, extra))
        } else {
            logger.debug("\(message)", metadata: metadata(context, extra))
        }
        context.close(promise: nil)
    }

    private func glue(context: ChannelHandlerContext, backend: Channel, server: ServerRuntime) {
        guard case .connecting = state else {
            server.connectFailed()
            backend.close(promise: nil)
            return
        }
        let (clientSide, backendSide) = GlueHandler.matchedPair(idleTimeout: timeouts.idle, counters: counters)
        let session = ServerSessionHandler(server: server)
        do {
            try backend.pipeline.syncOperations.addHandler(session)
            try backend.pipeline.syncOperations.addHandler(backendSide)
            try context.pipeline.syncOperations.addHandler(clientSide, position: .after(self))
        } catch {
            logger.warning("cannot relay to the backend", metadata: metadata(context, ["error": "\(error)"]))
            backend.close(promise: nil)
            context.close(promise: nil)
            return
        }
        state = .glued
        counters.update { $0.relayed += 1 }
        if pool.sendsProxyProtocol(server) {
            let header = ProxyProtocolV2.header(source: context.channel.remoteAddress, destination: context.channel.localAddress)
            backend.write(ByteBuffer(bytes: header), promise: nil)
        }
        for data in buffered { backend.write(data, promise: nil) }
        buffered = []
        backend.flush()
        if inputClosedEarly {
            clientSide.adoptEarlyEOF()
            backend.close(mode: .output, promise: nil)
        }
        logger.trace("relaying", metadata: metadata(context, [:]))
        let channel = context.channel
        context.pipeline.syncOperations.removeHandler(context: context, promise: nil)
        channel.read()
    }

    /// The connection's log metadata, built only when a message is actually logged (the address formatting
    /// would otherwise cost every connection).
    private func metadata(_ context: ChannelHandlerContext, _ extra: Logger.Metadata) -> Logger.Metadata {
        var metadata = extra
        metadata["client"] = "\(context.channel.remoteAddress?.description ?? "?")"
        if let backend { metadata["backend"] = "\(backend)" }
        return metadata
    }
}

/// First handler of a backend connection: registers it with its server (so `shutdown_sessions` can close it),
/// counts its bytes locally and hands slot and counts back to the server when the connection closes.
final class ServerSessionHandler: ChannelDuplexHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundIn = ByteBuffer

    private let server: ServerRuntime
    private var bytesToServer = 0
    private var bytesFromServer = 0
    private var ended = false

    init(server: ServerRuntime) {
        self.server = server
    }

    func handlerAdded(context: ChannelHandlerContext) {
        server.sessionStarted(context.channel)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        bytesFromServer += unwrapInboundIn(data).readableBytes
        context.fireChannelRead(data)
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        bytesToServer += unwrapOutboundIn(data).readableBytes
        context.write(data, promise: promise)
    }

    func channelInactive(context: ChannelHandlerContext) {
        end(context)
        context.fireChannelInactive()
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        end(context)
    }

    private func end(_ context: ChannelHandlerContext) {
        guard !ended else { return }
        ended = true
        server.sessionEnded(context.channel, bytesToServer: bytesToServer, bytesFromServer: bytesFromServer)
    }
}

/// Shared between ``RawEOFCloser`` and ``CloseRequestObserver`` of one TLS connection (same event loop).
final class TLSClosingState {
    var closeRequested = false
}

/// Sits before the TLS handler. Once the proxy has asked to close a TLS connection, NIOSSL waits for the
/// peer's close_notify (up to its shutdown timeout); with half-closure enabled a plain TCP FIN does not end that
/// wait. A peer that hangs up without close_notify (common) would hold the connection for seconds, so this
/// closes the socket as soon as the FIN arrives.
final class RawEOFCloser: ChannelInboundHandler {
    typealias InboundIn = NIOAny
    private let state: TLSClosingState

    init(state: TLSClosingState) {
        self.state = state
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if state.closeRequested, let event = event as? ChannelEvent, case .inputClosed = event {
            context.close(promise: nil)
            return
        }
        context.fireUserInboundEventTriggered(event)
    }
}

/// Sits after the TLS handler and notes when anything above asks for a full close (see ``RawEOFCloser``).
final class CloseRequestObserver: ChannelOutboundHandler {
    typealias OutboundIn = NIOAny
    private let state: TLSClosingState

    init(state: TLSClosingState) {
        self.state = state
    }

    func close(context: ChannelHandlerContext, mode: CloseMode, promise: EventLoopPromise<Void>?) {
        if mode == .all { state.closeRequested = true }
        context.close(mode: mode, promise: promise)
    }
}
