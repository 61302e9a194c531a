import AsyncHTTPClient
import ClusterTrust
import CertkeeperTestSupport
import Foundation
import NIOConcurrencyHelpers
import NIOCore
import NIOHTTP1
import NIOPosix
import NIOSSL

/// A NIO HTTP/1.1 server over TLS built from ``ClusterIdentity/makeServerTLSConfiguration()``, the shape the peer
/// API will have. Every request is answered `hello <peer node name>`; the names it saw and the TLS errors it hit
/// are recorded.
final class PeerTestServer: Sendable {
    let port: Int
    private let channel: any Channel
    private let seen: NIOLockedValueBox<[String]>
    private let failures: NIOLockedValueBox<[String]>

    /// Peer node names of the requests answered so far.
    var peerNames: [String] { seen.withLockedValue { $0 } }
    /// Errors raised in child channels (handshake failures).
    var errors: [String] { failures.withLockedValue { $0 } }

    private init(port: Int, channel: any Channel, seen: NIOLockedValueBox<[String]>, failures: NIOLockedValueBox<[String]>) {
        self.port = port
        self.channel = channel
        self.seen = seen
        self.failures = failures
    }

    static func start(identity: ClusterIdentity) async throws -> PeerTestServer {
        let port = try PortAllocator.shared.allocate()
        let context = try NIOSSLContext(configuration: identity.makeServerTLSConfiguration())
        let seen = NIOLockedValueBox<[String]>([])
        let failures = NIOLockedValueBox<[String]>([])
        let channel = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    let sync = channel.pipeline.syncOperations
                    try sync.addHandler(NIOSSLServerHandler(context: context))
                    try sync.configureHTTPServerPipeline()
                    try sync.addHandler(HelloHandler(seen: seen, failures: failures))
                }
            }
            .bind(host: "127.0.0.1", port: port)
            .get()
        return PeerTestServer(port: port, channel: channel, seen: seen, failures: failures)
    }

    func stop() async {
        try? await channel.close()
    }

    private final class HelloHandler: ChannelInboundHandler {
        typealias InboundIn = HTTPServerRequestPart
        typealias OutboundOut = HTTPServerResponsePart
        let seen: NIOLockedValueBox<[String]>
        let failures: NIOLockedValueBox<[String]>

        init(seen: NIOLockedValueBox<[String]>, failures: NIOLockedValueBox<[String]>) {
            self.seen = seen
            self.failures = failures
        }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            guard case .end = unwrapInboundIn(data) else { return }
            // The handshake verified the chain against the cluster CA; name the peer from its certificate.
            let certificate = try? context.pipeline.syncOperations.handler(type: NIOSSLServerHandler.self).peerCertificate
            let name = certificate.flatMap(ClusterIdentity.peerNodeName) ?? "<none>"
            seen.withLockedValue { $0.append(name) }
            let body = "hello \(name)\n"
            var head = HTTPResponseHead(version: .http1_1, status: .ok)
            head.headers.add(name: "Content-Length", value: "\(body.utf8.count)")
            head.headers.add(name: "Connection", value: "close")
            context.write(wrapOutboundOut(.head(head)), promise: nil)
            context.write(wrapOutboundOut(.body(.byteBuffer(ByteBuffer(string: body)))), promise: nil)
            context.writeAndFlush(wrapOutboundOut(.end(nil))).whenComplete { _ in context.close(promise: nil) }
        }

        func errorCaught(context: ChannelHandlerContext, error: any Error) {
            failures.withLockedValue { $0.append(String(describing: error)) }
            context.close(promise: nil)
        }
    }
}

/// One GET with async-http-client using `tls`; returns the body, or throws what AHC threw.
///
/// With `retry` (AHC's default) a failed handshake is retried with back-off until the connect timeout (10 s
/// here) and only then reported; refusal tests turn it off to see the first failure.
func fetch(_ url: String, tls: TLSConfiguration, retry: Bool = true) async throws -> String {
    var configuration = HTTPClient.Configuration(tlsConfiguration: tls)
    configuration.timeout = .init(connect: .seconds(10), read: .seconds(20))
    configuration.connectionPool.retryConnectionEstablishment = retry
    let client = HTTPClient(eventLoopGroupProvider: .singleton, configuration: configuration)
    do {
        let response = try await client.execute(HTTPClientRequest(url: url), timeout: .seconds(30))
        let body = try await response.body.collect(upTo: 1 << 16)
        try await client.shutdown()
        return String(buffer: body)
    } catch {
        try? await client.shutdown()
        throw error
    }
}

/// `openssl s_client` as an independent client: sends one HTTP request and returns what came back.
func openSSLRequest(port: Int, certificate: String?, key: String?, caFile: String) async throws -> (exitCode: Int32, stdout: String, stderr: String) {
    var command = "printf 'GET / HTTP/1.1\\r\\nHost: peer\\r\\nConnection: close\\r\\n\\r\\n' | openssl s_client -quiet -ign_eof -verify_return_error"
    command += " -connect 127.0.0.1:\(port) -CAfile '\(caFile)' -verify_ip 127.0.0.1"
    if let certificate, let key { command += " -cert '\(certificate)' -key '\(key)'" }
    return try await OneShotProcess.run(executable: "/bin/sh", arguments: ["-c", command], timeout: 30)
}
