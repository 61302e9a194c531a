import ACMEProtocol
import Foundation
import Listeners
import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOHTTP1
import NIOPosix

/// The tokens an http-01 responder currently answers, shared by every certificate renewed in one run.
public final class HTTP01TokenTable: Sendable {
    private let tokens = NIOLockedValueBox<[String: String]>([:])

    public init() {}

    public func add(token: String, keyAuthorization: String) {
        tokens.withLockedValue { $0[token] = keyAuthorization }
    }

    public func remove(token: String) {
        _ = tokens.withLockedValue { $0.removeValue(forKey: token) }
    }

    public func keyAuthorization(for token: String) -> String? {
        tokens.withLockedValue { $0[token] }
    }
}

/// A minimal HTTP server that answers `GET /.well-known/acme-challenge/<token>` from a token table, and
/// 404 for everything else. Started for a renewal run and stopped when it ends.
public final class HTTP01Responder: Sendable {
    public let tokens: HTTP01TokenTable
    let channel: any Channel

    /// Binds `host:port` and starts serving.
    /// - Throws: `ACMEError.solverFailed` naming the address when it cannot bind (port in use, no permission).
    public static func start(host: String, port: Int, tokens: HTTP01TokenTable, logger: Logger) async throws(ACMEError) -> HTTP01Responder {
        let listenerGuard = ListenerGuard(label: "http-01 responder \(host):\(port)", logger: logger)
        let bootstrap = ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .serverChannelOption(.backlog, value: 256)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .serverChannelInitializer { listenerGuard.install(on: $0) }
            .childChannelInitializer { channel in
                DescriptorHygiene.markAllCloseOnExec()
                return channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.configureHTTPServerPipeline(withErrorHandling: true)
                    try channel.pipeline.syncOperations.addHandler(HTTP01Handler(tokens: tokens))
                }
            }
        do {
            let channel = try await bootstrap.bind(host: host, port: port).get()
            logger.debug("http-01 responder listening", metadata: ["http01.address": "\(host):\(port)"])
            return HTTP01Responder(tokens: tokens, channel: channel)
        } catch {
            throw ACMEError(.solverFailed(domain: "*", reason: "cannot listen on \(host):\(port) for http-01: \(error)"))
        }
    }

    init(tokens: HTTP01TokenTable, channel: any Channel) {
        self.tokens = tokens
        self.channel = channel
    }

    /// The bound port (useful when started on port 0).
    public var port: Int? { channel.localAddress?.port }

    /// Stops listening.
    public func stop() async {
        try? await channel.close()
    }
}

/// Answers one connection of an ``HTTP01Responder`` (package visible for the fuzz targets).
package final class HTTP01Handler: ChannelInboundHandler {
    package typealias InboundIn = HTTPServerRequestPart
    package typealias OutboundOut = HTTPServerResponsePart

    let tokens: HTTP01TokenTable
    var head: HTTPRequestHead?

    package init(tokens: HTTP01TokenTable) { self.tokens = tokens }

    package func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let head): self.head = head
        case .body: break
        case .end:
            guard let head else { return }
            self.head = nil
            respond(context: context, head: head)
        }
    }

    func respond(context: ChannelHandlerContext, head: HTTPRequestHead) {
        let prefix = "/.well-known/acme-challenge/"
        var status = HTTPResponseStatus.notFound
        var body = "not found\n"
        if head.method == .GET || head.method == .HEAD, head.uri.hasPrefix(prefix) {
            let token = String(head.uri.dropFirst(prefix.count))
            if KeyAuthorization.isValidToken(token), let answer = tokens.keyAuthorization(for: token) {
                status = .ok
                body = answer
            }
        }
        var headers = HTTPHeaders()
        headers.add(name: "Content-Type", value: "text/plain")
        headers.add(name: "Content-Length", value: "\(body.utf8.count)")
        headers.add(name: "Connection", value: "close")
        context.write(wrapOutboundOut(.head(HTTPResponseHead(version: head.version, status: status, headers: headers))), promise: nil)
        if head.method != .HEAD {
            context.write(wrapOutboundOut(.body(.byteBuffer(context.channel.allocator.buffer(string: body)))), promise: nil)
        }
        context.writeAndFlush(wrapOutboundOut(.end(nil))).whenComplete { _ in context.close(promise: nil) }
    }
}

/// Answers http-01 through a running `HTTP01Responder`'s token table.
public struct HTTP01ResponderSolver: ChallengeSolver {
    public let tokens: HTTP01TokenTable
    public var challengeType: ChallengeType { .http01 }

    public init(tokens: HTTP01TokenTable) { self.tokens = tokens }

    public func present(domain: String, token: String, keyAuthorization: String) async throws {
        tokens.add(token: token, keyAuthorization: keyAuthorization)
    }

    public func cleanUp(domain: String, token: String, keyAuthorization: String) async {
        tokens.remove(token: token)
    }
}

/// Answers http-01 by writing the token file under `<webroot>/.well-known/acme-challenge/` (certbot's webroot plugin).
public struct WebrootSolver: ChallengeSolver {
    public let webroot: String
    public var challengeType: ChallengeType { .http01 }

    public init(webroot: String) { self.webroot = webroot }

    public func present(domain: String, token: String, keyAuthorization: String) async throws {
        guard KeyAuthorization.isValidToken(token) else { throw ACMEError(.protocolViolation("token is not base64url")) }
        let directory = webroot + "/.well-known/acme-challenge"
        do {
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o755])
            let path = directory + "/" + token
            guard FileManager.default.createFile(atPath: path, contents: Data(keyAuthorization.utf8), attributes: [.posixPermissions: 0o644]) else {
                throw ACMEError(.solverFailed(domain: domain, reason: "cannot write \(path)"))
            }
        } catch let error as ACMEError {
            throw error
        } catch {
            throw ACMEError(.solverFailed(domain: domain, reason: "cannot create \(directory): \(error.localizedDescription)"))
        }
    }

    public func cleanUp(domain: String, token: String, keyAuthorization: String) async {
        guard KeyAuthorization.isValidToken(token) else { return }
        try? FileManager.default.removeItem(atPath: webroot + "/.well-known/acme-challenge/" + token)
    }
}
