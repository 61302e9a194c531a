import LogThrottle
import Logging
import NIOCore
import NIOTLS

/// Fired down the pipeline by ``MQTTConnectGate`` when a valid CONNECT has arrived, just before the buffered
/// bytes: the moment to pick a backend (by ``clientID`` when sticking) and connect.
public struct MQTTConnectAccepted: Sendable, Hashable {
    /// The CONNECT's client identifier (possibly empty: see ``MQTTConnectPacket/clientID``).
    public var clientID: String
    /// The protocol version the client speaks.
    public var version: MQTTProtocolVersion

    /// Creates the event.
    public init(clientID: String, version: MQTTProtocolVersion) {
        self.clientID = clientID
        self.version = version
    }
}

/// `require_mqtt_connect`: the connection's first bytes must be a valid MQTT CONNECT (``MQTTConnectParser``)
/// within a deadline, or the connection is closed.
///
/// Placed after the TLS handler (or first, on a plain frontend) and before the handler that connects to a backend.
/// It holds everything the client sends (at most the CONNECT plus one read) and requests reads itself, so
/// handlers behind it may hold reads. On a valid CONNECT it fires ``MQTTConnectAccepted``, passes the held bytes on
/// unchanged as one buffer, and removes itself. On invalid bytes, end of input or the deadline it logs one line
/// with the reason (never payload bytes) and closes the connection. Other events pass through.
public final class MQTTConnectGate: ChannelInboundHandler, RemovableChannelHandler {
    public typealias InboundIn = ByteBuffer
    public typealias InboundOut = ByteBuffer

    private enum State {
        /// A TLS frontend before its handshake completed: the deadline has not started.
        case awaitingHandshake
        case gating
        case done
    }

    private let parser: MQTTConnectParser
    private let deadline: TimeAmount
    private let logger: Logger
    private let refusals: WarningThrottle
    private var state: State
    private var held: ByteBuffer?
    private var timer: Scheduled<Void>?

    /// Creates a gate for one connection.
    /// - Parameters:
    ///   - deadline: How long the client has to send its CONNECT.
    ///   - maxPacketSize: The largest CONNECT accepted (fixed header included); also bounds what is held.
    ///   - afterTLSHandshake: Start the deadline at the TLS handshake's completion (a TLS frontend) rather than
    ///     when the channel is active (a plain one).
    ///   - logger: Where the one line about a rejected connection goes.
    ///   - refusals: Throttles those lines per reason, shared by the connections of a frontend: any client can be
    ///     refused at will, so only the first few per interval are logged in full (``refusalLog`` by default).
    public init(
        deadline: TimeAmount = MQTTSettings.defaultConnectDeadline,
        maxPacketSize: Int = MQTTConnectParser.defaultMaxPacketSize,
        afterTLSHandshake: Bool,
        logger: Logger,
        refusals: WarningThrottle = MQTTConnectGate.refusalLog
    ) {
        self.parser = MQTTConnectParser(maxPacketSize: maxPacketSize)
        self.deadline = deadline
        self.logger = logger
        self.refusals = refusals
        self.state = afterTLSHandshake ? .awaitingHandshake : .gating
    }

    /// Creates a gate from a frontend's MQTT settings.
    public convenience init(settings: MQTTSettings, afterTLSHandshake: Bool, logger: Logger, refusals: WarningThrottle = MQTTConnectGate.refusalLog) {
        self.init(
            deadline: settings.connectDeadline, maxPacketSize: settings.maxPacketSize,
            afterTLSHandshake: afterTLSHandshake, logger: logger, refusals: refusals)
    }

    /// The process-wide default for `refusals`: five lines per reason every ten seconds, then a count.
    public static let refusalLog = WarningThrottle(interval: .seconds(10), burst: 5)

    public func handlerAdded(context: ChannelHandlerContext) {
        if case .gating = state, context.channel.isActive { startDeadline(context: context) }
    }

