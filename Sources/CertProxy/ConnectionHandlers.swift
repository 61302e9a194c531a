import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import NIOSSL
import NIOTLS

/// Picks backends round-robin; shared by all connections of a frontend. IP literals are parsed once here, so a
/// connection to them skips name resolution (and NIO's Happy Eyeballs machinery).
final class BackendRotation: Sendable {
    private let backends: [(backend: ProxyBackend, address: SocketAddress?)]
    private let next = NIOLockedValueBox(0)
    /// One "backend unreachable" warning per backend per 10 s; the rest go to debug.
    let failureWarnings = WarningThrottle()

    init(_ backends: [ProxyBackend]) {
        self.backends = backends.map { ($0, try? SocketAddress(ipAddress: $0.host, port: $0.port)) }
    }

    func pick() -> (backend: ProxyBackend, address: SocketAddress?) {
        let index = next.withLockedValue { current in
            defer { current = current &+ 1 }
            return current & Int.max
        }
        return backends[index % backends.count]
    }
}

/// What one client connection needs before it is relayed: the handshake limit, the backend connection, and
/// the counters. One handler instead of a handler per concern keeps the per-connection pipeline short.
///
/// TLS connections wait for the handshake (closed after `timeouts.handshake`); plain ones connect at once. What
/// the client sends meanwhile is buffered and reads are held while the backend connects. A backend that cannot
/// be reached closes the client at once. Once connected, a ``GlueHandler`` pair (which also applies the idle
/// limit) replaces this handler.
final class ClientConnectionHandler: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundIn = NIOAny

    private enum State {
        case handshaking
        case connecting
        case glued
        case closed
    }

    private let tls: Bool
    private let rotation: BackendRotation
    private let timeouts: ProxyTimeouts
    private let counters: ProxyCounters
    private let logger: Logger
    private var state: State
    private var handshakeTimer: Scheduled<Void>?
    private var backend: ProxyBackend?
    private var buffered: [ByteBuffer] = []
    private var inputClosedEarly = false

    init(tls: Bool, rotation: BackendRotation, timeouts: ProxyTimeouts, counters: ProxyCounters, logger: Logger) {
        self.tls = tls
        self.rotation = rotation
        self.timeouts = timeouts
        self.counters = counters
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
            connect(context: context)
        }
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        handshakeTimer?.cancel()
        handshakeTimer = nil
    }

    func channelActive(context: ChannelHandlerContext) {
        if !tls, backend == nil { connect(context: context) }
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
            state = .connecting
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
        // Reads must flow while the TLS handshake runs; while the backend connects, hold them (the glue reads).
        if case .handshaking = state { context.read() }
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        if case .handshaking = state {
            handshakeFailed(context: context, reason: "\(error)")
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
        logger.debug("TLS handshake failed", metadata: metadata(context, ["tls.error": "\(reason())"]))
        context.close(promise: nil)
    }

    private func connect(context: ChannelHandlerContext) {
        state = .connecting
        let (backend, address) = rotation.pick()
        self.backend = backend
        let loopBound = NIOLoopBound(context, eventLoop: context.eventLoop)
        let bootstrap = ClientBootstrap(group: context.eventLoop)
            .connectTimeout(timeouts.backendConnect)
            .channelOption(.allowRemoteHalfClosure, value: true)
            .channelOption(.socketOption(.tcp_nodelay), value: 1)
        let connecting = address.map { bootstrap.connect(to: $0) } ?? bootstrap.connect(host: backend.host, port: backend.port)
        connecting.assumeIsolated().whenComplete { [self] result in
            let context = loopBound.value
            switch result {
            case .success(let backendChannel):
                self.glue(context: context, backend: backendChannel)
            case .failure(let error):
                self.counters.update { $0.backendFailures += 1 }
                if let heldBack = self.rotation.failureWarnings.admit(backend.description) {
                    var extra: Logger.Metadata = ["error": "\(error)"]
                    if heldBack > 0 { extra["backend.failures_not_logged"] = "\(heldBack)" }
                    self.logger.warning("backend unreachable, closing the client", metadata: self.metadata(context, extra))
                } else {
                    self.logger.debug("backend unreachable, closing the client", metadata: self.metadata(context, ["error": "\(error)"]))
                }
                self.state = .closed
                context.close(promise: nil)
            }
        }
    }

    private func glue(context: ChannelHandlerContext, backend: Channel) {
        guard case .connecting = state else {
            backend.close(promise: nil)
            return
        }
        let (clientSide, backendSide) = GlueHandler.matchedPair(idleTimeout: timeouts.idle, counters: counters)
        do {
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
