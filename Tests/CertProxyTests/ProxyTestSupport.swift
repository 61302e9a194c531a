import CertProxy
import CertStore
import CertkeeperTestSupport
import Foundation
import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import NIOSSL
import X509


/// A backend for the proxy: echoes every byte (`echo`), or answers any request with a fixed HTTP response
/// (`http`). On a half-close from the proxy it writes `BYE\n` and closes.
final class TestBackend: Sendable {
    enum Mode: Sendable { case echo, http }

    let port: Int
    private let channel: any Channel

    private init(port: Int, channel: any Channel) {
        self.port = port
        self.channel = channel
    }

    /// - Parameter port: A port to reuse (a backend coming back); a new one when `nil`.
    static func start(_ mode: Mode = .echo, port reused: Int? = nil) async throws -> TestBackend {
        let port = try reused ?? PortAllocator.shared.allocate()
        let channel = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelOption(.allowRemoteHalfClosure, value: true)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(BackendHandler(mode: mode))
                }
            }
            .bind(host: "127.0.0.1", port: port)
            .get()
        return TestBackend(port: port, channel: channel)
    }

    func stop() async {
        try? await channel.close()
    }

    final class BackendHandler: ChannelInboundHandler {
        typealias InboundIn = ByteBuffer
        typealias OutboundOut = ByteBuffer
        let mode: Mode
        init(mode: Mode) { self.mode = mode }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            switch mode {
            case .echo:
                context.writeAndFlush(data, promise: nil)
            case .http:
                let body = "hello from backend\n"
                let response = "HTTP/1.1 200 OK\r\nContent-Length: \(body.utf8.count)\r\nConnection: close\r\n\r\n\(body)"
                context.writeAndFlush(wrapOutboundOut(ByteBuffer(string: response)), promise: nil)
                context.close(mode: .output, promise: nil)
            }
        }

        func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
            if let event = event as? ChannelEvent, case .inputClosed = event {
                context.writeAndFlush(wrapOutboundOut(ByteBuffer(string: "BYE\n")), promise: nil)
                context.close(promise: nil)
            }
        }

        func errorCaught(context: ChannelHandlerContext, error: Error) {
            context.close(promise: nil)
        }
    }
}

/// A client connection (TLS or plain) that records everything it receives.
final class TestClient: Sendable {
    private let channel: any Channel
    private let received: NIOLockedValueBox<String>

    private init(channel: any Channel, received: NIOLockedValueBox<String>) {
        self.channel = channel
        self.received = received
    }

    /// Connects to 127.0.0.1:`port`; with `rootPEM`, speaks TLS trusting that root and sends `serverName` as SNI.
    /// `halfClosure` enables ``closeOutput()`` (NIOSSL then waits out its 5 s shutdown timeout on a full close,
    /// so it is off unless a test half-closes).
    static func connect(port: Int, rootPEM: String?, serverName: String?, halfClosure: Bool = false) async throws -> TestClient {
        let received = NIOLockedValueBox("")
        let sslContext: NIOSSLContext? = try rootPEM.map { rootPEM in
            var configuration = TLSConfiguration.makeClientConfiguration()
            configuration.trustRoots = .certificates(try NIOSSLCertificate.fromPEMBytes(Array(rootPEM.utf8)))
            return try NIOSSLContext(configuration: configuration)
        }
        let channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .channelOption(.allowRemoteHalfClosure, value: halfClosure)
            .connectTimeout(.seconds(3))
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    if let sslContext {
                        try channel.pipeline.syncOperations.addHandler(
                            NIOSSLClientHandler(context: sslContext, serverHostname: serverName))
                    }
                    try channel.pipeline.syncOperations.addHandler(Collector(received: received))
                }
            }
            .connect(host: "127.0.0.1", port: port)
            .get()
        return TestClient(channel: channel, received: received)
    }

    var text: String { received.withLockedValue { $0 } }
    var isOpen: Bool { channel.isActive }

    func send(_ text: String) async throws {
        try await channel.writeAndFlush(ByteBuffer(string: text))
    }

    /// Sends EOF (TLS close_notify, then FIN) but keeps reading.
    func closeOutput() async throws {
        try await channel.close(mode: .output)
    }

    /// Waits (bounded) until the received text contains `needle`.
    func waitFor(_ needle: String, timeout: Duration = .seconds(15)) async -> Bool {
        await eventually(timeout: timeout) { self.text.contains(needle) }
    }

    /// Waits (bounded) until the connection is closed.
    func waitClosed(timeout: Duration = .seconds(15)) async -> Bool {
        await eventually(timeout: timeout) { !self.channel.isActive }
    }

    func close() async {
        try? await channel.close()
    }

    final class Collector: ChannelInboundHandler {
        typealias InboundIn = ByteBuffer
        let received: NIOLockedValueBox<String>
        init(received: NIOLockedValueBox<String>) { self.received = received }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            let buffer = unwrapInboundIn(data)
            received.withLockedValue { $0 += String(buffer: buffer) }
        }

        func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
            // The server is done sending: close like an ordinary client (this answers a TLS close_notify).
            if let event = event as? ChannelEvent, case .inputClosed = event {
                context.close(promise: nil)
            }
            context.fireUserInboundEventTriggered(event)
        }

        func errorCaught(context: ChannelHandlerContext, error: Error) {
            context.close(promise: nil)
        }
    }
}

