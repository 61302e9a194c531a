import LogThrottle
import Logging
import NIOCore

#if canImport(Glibc)
import Glibc
#endif

/// What every certkeeper listener (proxy frontends, the peer API, stats, the http-01 responder) puts on its server
/// channel, so that all of them behave alike at the descriptor limit and none leaks its socket into a child.
///
/// At `ulimit -n`, `accept4` fails with `EMFILE` while the connection stays queued, so a listener that keeps
/// polling spins (about 14,000 failed calls a second at 55–80 % of a core). NIO's `AcceptBackoffHandler` does not
/// stop that: it delays the next `read()`, but after a failed accept NIO still counts its read as pending and keeps
/// the socket registered with epoll, so no `read()` ever comes. ``AcceptPause`` turns `autoRead` off instead, which
/// takes the listening socket out of epoll, and on again a second later, with one warning per listener and minute.
public struct ListenerGuard: Sendable {
    /// The listener's name and address, for the warning (`frontend https 0.0.0.0:443`).
    public var label: String
    /// One warning per minute and listener by default.
    public var throttle: WarningThrottle
    /// How long accepting stops after a resource error.
    public var pause: TimeAmount
    /// Where the warning goes.
    public var logger: Logger

    /// Creates a guard.
    public init(
        label: String, throttle: WarningThrottle = WarningThrottle(interval: .seconds(60)), pause: TimeAmount = .seconds(1), logger: Logger
    ) {
        self.label = label
        self.throttle = throttle
        self.pause = pause
        self.logger = logger
    }

    /// Adds ``AcceptPause`` to a server channel (call it from `serverChannelInitializer`, with the classic or the
    /// async `bind`) and marks the new socket close-on-exec.
    public func install(on channel: any Channel) -> EventLoopFuture<Void> {
        DescriptorHygiene.markAllCloseOnExec()
        return channel.eventLoop.makeCompletedFuture {
            try channel.pipeline.syncOperations.addHandler(AcceptPause(label: label, throttle: throttle, pause: pause, logger: logger))
        }
    }
}

/// Stops a listener from accepting for a while after `accept` failed for lack of descriptors or memory, and says so
/// in a throttled warning; other errors pass untouched.
public final class AcceptPause: ChannelInboundHandler {
    public typealias InboundIn = any Channel

    private let label: String
    private let throttle: WarningThrottle
    private let pause: TimeAmount
    private let logger: Logger
    private var resume: Scheduled<Void>?

    /// Creates the handler.
    public init(label: String, throttle: WarningThrottle, pause: TimeAmount, logger: Logger) {
        self.label = label
        self.throttle = throttle
        self.pause = pause
        self.logger = logger
    }

    /// The errnos that mean "out of descriptors or memory", after which accepting again at once only spins.
    static let resourceErrors: Set<Int32> = [EMFILE, ENFILE, ENOBUFS, ENOMEM]

    public func errorCaught(context: ChannelHandlerContext, error: any Error) {
        guard let io = error as? IOError, Self.resourceErrors.contains(io.errnoCode) else {
            context.fireErrorCaught(error)
            return
        }
        if let heldBack = throttle.admit(label) {
            var metadata: Logger.Metadata = [
                "listener": "\(label)", "errno": "\(io.errnoCode)", "error": "\(String(cString: strerror(io.errnoCode)))",
            ]
            if heldBack > 0 { metadata["accept.failures_not_logged"] = "\(heldBack)" }
            logger.warning("cannot accept connections: a resource limit is reached (raise the descriptor limit, LimitNOFILE=); accepting again in \(pause.nanoseconds / 1_000_000) ms", metadata: metadata)
        }
        guard resume == nil, let options = context.channel.syncOptions else { return }
        // Off: NIO takes the socket out of epoll at once. On again: it registers it and accepts what queued meanwhile.
        try? options.setOption(.autoRead, value: false)
        let channel = context.channel
        resume = context.eventLoop.assumeIsolated().scheduleTask(in: pause) { [self] in
            self.resume = nil
            try? channel.syncOptions?.setOption(.autoRead, value: true)
        }
    }

    public func channelInactive(context: ChannelHandlerContext) {
        resume?.cancel()
        resume = nil
        context.fireChannelInactive()
    }
}

@available(*, unavailable)
extension AcceptPause: Sendable {}
