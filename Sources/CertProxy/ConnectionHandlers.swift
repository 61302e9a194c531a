import Logging
import NIOCore
import NIOPosix
import NIOSSL
import NIOTLS
import NIOConcurrencyHelpers

/// Closes a connection whose TLS handshake has not completed within the limit, and counts failed handshakes.
/// Removes itself once the handshake is done.
final class HandshakeTimeoutHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = NIOAny

    private let timeout: TimeAmount
    private let counters: ProxyCounters
    private let logger: Logger
    private var timer: Scheduled<Void>?
    private var failed = false

    init(timeout: TimeAmount, counters: ProxyCounters, logger: Logger) {
        self.timeout = timeout
        self.counters = counters
        self.logger = logger
    }

    func handlerAdded(context: ChannelHandlerContext) {
        let loopBound = NIOLoopBound(context, eventLoop: context.eventLoop)
        timer = context.eventLoop.assumeIsolated().scheduleTask(in: timeout) { [self] in
            self.fail(context: loopBound.value, reason: "no TLS handshake within \(self.timeout)")
        }
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        timer?.cancel()
        timer = nil
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if let event = event as? TLSUserEvent, case .handshakeCompleted = event {
            timer?.cancel()
            timer = nil
            context.fireUserInboundEventTriggered(event)
            context.pipeline.syncOperations.removeHandler(context: context, promise: nil)
            return
        }
        context.fireUserInboundEventTriggered(event)
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        fail(context: context, reason: "\(error)")
    }

    private func fail(context: ChannelHandlerContext, reason: String) {
        guard !failed else { return }
        failed = true
        timer?.cancel()
        counters.update { $0.handshakeFailures += 1 }
        logger.debug("TLS handshake failed", metadata: ["tls.error": "\(reason)"])
        context.close(promise: nil)
    }
}

/// Closes a connection on which nothing was read or written for the idle limit (after an `IdleStateHandler`).
final class IdleCloseHandler: ChannelInboundHandler {
    typealias InboundIn = NIOAny

    private let counters: ProxyCounters

    init(counters: ProxyCounters) {
        self.counters = counters
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if event is IdleStateHandler.IdleStateEvent {
            counters.update { $0.idleTimeouts += 1 }
            context.close(promise: nil)
            return
        }
        context.fireUserInboundEventTriggered(event)
    }
}

/// Picks backends round-robin; shared by all connections of a frontend.
final class BackendRotation: Sendable {
    private let backends: [ProxyBackend]
    private let next = NIOLockedValueBoxInt()

    init(_ backends: [ProxyBackend]) {
        self.backends = backends
    }

    func pick() -> ProxyBackend {
        backends[next.increment() % backends.count]
    }
}

/// A counter behind a lock (kept tiny so ``BackendRotation`` stays obviously `Sendable`).
final class NIOLockedValueBoxInt: Sendable {
    private let value = NIOLockedValueBox(0)

    /// Returns the current value and adds one.
    func increment() -> Int {
        value.withLockedValue { current in
            defer { current = current &+ 1 }
            return current & Int.max
        }
    }
}

/// Connects the client to a backend once it is ready (at accept for plain TCP, after the handshake for TLS),
/// buffering what the client sends meanwhile, then installs a ``GlueHandler`` pair and removes itself.
/// A backend that cannot be reached closes the client at once.
final class BackendConnectHandler: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundIn = NIOAny

    private enum State {
        case waiting
        case connecting
        case glued
        case closed
    }

    private let waitForHandshake: Bool
    private let rotation: BackendRotation
    private let connectTimeout: TimeAmount
    private let counters: ProxyCounters
    private var logger: Logger
    private var state = State.waiting
    private var buffered: [ByteBuffer] = []
    private var inputClosedEarly = false
    private var readPending = false

    init(
        waitForHandshake: Bool, rotation: BackendRotation, connectTimeout: TimeAmount, counters: ProxyCounters,
        logger: Logger
    ) {
        self.waitForHandshake = waitForHandshake
        self.rotation = rotation
        self.connectTimeout = connectTimeout
        self.counters = counters
        self.logger = logger
    }

    func channelActive(context: ChannelHandlerContext) {
        if !waitForHandshake { connect(context: context) }
        context.fireChannelActive()
    }

    func handlerAdded(context: ChannelHandlerContext) {
        if !waitForHandshake, context.channel.isActive, case .waiting = state { connect(context: context) }
    }

    func channelInactive(context: ChannelHandlerContext) {
        state = .closed
        buffered = []
        context.fireChannelInactive()
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if let tls = event as? TLSUserEvent, case .handshakeCompleted = tls, waitForHandshake, case .waiting = state {
            connect(context: context)
        } else if let channelEvent = event as? ChannelEvent, case .inputClosed = channelEvent {
            inputClosedEarly = true
        }
        context.fireUserInboundEventTriggered(event)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        buffered.append(unwrapInboundIn(data))
    }

    func read(context: ChannelHandlerContext) {
        // Reads must flow while the TLS handshake runs; while the backend connects, hold them.
        if case .connecting = state {
            readPending = true
        } else {
            context.read()
        }
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        logger.debug("client connection error", metadata: ["error": "\(error)"])
        context.close(promise: nil)
    }

    private func connect(context: ChannelHandlerContext) {
        state = .connecting
        let backend = rotation.pick()
        logger[metadataKey: "backend"] = "\(backend)"
        let loopBound = NIOLoopBound(context, eventLoop: context.eventLoop)
        ClientBootstrap(group: context.eventLoop)
            .connectTimeout(connectTimeout)
            .channelOption(.allowRemoteHalfClosure, value: true)
            .channelOption(.socketOption(.tcp_nodelay), value: 1)
            .connect(host: backend.host, port: backend.port)
            .assumeIsolated()
            .whenComplete { [self] result in
                let context = loopBound.value
                switch result {
                case .success(let backendChannel):
                    self.glue(context: context, backend: backendChannel)
                case .failure(let error):
                    self.counters.update { $0.backendFailures += 1 }
                    self.logger.warning("backend unreachable, closing the client", metadata: ["error": "\(error)"])
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
        let (clientSide, backendSide) = GlueHandler.matchedPair()
        do {
            try backend.pipeline.syncOperations.addHandler(backendSide)
            try context.pipeline.syncOperations.addHandler(clientSide, position: .after(self))
        } catch {
            logger.warning("cannot relay to the backend", metadata: ["error": "\(error)"])
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
        logger.debug("relaying")
        let channel = context.channel
        context.pipeline.syncOperations.removeHandler(context: context, promise: nil)
        channel.read()
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
