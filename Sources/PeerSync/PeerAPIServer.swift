import Listeners
import Logging
import NIOCore
import NIOHTTP1
import NIOPosix
import NIOSSL

/// The peer API over HTTPS with mutual TLS: every connection must present a certificate the cluster CA signed
/// (enforced by the TLS configuration the caller passes), or the handshake fails and nothing is served.
///
/// ```swift
/// let server = try await PeerAPIServer.bind(host: "10.0.0.1", port: 7443, tls: identity.makeServerTLSConfiguration(),
///                                           peerName: ClusterIdentity.peerNodeName, logger: logger)
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
    private let peerName: @Sendable (NIOSSLCertificate) -> String?
    private let logger: Logger

    private init(port: Int, listener: NIOAsyncChannel<Connection, Never>, peerName: @escaping @Sendable (NIOSSLCertificate) -> String?, logger: Logger) {
        self.port = port
        self.listener = listener
        self.peerName = peerName
        self.logger = logger
    }

    /// Binds the listening socket.
    /// - Parameters:
    ///   - host: Address to bind (the private network).
    ///   - port: Port; 0 for any.
    ///   - tls: A server configuration that requires and verifies client certificates.
    ///   - peerName: Names the client from its verified certificate, for logs.
    ///   - group: Event loops (one thread is plenty).
    ///   - logger: Where connections and failures are logged.
    public static func bind(
        host: String, port: Int, tls: TLSConfiguration, peerName: @escaping @Sendable (NIOSSLCertificate) -> String?,
        group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton, logger: Logger
    ) async throws -> PeerAPIServer {
        let context = try NIOSSLContext(configuration: tls)
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
                    try sync.addHandler(NIOSSLServerHandler(context: context))
                    try sync.addHandler(ConnectionDeadlines(handshake: .seconds(10)))
                    try sync.configureHTTPServerPipeline(withPipeliningAssistance: false, withErrorHandling: true)
                    let http = try NIOAsyncChannel<HTTPServerRequestPart, HTTPServerResponsePart>(wrappingChannelSynchronously: channel)
                    return Connection(channel: channel, http: http)
                }
            }
        return PeerAPIServer(port: listener.channel.localAddress?.port ?? port, listener: listener, peerName: peerName, logger: logger)
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
                var peer = "?"
                for try await part in inbound {
                    switch part {
                    case .head(let requestHead):
                        head = requestHead
                        if peer == "?" {
                            let certificate = try? await connection.channel.nioSSL_peerCertificate().get()
                            peer = certificate.flatMap(peerName) ?? "unknown-peer"
                        }
                    case .body:
                        break
                    case .end:
                        guard let request = head else { continue }
                        head = nil
                        let response = await api.respond(method: request.method.rawValue, uri: request.uri, peer: peer, logger: logger)
                        var headers = HTTPHeaders()
                        headers.add(name: "content-type", value: "application/json")
                        headers.add(name: "content-length", value: "\(response.body.count)")
                        headers.add(name: "cache-control", value: "no-store")
                        let keepAlive = request.isKeepAlive
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
}
