import CertProxy
import CertkeeperTestSupport
import Foundation
import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix

/// Runs a proxy with one plain-TCP frontend and its health checks (structured: the checks run in a child task
/// that ends with the proxy), then `body`; the proxy is stopped whatever happens.
func withBalancingProxy(
    _ pool: ProxyBackendPool, maxConnections: Int? = nil, logger: Logger,
    body: (ProxyServer, Int) async throws -> Void
) async throws {
    let port = try PortAllocator.shared.allocate()
    let frontend = ProxyFrontend(
        name: "lb", host: "127.0.0.1", port: port, tls: nil, pool: pool,
        timeouts: ProxyTimeouts(backendConnect: .seconds(2)), maxConnections: maxConnections)
    let server = try await ProxyServer.start(frontends: [frontend], certificates: CertificateSet(), threads: 1, logger: logger)
    try await withThrowingTaskGroup(of: Void.self) { group in
        group.addTask { await server.runHealthChecks() }
        do {
            try await body(server, port)
        } catch {
            await server.stop()
            group.cancelAll()
            throw error
        }
        await server.stop()
        group.cancelAll()
    }
}

/// A fast TCP check for tests: every 100 ms, down after one failure, up after one success (a generous timeout:
/// the machine is shared, and a slow answer must not read as a failure).
let quickTCPCheck = ProxyHealthCheck(kind: .tcp, interval: .milliseconds(100), timeout: .seconds(5), fall: 1, rise: 1)

/// A server on 127.0.0.1 for a pool.
func loopbackServer(_ name: String, port: Int, backup: Bool = false, local: Bool? = nil, maxConnections: Int? = nil, check: ProxyHealthCheck? = nil) -> ProxyBackendServer {
    ProxyBackendServer(
        name: name, address: ProxyBackend(host: "127.0.0.1", port: port), backup: backup, local: local,
        maxConnections: maxConnections, check: check)
}

extension ProxyServer {
    /// A server's snapshot by name (first frontend).
    func server(_ name: String) -> ProxyServerSnapshot? {
        snapshot().first?.servers.first { $0.name == name }
    }
}

/// A pgsqlchk-like HTTP status service: answers every request with the current status and closes.
final class StatusServer: Sendable, Stoppable {
    let port: Int
    private let channel: any Channel
    private let status: NIOLockedValueBox<Int>

    private init(port: Int, channel: any Channel, status: NIOLockedValueBox<Int>) {
        self.port = port
        self.channel = channel
        self.status = status
    }

    static func start(status initial: Int) async throws -> StatusServer {
        let port = try PortAllocator.shared.allocate()
        let status = NIOLockedValueBox(initial)
        let channel = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(Responder(status: status))
                }
            }
            .bind(host: "127.0.0.1", port: port)
            .get()
        return StatusServer(port: port, channel: channel, status: status)
    }

    func set(_ code: Int) { status.withLockedValue { $0 = code } }

    func stop() async { try? await channel.close() }

    final class Responder: ChannelInboundHandler {
        typealias InboundIn = ByteBuffer
        typealias OutboundOut = ByteBuffer
        let status: NIOLockedValueBox<Int>
        var request = ""
        init(status: NIOLockedValueBox<Int>) { self.status = status }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            request += String(buffer: unwrapInboundIn(data))
            guard request.contains("\r\n\r\n") else { return }
            let code = status.withLockedValue { $0 }
            let body = code == 200 ? "primary\n" : "standby\n"
            let response = "HTTP/1.1 \(code) \(code == 200 ? "OK" : "Service Unavailable")\r\nContent-Length: \(body.utf8.count)\r\nConnection: close\r\n\r\n\(body)"
            context.writeAndFlush(wrapOutboundOut(ByteBuffer(string: response))).whenComplete { _ in context.close(promise: nil) }
        }

        func errorCaught(context: ChannelHandlerContext, error: Error) { context.close(promise: nil) }
    }
}

/// Sends one line through the proxy on a fresh connection and reports whether it came back.
func echoThrough(port: Int, _ line: String) async throws -> Bool {
    let client = try await TestClient.connect(port: port, rootPEM: nil, serverName: nil)
    try await client.send(line)
    let echoed = await client.waitFor(line, timeout: .seconds(10))
    await client.close()
    return echoed
}
