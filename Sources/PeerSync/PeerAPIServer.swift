import ClusterTrust
import Listeners
import LogThrottle
import Logging
import NIOCore
import NIOHTTP1
import NIOPosix
import NIOSSL
import X509

/// The peer API over HTTPS with mutual TLS: every connection must present a certificate the cluster CA signed
/// (enforced by the TLS configuration the caller passes), or the handshake fails and nothing is served; and the
/// certificate and the connecting address must pass the ``PeerAllowList`` (a configured peer, from its address,
/// with clientAuth), or every request is answered 403 before any route runs.
///
/// ```swift
/// let server = try await PeerAPIServer.bind(host: "10.0.0.1", port: 7443, tls: identity.makeServerTLSConfiguration(),
///                                           allowList: PeerAllowList(cluster: cluster), logger: logger)
/// try await server.run(api)   // until the task is cancelled
/// ```
public final class PeerAPIServer: Sendable {
    /// One accepted connection: the channel (for the peer's certificate) and its HTTP stream.
    struct Connection: Sendable {
        let channel: any Channel
        let http: NIOAsyncChannel<HTTPServerRequestPart, HTTPServerResponsePart>
    }

    /// A connection with no traffic either way for this long is closed: longer than the longest long-poll (10 min).
    static let idleSeconds: Int64 = 660

    /// The port bound (useful with port 0).
    public let port: Int
    private let listener: NIOAsyncChannel<Connection, Never>
    private let allowList: PeerAllowList
    /// The swappable identity, trust and revocations (`nil`: the fixed TLS configuration given to ``bind(host:port:tls:allowList:group:logger:)``).
    private let credentials: ClusterCredentials?
    private let refusals = WarningThrottle(interval: .seconds(60))
    private let logger: Logger

    private init(port: Int, listener: NIOAsyncChannel<Connection, Never>, allowList: PeerAllowList, credentials: ClusterCredentials?, logger: Logger) {
        self.port = port
        self.listener = listener
        self.allowList = allowList
        self.credentials = credentials
        self.logger = logger
    }

    /// Binds the listening socket with swappable credentials: each new connection takes the current TLS context,
    /// and each request on an open one is checked again when the credentials change (a revoked node, a CA no
    /// longer trusted).
    public static func bind(
        host: String, port: Int, credentials: ClusterCredentials, allowList: PeerAllowList,
        group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton, logger: Logger
    ) async throws -> PeerAPIServer {
        try await bind(host: host, port: port, context: { credentials.current.serverContext }, allowList: allowList, credentials: credentials, group: group, logger: logger)
    }

    /// Binds the listening socket.
    /// - Parameters:
    ///   - host: Address to bind (the private network).
    ///   - port: Port; 0 for any.
    ///   - tls: A server configuration that requires and verifies client certificates.
    ///   - allowList: Which verified clients are served (the others get 403).
    ///   - group: Event loops (one thread is plenty).
    ///   - logger: Where connections and failures are logged.
    public static func bind(
        host: String, port: Int, tls: TLSConfiguration, allowList: PeerAllowList,
        group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton, logger: Logger
    ) async throws -> PeerAPIServer {
        let context = try NIOSSLContext(configuration: tls)
        return try await bind(host: host, port: port, context: { context }, allowList: allowList, credentials: nil, group: group, logger: logger)
    }

    private static func bind(
        host: String, port: Int, context: @escaping @Sendable () -> NIOSSLContext, allowList: PeerAllowList,
        credentials: ClusterCredentials?, group: any EventLoopGroup, logger: Logger
    ) async throws -> PeerAPIServer {
        let listenerGuard = ListenerGuard(label: "peer API \(host):\(port)", logger: logger)
        let listener = try await ServerBootstrap(group: group)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .serverChannelOption(.backlog, value: 64)
            .serverChannelInitializer { listenerGuard.install(on: $0) }
            .childChannelOption(.socketOption(.tcp_nodelay), value: 1)
            .bind(host: host, port: port) { channel in
                DescriptorHygiene.markAllCloseOnExec()
                return channel.eventLoop.makeCompletedFuture {
                    let sync = channel.pipeline.syncOperations
                    try sync.addHandler(IdleStateHandler(allTimeout: .seconds(Self.idleSeconds)))
                    try sync.addHandler(NIOSSLServerHandler(context: context()))
                    try sync.addHandler(ConnectionDeadlines(handshake: .seconds(10)))
                    try sync.configureHTTPServerPipeline(withPipeliningAssistance: false, withErrorHandling: true)
                    let http = try NIOAsyncChannel<HTTPServerRequestPart, HTTPServerResponsePart>(wrappingChannelSynchronously: channel)
                    return Connection(channel: channel, http: http)
                }
            }
        return PeerAPIServer(port: listener.channel.localAddress?.port ?? port, listener: listener, allowList: allowList, credentials: credentials, logger: logger)
    }

    /// Serves until the calling task is cancelled; then closes the listener and every connection.
    public func run(_ api: PeerAPI) async throws {
        try await listener.executeThenClose { inbound in
            try await withThrowingDiscardingTaskGroup { group in
                for try await connection in inbound {
                    group.addTask { await self.serve(connection, api: api) }
                }
            }
        }
    }

