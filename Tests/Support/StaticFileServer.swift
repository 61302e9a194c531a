import Foundation
import NIOConcurrencyHelpers
import NIOCore
import NIOHTTP1
import NIOPosix

/// A plain-HTTP server that serves files from a directory: the web server in front of a webroot, e.g. to answer
/// Pebble's http-01 validation on ``PebbleServer/httpPort`` from files a client wrote under
/// `<root>/.well-known/acme-challenge/`.
public final class StaticFileServer: Sendable {
    /// The directory served as `/`.
    public let rootDirectory: String
    /// The port listened on.
    public let port: Int

    private let serverChannel: any Channel
    private let log: NIOLockedValueBox<[(path: String, status: Int)]>

    private init(rootDirectory: String, port: Int, serverChannel: any Channel,
                 log: NIOLockedValueBox<[(path: String, status: Int)]>) {
        self.rootDirectory = rootDirectory
        self.port = port
        self.serverChannel = serverChannel
        self.log = log
    }

    /// Starts serving `rootDirectory` on `host:port` (port 0 picks a free one).
    /// - Throws: A NIO error when the address cannot be bound.
    public static func start(rootDirectory: String, host: String = "127.0.0.1", port: Int = 0) async throws
        -> StaticFileServer
    {
        let log = NIOLockedValueBox<[(path: String, status: Int)]>([])
        let channel = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.configureHTTPServerPipeline(withErrorHandling: true)
                    try channel.pipeline.syncOperations.addHandler(FileHandler(root: rootDirectory, log: log))
                }
            }
            .bind(host: host, port: port)
            .get()
        return StaticFileServer(rootDirectory: rootDirectory, port: channel.localAddress?.port ?? port,
                                serverChannel: channel, log: log)
    }

    /// Paths requested so far with the status served, in order.
    public var requests: [(path: String, status: Int)] { log.withLockedValue { $0 } }

    /// Stops listening. Connections already open finish on their own (each response closes its connection).
    public func stop() async {
        try? await serverChannel.close()
    }

    private final class FileHandler: ChannelInboundHandler, RemovableChannelHandler {
        typealias InboundIn = HTTPServerRequestPart
        typealias OutboundOut = HTTPServerResponsePart

        private let root: String
        private let log: NIOLockedValueBox<[(path: String, status: Int)]>
        private var head: HTTPRequestHead?

        init(root: String, log: NIOLockedValueBox<[(path: String, status: Int)]>) {
            self.root = root
            self.log = log
        }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            switch unwrapInboundIn(data) {
            case .head(let head): self.head = head
            case .body: break
            case .end:
                guard let head else { return }
                self.head = nil
                let path = String(head.uri.split(separator: "?").first ?? "")
                var status = HTTPResponseStatus.notFound
                var body: [UInt8] = Array("not found\n".utf8)
                if head.method != .GET && head.method != .HEAD {
                    status = .methodNotAllowed
                    body = []
                } else if !path.split(separator: "/").contains(".."),
                          let data = FileManager.default.contents(atPath: root + path),
                          !path.hasSuffix("/")
                {
                    status = .ok
                    body = Array(data)
                }
                log.withLockedValue { $0.append((path, Int(status.code))) }
                var headers = HTTPHeaders()
                headers.add(name: "Content-Type", value: "application/octet-stream")
                headers.add(name: "Content-Length", value: String(body.count))
                headers.add(name: "Connection", value: "close")
                context.write(wrapOutboundOut(.head(HTTPResponseHead(version: head.version, status: status,
                                                                     headers: headers))), promise: nil)
                if head.method == .GET, !body.isEmpty {
                    var buffer = context.channel.allocator.buffer(capacity: body.count)
                    buffer.writeBytes(body)
                    context.write(wrapOutboundOut(.body(.byteBuffer(buffer))), promise: nil)
                }
                let written = context.eventLoop.makePromise(of: Void.self)
                context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: written)
                let channel = context.channel
                written.futureResult.whenComplete { _ in channel.close(promise: nil) }
            }
        }

        func errorCaught(context: ChannelHandlerContext, error: any Error) {
            context.close(promise: nil)
        }
    }
}
