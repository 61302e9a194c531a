import NIOCore

/// One half of a relay between two channels on the same event loop (swift-nio-examples' connect-proxy pattern).
///
/// Bytes read on one side are written to the partner. A side only reads while its partner is writable, so a
/// slow reader on one end applies back-pressure to the other instead of filling memory. An EOF on one side
/// half-closes the partner's output (`close(mode: .output)`); a full close on either side closes both.
///
/// The client side also applies the idle limit: when no byte was relayed in either direction for that long,
/// it closes the client (and so the backend). One timer per connection, re-armed only when it fires.
final class GlueHandler {
    /// When a byte was last relayed, in either direction; shared by the pair (one event loop).
    private final class Activity {
        var last = NIODeadline.now()
    }

    /// The idle limit, on the client side only.
    private struct IdleLimit {
        let timeout: TimeAmount
        let counters: ProxyCounters
    }

    private var partner: GlueHandler?
    private var context: ChannelHandlerContext?
    private var pendingRead = false
    private var inputClosed = false
    private var outputClosed = false
    private let activity: Activity
    private let idleLimit: IdleLimit?
    private var idleTimer: Scheduled<Void>?

    private init(activity: Activity, idleLimit: IdleLimit?) {
        self.activity = activity
        self.idleLimit = idleLimit
    }

    /// Two handlers that relay to each other: add the first to the client's pipeline, the second to the backend's.
    /// - Parameters:
    ///   - idleTimeout: Closes the connection when nothing is relayed for this long.
    ///   - counters: Where idle closes are counted.
    static func matchedPair(idleTimeout: TimeAmount, counters: ProxyCounters) -> (GlueHandler, GlueHandler) {
        let activity = Activity()
        let first = GlueHandler(activity: activity, idleLimit: IdleLimit(timeout: idleTimeout, counters: counters))
        let second = GlueHandler(activity: activity, idleLimit: nil)
        first.partner = second
        second.partner = first
        return (first, second)
    }

    private func armIdleTimer(context: ChannelHandlerContext, in delay: TimeAmount) {
        let loopBound = NIOLoopBound(context, eventLoop: context.eventLoop)
        idleTimer = context.eventLoop.assumeIsolated().scheduleTask(in: delay) { [self] in
            self.idleTimerFired(context: loopBound.value)
        }
    }

    private func idleTimerFired(context: ChannelHandlerContext) {
        guard let idleLimit, self.context != nil else { return }
        let quiet = NIODeadline.now() - activity.last
        if quiet >= idleLimit.timeout {
            idleTimer = nil
            idleLimit.counters.update { $0.idleTimeouts += 1 }
            context.close(promise: nil)
        } else {
            armIdleTimer(context: context, in: idleLimit.timeout - quiet)
        }
    }

    /// Records that the client's EOF arrived before the relay existed (while the backend was connecting): this
    /// side's input is closed and the partner's output was already closed, so later closes complete both ways.
    func adoptEarlyEOF() {
        inputClosed = true
        partner?.outputClosed = true
    }

    private func partnerWrite(_ data: NIOAny) {
        context?.write(data, promise: nil)
    }

    private func partnerFlush() {
        context?.flush()
    }

    private func partnerWriteEOF() {
        guard let context, !outputClosed else { return }
        outputClosed = true
        if inputClosed {
            context.close(promise: nil)
        } else {
            context.close(mode: .output, promise: nil)
        }
    }

    private func partnerCloseFull() {
        context?.close(promise: nil)
    }

    private func partnerBecameWritable() {
        if pendingRead {
            pendingRead = false
            context?.read()
        }
    }

    private var partnerWritable: Bool {
        context?.channel.isWritable ?? false
    }
}

extension GlueHandler: ChannelDuplexHandler {
    typealias InboundIn = NIOAny
    typealias OutboundIn = NIOAny
    typealias OutboundOut = NIOAny

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        if let idleLimit { armIdleTimer(context: context, in: idleLimit.timeout) }
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        idleTimer?.cancel()
        idleTimer = nil
        self.context = nil
        self.partner = nil
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        activity.last = .now()
        partner?.partnerWrite(data)
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        partner?.partnerFlush()
    }

    func channelInactive(context: ChannelHandlerContext) {
        idleTimer?.cancel()
        idleTimer = nil
        partner?.partnerCloseFull()
        context.fireChannelInactive()
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if let event = event as? ChannelEvent, case .inputClosed = event {
            inputClosed = true
            partner?.partnerFlush()
            partner?.partnerWriteEOF()
            if outputClosed { context.close(promise: nil) }
        }
        context.fireUserInboundEventTriggered(event)
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        partner?.partnerCloseFull()
        context.close(promise: nil)
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        if context.channel.isWritable {
            partner?.partnerBecameWritable()
        }
        context.fireChannelWritabilityChanged()
    }

    func read(context: ChannelHandlerContext) {
        if let partner, partner.partnerWritable {
            context.read()
        } else {
            pendingRead = true
        }
    }
}
