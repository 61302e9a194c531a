import Foundation
import NIOConcurrencyHelpers
import NIOCore
import NIOHTTP1
import NIOPosix
import NIOSSL
import X509

/// A small RFC 8555 ACME server over HTTPS on 127.0.0.1, for what Pebble 2.4 lacks: ARI (RFC 9773) and profiles.
///
/// Authorizations are valid from the start (no challenge to solve). Every JWS is checked independently of
/// certkeeper: ES256 signature against the account's key, nonce issued and unused, `url` equal to the request URL.
/// Tests can inject failures (``failNext(status:problemType:detail:retryAfter:count:endpoint:)``), reject nonces at
/// random (``badNonceRate``), set ARI windows, and inspect ``orders`` and ``requestLog`` afterwards.
///
/// ```swift
/// let acme = try await FakeACMEServer.start()
/// defer { Task { await acme.stop() } }   // or stop explicitly in a do/catch
/// // client: directory acme.directoryURL, trust acme.caBundlePath
/// ```
public final class FakeACMEServer: Sendable {
    /// The port the server listens on (127.0.0.1).
    public let port: Int
    /// `https://127.0.0.1:<port>`.
    public let baseURL: String
    /// The ACME directory URL, `https://127.0.0.1:<port>/directory`.
    public var directoryURL: String { baseURL + "/directory" }
    /// PEM file of the root that signed the server's TLS certificate (what a client must trust to connect).
    public let caBundlePath: String
    /// The root of the certificates this server issues (not the TLS root).
    public let issuingRoot: TestCA
    /// The intermediate that signs issued certificates; it is sent as the chain after the leaf.
    public let issuingIntermediate: TestCA
    /// Working directory holding the TLS files; removed by ``stop()``.
    public let directory: TemporaryDirectory

    private let engine: FakeACMEEngine
    private let serverChannel: any Channel
    private let connections: NIOLockedValueBox<[ObjectIdentifier: any Channel]>

    private init(port: Int, caBundlePath: String, issuingRoot: TestCA, issuingIntermediate: TestCA,
                 directory: TemporaryDirectory, engine: FakeACMEEngine, serverChannel: any Channel,
                 connections: NIOLockedValueBox<[ObjectIdentifier: any Channel]>) {
        self.port = port
        self.baseURL = "https://127.0.0.1:\(port)"
        self.caBundlePath = caBundlePath
        self.issuingRoot = issuingRoot
        self.issuingIntermediate = issuingIntermediate
        self.directory = directory
        self.engine = engine
        self.serverChannel = serverChannel
        self.connections = connections
    }

    /// Starts the server on a kernel-chosen free port of 127.0.0.1.
    /// - Parameter options: Profiles, ARI and timing behaviour.
    /// - Throws: ``TestSupportError`` when certificates or files cannot be made, or a NIO error when binding fails.
    public static func start(options: Options = Options()) async throws -> FakeACMEServer {
        let directory = try TemporaryDirectory(name: "fake-acme")
        do {
            let identity = try LocalhostServerIdentity(commonName: "Fake ACME TLS Root")
            let files = try identity.writePEMFiles(to: directory.path)
            let issuingRoot = try TestCA.make(commonName: "Fake ACME Root")
            let issuingIntermediate = try issuingRoot.issueIntermediate(commonName: "Fake ACME Intermediate")
            let engine = FakeACMEEngine(options: options, issuer: issuingIntermediate)
            let sslContext = try NIOSSLContext(configuration: identity.makeServerTLSConfiguration())
            let connections = NIOLockedValueBox<[ObjectIdentifier: any Channel]>([:])

            let serverChannel = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
                .serverChannelOption(.backlog, value: 256)
                .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
                .childChannelInitializer { channel in
                    let key = ObjectIdentifier(channel)
                    connections.withLockedValue { $0[key] = channel }
                    channel.closeFuture.whenComplete { _ in
                        _ = connections.withLockedValue { $0.removeValue(forKey: key) }
                    }
                    return channel.eventLoop.makeCompletedFuture {
                        try channel.pipeline.syncOperations.addHandler(NIOSSLServerHandler(context: sslContext))
                        try channel.pipeline.syncOperations.configureHTTPServerPipeline(withErrorHandling: true)
                        try channel.pipeline.syncOperations.addHandler(FakeACMEHTTPHandler(engine: engine))
                    }
                }
                .bind(host: "127.0.0.1", port: 0)
                .get()
            guard let port = serverChannel.localAddress?.port else {
                try? await serverChannel.close()
                throw TestSupportError.launchFailed(executable: "FakeACMEServer", reason: "no local port after bind")
            }
            engine.setBaseURL("https://127.0.0.1:\(port)")
            return FakeACMEServer(port: port, caBundlePath: files["ca.pem"]!, issuingRoot: issuingRoot,
                                  issuingIntermediate: issuingIntermediate, directory: directory, engine: engine,
                                  serverChannel: serverChannel, connections: connections)
        } catch {
            directory.remove()
            throw error
        }
    }

