import Foundation
import Listeners
import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import NIOSSL
import NIOTLS

/// One health-check probe against one server: connects (to the check port, if set), does what the check's kind
/// asks, and reports what it saw. Bounded by the check's timeout; the connection is always closed.
enum HealthProbe {
    /// Runs one probe.
    /// - Returns: Whether it passed and a short detail (`connected`, `status 503`, `timed out after 2 s`, …).
    static func run(
        _ check: ProxyHealthCheck, server: ServerRuntime, tlsContext: NIOSSLContext?, group: any EventLoopGroup
    ) async -> (passed: Bool, detail: String) {
        let host = server.settings.address.host
        let port = check.port ?? server.settings.address.port
        let timeout = check.effectiveTimeout
        let eventLoop = group.next()
        let promise = eventLoop.makePromise(of: String.self)
        let deadline = eventLoop.scheduleTask(in: timeout) {
            promise.fail(ProbeFailure("timed out after \(timeout.nanoseconds / 1_000_000) ms"))
        }
        let bootstrap = ClientBootstrap(group: eventLoop)
            .connectTimeout(timeout)
            .channelInitializer { channel in
                DescriptorHygiene.markAllCloseOnExec()
                return channel.eventLoop.makeCompletedFuture {
                    let sync = channel.pipeline.syncOperations
                    if case .tls = check.kind, let tlsContext {
                        try sync.addHandler(NIOSSLClientHandler(context: tlsContext, serverHostname: nil))
                    }
                    try sync.addHandler(ProbeHandler(kind: check.kind, host: host, promise: promise))
                }
            }
        let address = try? SocketAddress(ipAddress: host, port: port)
        let connecting = address.map { bootstrap.connect(to: $0) } ?? bootstrap.connect(host: host, port: port)
        connecting.whenFailure { error in promise.fail(ProbeFailure(describe(error))) }
        let result: (passed: Bool, detail: String)
        do {
            result = (true, try await promise.futureResult.get())
        } catch let failure as ProbeFailure {
            result = (false, failure.detail)
        } catch {
            result = (false, describe(error))
        }
        deadline.cancel()
        if let channel = try? await connecting.get() { try? await channel.close() }
        return result
    }

    private static func describe(_ error: any Error) -> String {
        if let connect = error as? NIOConnectionError, let first = connect.connectionErrors.first {
            return "\(first.error)"
        }
        if let channelError = error as? ChannelError, case .connectTimeout = channelError { return "connect timed out" }
        return "\(error)"
    }
}

/// Why a probe failed, as one line.
struct ProbeFailure: Error {
    let detail: String
    init(_ detail: String) { self.detail = detail }
}

/// Completes the probe's promise: at connect (`tcp`), at the end of the handshake (`tls`), or on the HTTP status
/// line (`http`).
private final class ProbeHandler: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    private let kind: ProxyHealthCheck.Kind
    private let host: String
    private let promise: EventLoopPromise<String>
    private var received = ""

    init(kind: ProxyHealthCheck.Kind, host: String, promise: EventLoopPromise<String>) {
        self.kind = kind
        self.host = host
        self.promise = promise
    }

    func channelActive(context: ChannelHandlerContext) {
        switch kind {
        case .tcp:
            promise.succeed("connected")
        case .http(let method, let path, _):
            let request = "\(method) \(path) HTTP/1.0\r\nHost: \(host)\r\nUser-Agent: certkeeper-check\r\nConnection: close\r\n\r\n"
            context.writeAndFlush(wrapOutboundOut(ByteBuffer(string: request)), promise: nil)
        case .tls:
            break
        }
        context.fireChannelActive()
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if case .tls = kind, let event = event as? TLSUserEvent, case .handshakeCompleted = event {
            promise.succeed("handshake completed")
        }
        context.fireUserInboundEventTriggered(event)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard case .http(_, _, let expected) = kind else { return }
        received += String(buffer: unwrapInboundIn(data))
        guard let end = received.range(of: "\r\n") else {
            if received.utf8.count > 1024 { promise.fail(ProbeFailure("no HTTP status line in the first 1024 bytes")) }
            return
        }
        let statusLine = received[..<end.lowerBound]
        let parts = statusLine.split(separator: " ", maxSplits: 2)
        guard parts.count >= 2, parts[0].hasPrefix("HTTP/"), let status = Int(parts[1]) else {
            promise.fail(ProbeFailure("not an HTTP status line"))
            return
        }
        if status == expected {
            promise.succeed("status \(status)")
        } else {
            promise.fail(ProbeFailure("status \(status), expected \(expected)"))
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        promise.fail(ProbeFailure("closed by the server"))
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        promise.fail(ProbeFailure("\(error)"))
        context.close(promise: nil)
    }
}

