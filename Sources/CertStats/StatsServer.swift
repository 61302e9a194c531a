import CoreMetrics
import Listeners
import Logging
import NIOCore
import NIOHTTP1
import NIOPosix
import Prometheus
import ServiceLifecycle

/// The stats listener: plain HTTP/1.1 serving ``StatsEndpoints`` (bind it to loopback or the private network).
///
/// ```swift
/// let server = try await StatsServer.bind(host: "127.0.0.1", port: 7000, endpoints: endpoints, logger: logger)
/// try await server.run()   // until the task is cancelled; then the listener and every connection are closed
/// ```
public final class StatsServer: Sendable {
    /// A connection with no traffic for this long is closed (Prometheus scrapes every 15–60 s on a kept-alive one).
    static let idleTimeout: TimeAmount = .seconds(120)

    /// The port bound (useful with port 0).
    public let port: Int
    private let listener: NIOAsyncChannel<NIOAsyncChannel<HTTPServerRequestPart, HTTPServerResponsePart>, Never>
    private let endpoints: StatsEndpoints
    private let requests: RequestCounter
    private let logger: Logger

    private init(
        port: Int, listener: NIOAsyncChannel<NIOAsyncChannel<HTTPServerRequestPart, HTTPServerResponsePart>, Never>,
        endpoints: StatsEndpoints, logger: Logger
    ) {
        self.port = port
        self.listener = listener
        self.endpoints = endpoints
        self.requests = RequestCounter(registry: endpoints.registry)
        self.logger = logger
    }

    /// Binds the listening socket.
    /// - Parameters:
    ///   - host: The address to bind (loopback or the private network; the configuration refuses public ones
    ///     unless told otherwise).
    ///   - port: The port; 0 for any.
    ///   - endpoints: What to answer.
    ///   - group: Event loops (one is plenty).
    ///   - logger: Where the listener and failed connections are logged.
    /// - Throws: What NIO reports when the address cannot be bound.
    public static func bind(
        host: String, port: Int, endpoints: StatsEndpoints,
        group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton, logger: Logger
    ) async throws -> StatsServer {
        let listenerGuard = ListenerGuard(label: "stats \(host):\(port)", logger: logger)
        let listener = try await ServerBootstrap(group: group)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .serverChannelOption(.backlog, value: 32)
            .serverChannelInitializer { listenerGuard.install(on: $0) }
            .childChannelOption(.socketOption(.tcp_nodelay), value: 1)
            .bind(host: host, port: port) { channel in
                DescriptorHygiene.markAllCloseOnExec()
                return channel.eventLoop.makeCompletedFuture {
                    let sync = channel.pipeline.syncOperations
                    try sync.addHandler(IdleStateHandler(allTimeout: Self.idleTimeout))
                    try sync.addHandler(IdleCloser())
                    try sync.configureHTTPServerPipeline(withPipeliningAssistance: true, withErrorHandling: true)
                    return try NIOAsyncChannel<HTTPServerRequestPart, HTTPServerResponsePart>(wrappingChannelSynchronously: channel)
                }
            }
        let bound = listener.channel.localAddress?.port ?? port
        logger.info("stats listening", metadata: ["stats.address": "\(host):\(bound)", "stats.prefix": "\(endpoints.pathPrefix)"])
        return StatsServer(port: bound, listener: listener, endpoints: endpoints, logger: logger)
    }

    /// Serves until the calling task is cancelled; then closes the listener and every connection.
    public func run() async throws {
        try await listener.executeThenClose { inbound in
            try await withThrowingDiscardingTaskGroup { group in
                for try await connection in inbound {
                    group.addTask { await self.serve(connection) }
                }
            }
        }
    }