    /// Closes the listening socket and every open connection, then deletes the working directory.
    /// Safe to call more than once.
    public func stop() async {
        try? await serverChannel.close()
        let open = connections.withLockedValue { Array($0.values) }
        for channel in open { try? await channel.close() }
        directory.remove()
    }

    // MARK: - Records

    /// Every newOrder request that passed JWS checks, in arrival order (rejected ones included, see
    /// ``RecordedOrder/rejectedWith``).
    public var orders: [RecordedOrder] { engine.withState { $0.recordedOrders } }

    /// Every request answered, in order.
    public var requestLog: [RecordedRequest] { engine.withState { $0.requestLog } }

    /// Every certificate issued, in order.
    public var issuedCertificates: [IssuedCertificate] {
        engine.withState { state in
            state.issuedOrder.compactMap { state.issued[$0] }.map { record in
                IssuedCertificate(certificate: record.certificate, certID: record.certID, profile: record.profile,
                                  orderURL: state.baseURL + "/order/\(record.orderID)", replaces: record.replaces,
                                  revocationReason: record.revocationReason)
            }
        }
    }

    /// The issuing chain's root as PEM (what a client verifying issued certificates should trust).
    public var issuingRootPEM: String { issuingRoot.certificatePEM }

    // MARK: - Behaviour

    /// Fraction (0…1) of otherwise valid nonces rejected with `badNonce`, spread evenly (deterministically) over the
    /// requests.
    public var badNonceRate: Double {
        get { engine.withState { $0.badNonceRate } }
        set { engine.withState { $0.badNonceRate = min(max(newValue, 0), 1) } }
    }

    /// Makes the next `count` matching requests fail with a problem document.
    /// - Parameters:
    ///   - status: HTTP status, e.g. 500, 503 or 429.
    ///   - problemType: A full `urn:…` type or the short ACME name (`rateLimited`, `serverInternal`, `badNonce`).
    ///   - detail: The problem's `detail`.
    ///   - retryAfter: Seconds for a `Retry-After` header, if any.
    ///   - count: How many requests fail.
    ///   - endpoint: Which resource fails; `nil` means any POST (so nonce fetches and the directory still work).
    public func failNext(
        status: Int,
        problemType: String,
        detail: String = "injected failure",
        retryAfter: Int? = nil,
        count: Int = 1,
        endpoint: Endpoint? = nil
    ) {
        engine.withState {
            $0.failures.append(.init(status: status, problemType: problemType, detail: detail,
                                     retryAfter: retryAfter, remaining: count, endpoint: endpoint))
        }
    }

    /// Sets the ARI window returned for `certID` (which need not belong to an issued certificate).
    /// Without one, an issued certificate gets the middle tenth (45 %–55 %) of its lifetime.
    public func setRenewalWindow(certID: String, start: Date, end: Date) {
        engine.withState { $0.renewalWindows[certID] = RenewalWindow(start: start, end: end) }
    }

    /// Removes a window set by ``setRenewalWindow(certID:start:end:)``.
    public func clearRenewalWindow(certID: String) {
        _ = engine.withState { $0.renewalWindows.removeValue(forKey: certID) }
    }
}

/// Collects one HTTP request, hands it to the engine, writes the response.
private final class FakeACMEHTTPHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    private let engine: FakeACMEEngine
    private var head: HTTPRequestHead?
    private var body: [UInt8] = []

    init(engine: FakeACMEEngine) {
        self.engine = engine
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let head):
            self.head = head
            body = []
        case .body(let buffer):
            body.append(contentsOf: buffer.readableBytesView)
        case .end:
            guard let head else { return }
            self.head = nil
            respond(to: head, context: context)
        }
    }

    private func respond(to head: HTTPRequestHead, context: ChannelHandlerContext) {
        let path = String(head.uri.split(separator: "?", maxSplits: 1, omittingEmptySubsequences: false).first ?? "")
        let request = FakeACMERequest(
            method: head.method.rawValue, path: path,
            headers: head.headers.map { ($0.name.lowercased(), $0.value) }, body: body)
        body = []
        let response = engine.handle(request)

        var headers = HTTPHeaders(response.headers)
        headers.replaceOrAdd(name: "Content-Length", value: String(head.method == .HEAD ? 0 : response.body.count))
        let keepAlive = head.isKeepAlive
        if !keepAlive { headers.replaceOrAdd(name: "Connection", value: "close") }
        let responseHead = HTTPResponseHead(version: head.version, status: .init(statusCode: response.status),
                                            headers: headers)
        context.write(wrapOutboundOut(.head(responseHead)), promise: nil)
        if head.method != .HEAD, !response.body.isEmpty {
            var buffer = context.channel.allocator.buffer(capacity: response.body.count)
            buffer.writeBytes(response.body)
            context.write(wrapOutboundOut(.body(.byteBuffer(buffer))), promise: nil)
        }
        let written = context.eventLoop.makePromise(of: Void.self)
        context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: written)
        if !keepAlive {
            let channel = context.channel
            written.futureResult.whenComplete { _ in channel.close(promise: nil) }
        }
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        context.close(promise: nil)
    }
}