/// Polls `condition` every 20 ms until it holds or `timeout` passes.
func eventually(timeout: Duration = .seconds(15), _ condition: @Sendable () async -> Bool) async -> Bool {
    let deadline = ContinuousClock.now + timeout
    while ContinuousClock.now < deadline {
        if await condition() { return true }
        try? await Task.sleep(for: .milliseconds(20))
    }
    return await condition()
}

/// What `openssl s_client` saw.
struct HandshakeResult {
    var exitCode: Int32
    var certificate: Certificate?
    var output: String
}

/// Runs `openssl s_client` against 127.0.0.1:`port` and parses the certificate it printed.
/// - Parameters:
///   - serverName: SNI to send; `nil` sends none (`-noservername`).
///   - extra: More arguments (e.g. `-tls1_1`).
func sClient(port: Int, serverName: String?, extra: [String] = []) async throws -> HandshakeResult {
    var arguments = ["s_client", "-connect", "127.0.0.1:\(port)"]
    arguments += serverName.map { ["-servername", $0] } ?? ["-noservername"]
    arguments += extra
    let result = try await OneShotProcess.run(executable: "/usr/bin/openssl", arguments: arguments, timeout: 10)
    var certificate: Certificate?
    if let begin = result.stdout.range(of: "-----BEGIN CERTIFICATE-----"),
        let end = result.stdout.range(of: "-----END CERTIFICATE-----", range: begin.upperBound..<result.stdout.endIndex)
    {
        certificate = try? Certificate(pemEncoded: String(result.stdout[begin.lowerBound..<end.upperBound]))
    }
    return HandshakeResult(exitCode: result.exitCode, certificate: certificate, output: result.stdout + result.stderr)
}

/// The serial the proxy serves for `serverName`, or `nil` when the handshake failed.
func servedSerial(port: Int, serverName: String?) async throws -> Certificate.SerialNumber? {
    try await sClient(port: port, serverName: serverName).certificate?.serialNumber
}

/// A store in a temporary directory with a test CA, for installing certificate versions.
struct StoreFixture {
    let directory: TemporaryDirectory
    let store: CertStore.CertificateStore
    let intermediate: TestCA
    let rootPath: String

    init(_ name: String, logger: Logger) throws {
        directory = try TemporaryDirectory(name: "certproxy-\(name)")
        store = CertStore.CertificateStore(root: directory.appending("state"), logger: logger)
        try store.prepare()
        let root = try TestCA.make()
        intermediate = try root.issueIntermediate()
        rootPath = try directory.write(root.certificatePEM, to: "root.pem")
    }

    var root: String { store.root }
    var rootPEM: String { intermediate.rootCertificatePEM }

    /// Issues a leaf for `names` and installs it as `name`.
    @discardableResult
    func install(_ name: String, names: [String]) throws -> TestCertificate {
        let leaf = try intermediate.issueLeaf(dnsNames: names)
        let bundle = CertificateBundle(certificatePEM: leaf.certificatePEM, chainPEM: leaf.chainPEM, privateKeyPEM: leaf.privateKeyPEM)
        let verified = try BundleVerifier().verify(bundle, expectedDomains: names, now: Date())
        _ = try store.install(verified, name: name, issuedBy: "test", now: Date())
        return leaf
    }

    func remove() { directory.remove() }
}

/// A proxy on a free port with one frontend, stopped by `stop()`.
struct RunningProxy {
    let server: ProxyServer
    let port: Int

    static func start(
        certificates: CertificateSet, backends: [Int], tls: ProxyTLSSettings? = ProxyTLSSettings(),
        timeouts: ProxyTimeouts = ProxyTimeouts(), logger: Logger
    ) async throws -> RunningProxy {
        let port = try PortAllocator.shared.allocate()
        let frontend = ProxyFrontend(
            name: "test", host: "127.0.0.1", port: port, tls: tls,
            backends: backends.map { ProxyBackend(host: "127.0.0.1", port: $0) }, timeouts: timeouts)
        let server = try await ProxyServer.start(frontends: [frontend], certificates: certificates, threads: 1, logger: logger)
        return RunningProxy(server: server, port: port)
    }

    func stop() async {
        await server.shutdown(grace: .zero)
    }
}

/// `curl --cacert <ca> --resolve name:port:127.0.0.1 https://name:port/`: exit code and body.
func curlThroughProxy(name: String, port: Int, caBundlePath: String) async throws -> (exitCode: Int32, body: String, stderr: String) {
    let result = try await OneShotProcess.run(
        executable: "/usr/bin/curl",
        arguments: [
            "-sS", "--max-time", "5", "--cacert", caBundlePath, "--resolve", "\(name):\(port):127.0.0.1",
            "https://\(name):\(port)/",
        ],
        timeout: 10)
    return (result.exitCode, result.stdout, result.stderr)
}

/// Something a test starts and must stop, whatever happens.
protocol Stoppable {
    func stop() async
}

extension RunningProxy: Stoppable {}
extension TestBackend: Stoppable {}

/// Runs `body`, then stops `parts` in order, also when `body` throws.
func stopping<T>(_ parts: any Stoppable..., body: () async throws -> T) async throws -> T {
    do {
        let result = try await body()
        for part in parts { await part.stop() }
        return result
    } catch {
        for part in parts { await part.stop() }
        throw error
    }
}

extension ProxyServer: Stoppable {
    /// Closes everything at once (tests do not drain).
    func stop() async { await shutdown(grace: .zero) }
}