    private func serve(_ connection: NIOAsyncChannel<HTTPServerRequestPart, HTTPServerResponsePart>) async {
        do {
            try await connection.executeThenClose { inbound, outbound in
                var head: HTTPRequestHead?
                for try await part in inbound {
                    switch part {
                    case .head(let requestHead):
                        head = requestHead
                    case .body:
                        break
                    case .end:
                        guard let request = head else { continue }
                        head = nil
                        let response = endpoints.respond(method: request.method.rawValue, target: request.uri)
                        requests.count(status: response.status)
                        var headers = HTTPHeaders()
                        headers.add(name: "content-type", value: response.contentType)
                        headers.add(name: "content-length", value: "\(response.body.count)")
                        headers.add(name: "cache-control", value: "no-store")
                        for (name, value) in response.headers { headers.add(name: name, value: value) }
                        let keepAlive = request.isKeepAlive
                        if !keepAlive { headers.add(name: "connection", value: "close") }
                        let status = HTTPResponseStatus(statusCode: response.status)
                        try await outbound.write(.head(HTTPResponseHead(version: request.version, status: status, headers: headers)))
                        if request.method != .HEAD {
                            try await outbound.write(.body(.byteBuffer(ByteBuffer(bytes: response.body))))
                        }
                        try await outbound.write(.end(nil))
                        if !keepAlive { return }
                    }
                }
            }
        } catch {
            logger.debug("stats connection ended", metadata: ["error": "\(error)"])
        }
    }
}

/// Counts answered requests by status through swift-metrics (`certkeeper_stats_requests_total{status}`), into
/// the long-lived registry that `/metrics` appends.
struct RequestCounter: Sendable {
    private let factory: PrometheusMetricsFactory?

    init(registry: PrometheusCollectorRegistry?) {
        factory = registry.map { PrometheusMetricsFactory(registry: $0) }
    }

    func count(status: Int) {
        guard let factory else { return }
        Counter(label: "certkeeper_stats_requests_total", dimensions: [("status", "\(status)")], factory: factory).increment()
    }
}

/// Closes a connection once its ``IdleStateHandler`` fires.
final class IdleCloser: ChannelInboundHandler, Sendable {
    typealias InboundIn = NIOAny

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if event is IdleStateHandler.IdleStateEvent {
            context.close(promise: nil)
        } else {
            context.fireUserInboundEventTriggered(event)
        }
    }
}

/// The stats listener as a `Service`: binds at start, serves until graceful shutdown (SIGTERM), then closes the
/// listener and its connections at once (a scrape has nothing worth draining).
public struct StatsService: Service {
    /// The address to bind.
    public let host: String
    /// The port to bind.
    public let port: Int
    /// What to answer.
    public let endpoints: StatsEndpoints
    let logger: Logger

    /// Creates the service; nothing is bound until ``run()``.
    /// - Parameters:
    ///   - host: The address to bind.
    ///   - port: The port to bind.
    ///   - endpoints: What to answer.
    ///   - logger: Where the listener logs.
    public init(host: String, port: Int, endpoints: StatsEndpoints, logger: Logger) {
        self.host = host
        self.port = port
        self.endpoints = endpoints
        self.logger = logger
    }

    /// Binds and serves until graceful shutdown.
    /// - Throws: When the address cannot be bound.
    public func run() async throws {
        let server: StatsServer
        do {
            server = try await StatsServer.bind(host: host, port: port, endpoints: endpoints, logger: logger)
        } catch {
            throw StatsError.bindFailed(address: "\(host):\(port)", reason: "\(error)")
        }
        do {
            try await cancelWhenGracefulShutdown {
                try await server.run()
            }
        } catch where Task.isCancelled || Task.isShuttingDownGracefully {
            // Ending because we were asked to: not a failure.
        }
    }
}

/// Why the stats listener could not start.
public enum StatsError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The address could not be bound (in use, not on this host, no permission).
    case bindFailed(address: String, reason: String)

    /// One line.
    public var description: String {
        switch self {
        case .bindFailed(let address, let reason): "stats: cannot listen on \(address): \(reason)"
        }
    }
}

extension StatsService: CustomStringConvertible {
    /// `StatsService(127.0.0.1:7000)`: what ServiceLifecycle logs for the service (instead of a reflected dump).
    public var description: String { "StatsService(\(host):\(port))" }
}
