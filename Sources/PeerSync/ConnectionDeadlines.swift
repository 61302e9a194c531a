import NIOCore
import NIOSSL
import NIOTLS

/// Closes a peer API connection that does not finish its TLS handshake within `handshake`, or that neither reads
/// nor writes for `idle` (longer than the longest long-poll). Strangers that connect and stall cannot pile up.
final class ConnectionDeadlines: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = NIOAny

    private let handshake: TimeAmount
    private var handshakeDeadline: Scheduled<Void>?

    init(handshake: TimeAmount) {
        self.handshake = handshake
    }

    func handlerAdded(context: ChannelHandlerContext) {
        if context.channel.isActive { arm(context) }
    }

    func channelActive(context: ChannelHandlerContext) {
        arm(context)
        context.fireChannelActive()
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if case .handshakeCompleted = event as? TLSUserEvent {
            handshakeDeadline?.cancel()
            handshakeDeadline = nil
        } else if event is IdleStateHandler.IdleStateEvent {
            context.close(promise: nil)
            return
        }
        context.fireUserInboundEventTriggered(event)
    }

    func channelInactive(context: ChannelHandlerContext) {
        handshakeDeadline?.cancel()
        handshakeDeadline = nil
        context.fireChannelInactive()
    }

    private func arm(_ context: ChannelHandlerContext) {
        guard handshakeDeadline == nil else { return }
        let channel = context.channel
        handshakeDeadline = context.eventLoop.scheduleTask(in: handshake) { channel.close(promise: nil) }
    }
}