/// Runs the health checks of the current pools: one loop per checked server, each probing, recording the result
/// and sleeping the interval. A new configuration brings new pools; loops of retired pools end after their
/// current sleep. Everything runs inside ``run()``'s task group and ends with it.
final class HealthCheckRunner: Sendable {
    private let group: any EventLoopGroup
    private let logger: Logger
    private let clock: any Clock<Duration>
    private let generations: AsyncStream<[BackendPool]>
    private let continuation: AsyncStream<[BackendPool]>.Continuation
    /// Loops running now (each may have a probe on the event loops in flight).
    private let activeLoops = DrainCount()

    /// - Parameters:
    ///   - group: Where probes connect from.
    ///   - clock: What the loops sleep on.
    ///   - logger: Where state changes are logged.
    init(group: any EventLoopGroup, clock: any Clock<Duration> = ContinuousClock(), logger: Logger) {
        self.group = group
        self.clock = clock
        self.logger = logger
        (generations, continuation) = AsyncStream.makeStream(of: [BackendPool].self, bufferingPolicy: .unbounded)
    }

    /// Starts checking these pools (the previous ones must have been retired).
    func check(_ pools: [BackendPool]) {
        continuation.yield(pools)
    }

    /// No more pools: ``run()`` returns once the current loops have noticed their pools are retired.
    func finish() {
        continuation.finish()
    }

    /// Runs until ``finish()`` or cancellation.
    func run() async {
        await withDiscardingTaskGroup { group in
            for await pools in generations {
                for pool in pools {
                    for server in pool.servers where server.settings.check != nil {
                        group.addTask { await self.loop(server: server, pool: pool) }
                    }
                }
            }
            group.cancelAll()
        }
    }

    /// Waits until every loop has ended (bounded), so the event loops can be shut down with no probe in flight:
    /// a probe started on a loop that is shutting down would never complete.
    func waitForLoopsToEnd(upTo limit: Duration) async {
        await activeLoops.waitForZero(upTo: limit)
    }

    private func loop(server: ServerRuntime, pool: BackendPool) async {
        guard let check = server.settings.check else { return }
        // Counted before the retired check, so shutdown either sees this loop or the loop sees the retirement.
        activeLoops.increment()
        defer { activeLoops.decrement() }
        let interval = Duration.nanoseconds(check.interval.nanoseconds)
        while !pool.retired, !Task.isCancelled {
            let started = ContinuousClock.now
            let (passed, detail) = await HealthProbe.run(check, server: server, tlsContext: pool.checkTLSContext, group: group)
            guard !pool.retired else { return }
            let result = ProxyCheckResult(passed: passed, detail: detail, time: Date(), duration: ContinuousClock.now - started)
            apply(result, server: server, pool: pool)
            do {
                try await clock.sleep(for: interval)
            } catch {
                return
            }
        }
    }

    /// Records a result, logs a state change and closes the sessions of a server marked down when asked to.
    func apply(_ result: ProxyCheckResult, server: ServerRuntime, pool: BackendPool) {
        let (transition, sessions) = server.recordCheck(result)
        guard let transition else { return }
        let metadata: Logger.Metadata = [
            "frontend": "\(pool.frontendName)", "server": "\(server.settings.name)",
            "server.address": "\(server.settings.address)", "check": "\(result.detail)",
        ]
        switch transition {
        case .markedDown:
            let closing = pool.settings.onMarkedDown == .shutdownSessions ? sessions : []
            var extra = metadata
            if !closing.isEmpty { extra["sessions.closed"] = "\(closing.count)" }
            logger.warning("server marked down", metadata: extra)
            for channel in closing { channel.close(promise: nil) }
        case .markedUp:
            logger.notice("server marked up", metadata: metadata)
        }
    }
}