    private func serve(_ connection: Connection, api: PeerAPI) async {
        do {
            try await connection.http.executeThenClose { inbound, outbound in
                var head: HTTPRequestHead?
                var admission: PeerAllowList.Decision?
                var admittedAt = 0
                for try await part in inbound {
                    switch part {
                    case .head(let requestHead):
                        head = requestHead
                        // Decided once per connection, and again when the credentials have changed since.
                        let generation = credentials?.current.generation ?? 0
                        if admission == nil || generation != admittedAt {
                            admission = await admit(connection)
                            admittedAt = generation
                        }
                    case .body:
                        break
                    case .end:
                        guard let request = head else { continue }
                        head = nil
                        let response: PeerAPI.Response
                        var refused = false
                        if case .admitted(let peer) = admission, request.headers.contains(name: PeerAPI.heartbeatHeader),
                           request.method == .GET, api.isWaitingLongPoll(request.uri)
                        {
                            // A long-poll with heartbeats: the head now, a space every 2 s while waiting (JSON allows
                            // leading whitespace), then the catalogue. A follower hearing nothing for 6 s knows.
                            try await writeStreamingHead(outbound, request: request)
                            let answer = await api.respond(
                                method: request.method.rawValue, uri: request.uri, peer: peer, logger: logger,
                                heartbeat: { try await outbound.write(.body(.byteBuffer(ByteBuffer(string: " ")))) })
                            try await outbound.write(.body(.byteBuffer(ByteBuffer(bytes: answer.body))))
                            try await outbound.write(.end(nil))
                            if !request.isKeepAlive { return }
                            continue
                        } else if case .admitted(let peer) = admission {
                            response = await api.respond(method: request.method.rawValue, uri: request.uri, peer: peer, logger: logger)
                        } else {
                            // Before any route: a refused client learns nothing but why.
                            refused = true
                            // The check's name only: the reason (which names peers and their addresses) is logged here.
                            let check = if case .refused(let check, _) = admission { check } else { "certificate" }
                            response = PeerAPI.error(403, "not a peer of this node (failed check: \(check); this node's log says why)")
                        }
                        var headers = HTTPHeaders()
                        headers.add(name: "content-type", value: "application/json")
                        headers.add(name: "content-length", value: "\(response.body.count)")
                        headers.add(name: "cache-control", value: "no-store")
                        let keepAlive = request.isKeepAlive && !refused
                        if !keepAlive { headers.add(name: "connection", value: "close") }
                        try await outbound.write(.head(HTTPResponseHead(version: request.version, status: HTTPResponseStatus(statusCode: response.status), headers: headers)))
                        try await outbound.write(.body(.byteBuffer(ByteBuffer(bytes: response.body))))
                        try await outbound.write(.end(nil))
                        if !keepAlive { return }
                    }
                }
            }
        } catch {
            logger.debug("peer connection ended", metadata: ["error": "\(error)"])
        }
    }

    /// The 200 head of a heartbeat long-poll: chunked, announcing the heartbeats.
    private func writeStreamingHead(
        _ outbound: NIOAsyncChannelOutboundWriter<HTTPServerResponsePart>, request: HTTPRequestHead
    ) async throws {
        var headers = HTTPHeaders()
        headers.add(name: "content-type", value: "application/json")
        headers.add(name: "transfer-encoding", value: "chunked")
        headers.add(name: "cache-control", value: "no-store")
        headers.add(name: PeerAPI.heartbeatHeader, value: "\(PeerAPI.heartbeatInterval.components.seconds)")
        if !request.isKeepAlive { headers.add(name: "connection", value: "close") }
        try await outbound.write(.head(HTTPResponseHead(version: request.version, status: .ok, headers: headers)))
    }

    /// The allow-list's decision for a connection, logged once per reason and minute when it refuses (any holder of a
    /// cluster certificate can knock).
    private func admit(_ connection: Connection) async -> PeerAllowList.Decision {
        guard let certificate = try? await connection.channel.nioSSL_peerCertificate().get() else {
            return .refused(check: "certificate", reason: "no client certificate")
        }
        var decision = allowList.decide(certificate: certificate, remoteAddress: connection.channel.remoteAddress)
        if case .admitted = decision, let credentials {
            // The handshake checked the client against the trust of its moment; revocations and trust move.
            if let der = try? certificate.toDERBytes(), let parsed = try? Certificate(derEncoded: der) {
                if let refusal = credentials.refusal(of: parsed) { decision = refusal }
            } else {
                decision = .refused(check: "certificate", reason: "its certificate cannot be parsed")
            }
        }
        // Keyed by the check that failed, never by what the client sent: the throttle's table stays small.
        if case .refused(let check, let reason) = decision, let heldBack = refusals.admit(check) {
            var metadata: Logger.Metadata = ["peer.address": "\(connection.channel.remoteAddress?.description ?? "?")", "reason": "\(reason)"]
            if heldBack > 0 { metadata["refusals_not_logged"] = "\(heldBack)" }
            logger.warning("refused a peer API client: 403", metadata: metadata)
        }
        return decision
    }
}