    public func handlerRemoved(context: ChannelHandlerContext) {
        cancelDeadline()
    }

    public func channelActive(context: ChannelHandlerContext) {
        if case .gating = state { startDeadline(context: context) }
        context.fireChannelActive()
    }

    public func channelInactive(context: ChannelHandlerContext) {
        state = .done
        held = nil
        cancelDeadline()
        context.fireChannelInactive()
    }

    public func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if let tlsEvent = event as? TLSUserEvent, case .handshakeCompleted = tlsEvent, case .awaitingHandshake = state {
            state = .gating
            startDeadline(context: context)
        } else if let channelEvent = event as? ChannelEvent, case .inputClosed = channelEvent, isHolding {
            reject(context: context, kind: "closed early", reason: "client closed before a complete CONNECT")
            return
        }
        context.fireUserInboundEventTriggered(event)
    }

    public func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard isHolding else {
            context.fireChannelRead(data)
            return
        }
        if case .awaitingHandshake = state {
            // Plaintext only comes after the handshake; without its event (a plain channel), start now.
            state = .gating
            startDeadline(context: context)
        }
        var incoming = unwrapInboundIn(data)
        if held == nil {
            held = incoming
        } else {
            held!.writeBuffer(&incoming)
        }
        switch parser.parse(held!) {
        case .needMoreData:
            break
        case .invalid(let rejection):
            reject(context: context, kind: "invalid", reason: "\(rejection)")
        case .connect(let packet):
            accept(context: context, packet: packet)
        }
    }

    public func channelReadComplete(context: ChannelHandlerContext) {
        if isHolding {
            // Handlers behind may hold reads until a backend is connected; the CONNECT must still arrive.
            context.read()
        } else {
            context.fireChannelReadComplete()
        }
    }

    private var isHolding: Bool {
        switch state {
        case .awaitingHandshake, .gating: true
        case .done: false
        }
    }

    private func accept(context: ChannelHandlerContext, packet: MQTTConnectPacket) {
        state = .done
        cancelDeadline()
        let bytes = held!
        held = nil
        context.fireUserInboundEventTriggered(MQTTConnectAccepted(clientID: packet.clientID, version: packet.version))
        context.fireChannelRead(wrapInboundOut(bytes))
        context.fireChannelReadComplete()
        context.pipeline.syncOperations.removeHandler(context: context, promise: nil)
    }

    /// Closes the client; logs it in full while the throttle lets `kind` through, at debug level otherwise.
    private func reject(context: ChannelHandlerContext, kind: String, reason: String) {
        guard isHolding else { return }
        state = .done
        cancelDeadline()
        let received = held?.readableBytes ?? 0
        held = nil
        var metadata: Logger.Metadata = [
            "client": "\(context.channel.remoteAddress?.description ?? "?")",
            "mqtt.reject": "\(reason)",
            "mqtt.bytes_received": "\(received)",
        ]
        if let heldBack = refusals.admit(kind) {
            if heldBack > 0 { metadata["mqtt.refusals_not_logged"] = "\(heldBack)" }
            logger.info("not an MQTT CONNECT, closing the client", metadata: metadata)
        } else {
            logger.debug("not an MQTT CONNECT, closing the client", metadata: metadata)
        }
        context.close(promise: nil)
    }

    private func startDeadline(context: ChannelHandlerContext) {
        guard timer == nil else { return }
        let loopBound = NIOLoopBound(context, eventLoop: context.eventLoop)
        timer = context.eventLoop.assumeIsolated().scheduleTask(in: deadline) { [self] in
            self.reject(context: loopBound.value, kind: "deadline", reason: "no complete CONNECT within \(self.deadline)")
        }
        // Handlers behind may not request reads yet (see channelReadComplete).
        context.read()
    }

    private func cancelDeadline() {
        timer?.cancel()
        timer = nil
    }
}
