import ACMEProtocol
import CertStore
import Foundation
import LogThrottle
import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOHTTP1
import NIOPosix

#if canImport(Glibc)
import Glibc
#endif

/// Settings of a plain-HTTP frontend (`mode: http`, port 80): answers ACME http-01 challenges statelessly and
/// redirects every other request to https.
///
/// Stateless http-01: the key authorization of a challenge is `token + "." + thumbprint(account key)`, so a node
/// that has the ACME account (peer sync replicates it to every node) can answer any token without being told
/// about the challenge. Every node behind DNS load balancing answers the CA's multi-perspective validation.
public struct ProxyHTTPSettings: Sendable {
    /// Where the thumbprint of the ACME account comes from.
    public var thumbprints: AccountThumbprintSource
    /// The port of `https://` redirect targets; `nil` (or 443) leaves it out of the URL.
    public var httpsPort: Int?
    /// Header bytes (names and values together) a request may carry; more is answered with 400.
    public var maximumHeaderBytes: Int
    /// Where the thumbprint is looked up (its `stat` and, after a change, the key's read and parse): on NIO's
    /// blocking-work thread pool, never on the event loop. ``ThumbprintLookup/inline`` is for `EmbeddedChannel`
    /// harnesses (fuzzing), which have no other thread.
    public var lookup: ThumbprintLookup = .threadPool

    /// Where ``AccountThumbprintSource/thumbprint()`` runs.
    public enum ThumbprintLookup: Sendable {
        /// `NIOThreadPool.singleton`; the answer continues on the connection's event loop.
        case threadPool
        /// On the calling thread (tests and fuzzing on `EmbeddedChannel` only).
        case inline
    }

    /// Default for ``maximumHeaderBytes``: 8 KiB, like nginx's default `large_client_header_buffers` line size.
    public static let defaultMaximumHeaderBytes = 8 * 1024

    /// Creates HTTP frontend settings.
    /// - Parameters:
    ///   - thumbprints: Where the ACME account's thumbprint is read from.
    ///   - httpsPort: The port redirects point at; `nil` for the default 443.
    ///   - maximumHeaderBytes: The header size limit.
    public init(thumbprints: AccountThumbprintSource, httpsPort: Int? = nil, maximumHeaderBytes: Int = Self.defaultMaximumHeaderBytes) {
        self.thumbprints = thumbprints
        self.httpsPort = httpsPort
        self.maximumHeaderBytes = maximumHeaderBytes
    }
}

/// The RFC 7638 thumbprint of the ACME account stored for one directory URL, re-read when the key file changes.
///
/// Each call does one `stat` of `accounts/<dir>/key.pem` and compares device, inode, size and modification time
/// with the cached ones; only a change reads and parses the key again. The store writes the key with temp +
/// rename, so an adopted or replaced account always gets a new inode, and the next request sees it (no watcher,
/// no restart). A `stat` per challenge request is negligible next to the TCP connection it arrives on.
public final class AccountThumbprintSource: Sendable {
    private struct FileSignature: Equatable {
        var device: UInt64
        var inode: UInt64
        var size: Int64
        var modifiedSeconds: Int
        var modifiedNanoseconds: Int
    }

    private struct Cache {
        var signature: FileSignature?
        var thumbprint: String?
    }

    private let store: CertificateStore
    /// The ACME directory URL whose account answers.
    public let directoryURL: String
    private let keyPath: String
    private let cache = NIOLockedValueBox(Cache())
    private let warnings = WarningThrottle(interval: .seconds(60))
    private let logger: Logger

    /// Creates a source reading the account of `directoryURL` from `store`.
    /// - Parameters:
    ///   - store: The certificate store (its `accounts/` directory).
    ///   - directoryURL: The configured ACME directory (`acme.directory`).
    ///   - logger: Where a missing or unreadable account is reported (at most once a minute).
    public init(store: CertificateStore, directoryURL: String, logger: Logger) {
        self.store = store
        self.directoryURL = directoryURL
        self.keyPath = store.accountKeyPath(directoryURL: directoryURL)
        self.logger = logger
    }

    /// The account key's thumbprint, or `nil` when no account is stored (or its key cannot be read); logs a
    /// throttled warning in that case.
    public func thumbprint() -> String? {
        let signature = Self.signature(of: keyPath)
        if let cached = cache.withLockedValue({ $0.signature != nil && $0.signature == signature ? $0 : nil }) {
            return cached.thumbprint
        }
        let thumbprint = signature == nil ? nil : readThumbprint()
        cache.withLockedValue { $0 = Cache(signature: signature, thumbprint: thumbprint) }
        if signature == nil { warnMissing("no ACME account stored for this directory yet; http-01 challenges are answered 404") }
        return thumbprint
    }

    private func readThumbprint() -> String? {
        do {
            guard let account = try store.loadAccount(directoryURL: directoryURL) else {
                warnMissing("no ACME account stored for this directory yet; http-01 challenges are answered 404")
                return nil
            }
            return try AccountKey(pem: account.keyPEM).thumbprint
        } catch {
            warnMissing("cannot read the ACME account key; http-01 challenges are answered 404", error: "\(error)")
            return nil
        }
    }

    private func warnMissing(_ message: String, error: String? = nil) {
        guard let heldBack = warnings.admit("account") else { return }
        var metadata: Logger.Metadata = ["acme.directory": "\(directoryURL)", "acme.account_key": "\(keyPath)"]
        if let error { metadata["error"] = "\(error)" }
        if heldBack > 0 { metadata["requests_not_logged"] = "\(heldBack)" }
        logger.warning("\(message)", metadata: metadata)
    }

    private static func signature(of path: String) -> FileSignature? {
        var info = stat()
        guard stat(path, &info) == 0 else { return nil }
        return FileSignature(
            device: UInt64(info.st_dev), inode: UInt64(info.st_ino), size: Int64(info.st_size),
            modifiedSeconds: Int(info.st_mtim.tv_sec), modifiedNanoseconds: Int(info.st_mtim.tv_nsec))
    }
}

/// What an HTTP frontend does with one request: a pure decision, performed by ``ACMEHTTPHandler``.
enum ACMEHTTPDecision: Equatable {
    /// 200, `text/plain`, the key authorization.
    case challenge(keyAuthorization: String)
    /// 301 (GET, HEAD) or 308 (other methods, which must not turn into GET) to `location`.
    case redirect(location: String, permanentRedirect: Bool)
    /// 404: a challenge path with an invalid token, or no account to answer with.
    case notFound
    /// 405 for a challenge path with another method than GET or HEAD.
    case methodNotAllowed
    /// 400 with a one-line reason; the connection is closed.
    case badRequest(reason: String)

    var status: HTTPResponseStatus {
        switch self {
        case .challenge: .ok
        case .redirect(_, let permanentRedirect): permanentRedirect ? .permanentRedirect : .movedPermanently
        case .notFound: .notFound
        case .methodNotAllowed: .methodNotAllowed
        case .badRequest: .badRequest
        }
    }
}

/// The routing rules of an HTTP frontend, without I/O.
enum ACMEHTTPRouter {
    static let challengePrefix = "/.well-known/acme-challenge/"
    /// Longest token answered; ACME tokens carry at least 128 bits (22 characters), Let's Encrypt's are 43.
    static let maximumTokenLength = 128

    /// Decides what to answer.
    /// - Parameters:
    ///   - method: The request method.
    ///   - uri: The request target as sent.
    ///   - hostHeaders: Every `Host` header value of the request.
    ///   - httpsPort: The redirect port, `nil` for 443.
    ///   - thumbprint: Called only for a valid challenge request.
    static func decide(
        method: HTTPMethod, uri: String, hostHeaders: [String], httpsPort: Int?, thumbprint: () -> String?
    ) -> ACMEHTTPDecision {
        guard hostHeaders.count == 1, let host = redirectHost(hostHeaders[0]) else {
            return .badRequest(reason: hostHeaders.count > 1 ? "more than one Host header" : "missing or invalid Host header")
        }
        guard let path = originForm(uri) else { return .badRequest(reason: "invalid request target") }
        if path.hasPrefix(challengePrefix) {
            guard method == .GET || method == .HEAD else { return .methodNotAllowed }
            let token = String(path.dropFirst(challengePrefix.count))
            guard token.utf8.count <= maximumTokenLength, KeyAuthorization.isValidToken(token), let thumbprint = thumbprint() else {
                return .notFound
            }
            return .challenge(keyAuthorization: token + "." + thumbprint)
        }
        let port = httpsPort.flatMap { $0 == 443 ? nil : ":\($0)" } ?? ""
        return .redirect(location: "https://\(host)\(port)\(path)", permanentRedirect: !(method == .GET || method == .HEAD))
    }

    /// The host part of a `Host` header, without its port, lower-cased: a DNS name or IPv4 literal (letters,
    /// digits, `-`, `.`), or a bracketed IPv6 literal kept in brackets. `nil` for anything else.
    static func redirectHost(_ header: String) -> String? {
        let value = header.trimmingCharacters(in: .whitespaces).lowercased()
        guard !value.isEmpty, value.utf8.count <= 255 + 6 else { return nil }
        var host: Substring
        var rest: Substring
        if value.hasPrefix("[") {
            guard let close = value.firstIndex(of: "]") else { return nil }
            host = value[...close]
            rest = value[value.index(after: close)...]
            let inner = host.dropFirst().dropLast()
            guard inner.contains(":"), inner.utf8.allSatisfy({ isHexDigit($0) || $0 == UInt8(ascii: ":") || $0 == UInt8(ascii: ".") })
            else { return nil }
        } else {
            let parts = value.split(separator: ":", maxSplits: 1, omittingEmptySubsequences: false)
            host = parts[0]
            rest = parts.count > 1 ? ":" + parts[1] : ""
            guard !host.isEmpty, !host.hasPrefix("."), !host.hasPrefix("-"),
                host.utf8.allSatisfy({ isHexDigit($0) || ($0 >= UInt8(ascii: "g") && $0 <= UInt8(ascii: "z")) || $0 == UInt8(ascii: "-") || $0 == UInt8(ascii: ".") })
            else { return nil }
        }
        if !rest.isEmpty {
            let digits = rest.dropFirst()
            guard rest.first == ":", digits.count <= 5, digits.utf8.allSatisfy({ $0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9") }) else {
                return nil
            }
        }
        return String(host)
    }

    /// The path and query of an origin-form (`/p?q`) or absolute-form (`http://h/p?q`) target; `nil` otherwise.
    static func originForm(_ uri: String) -> String? {
        if uri.hasPrefix("/") { return uri.hasPrefix("//") ? nil : uri }
        let lower = uri.lowercased()
        guard lower.hasPrefix("http://") else { return nil }
        let afterScheme = uri.dropFirst("http://".count)
        guard let slash = afterScheme.firstIndex(where: { $0 == "/" || $0 == "?" }) else { return "/" }
        let rest = afterScheme[slash...]
        return rest.hasPrefix("?") ? "/" + rest : String(rest)
    }

    private static func isHexDigit(_ byte: UInt8) -> Bool {
        (byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "9")) || (byte >= UInt8(ascii: "a") && byte <= UInt8(ascii: "f"))
    }
}

/// Serves one connection of an HTTP frontend: answers each request with the ``ACMEHTTPRouter`` decision, keeps
/// the connection alive when the client asks for it (HTTP/1.1 by default), closes it after a 400 or a request
/// with an unread body larger than ``maximumDiscardedBody``. Package visible for the fuzz targets.
package final class ACMEHTTPHandler: ChannelInboundHandler {
    package typealias InboundIn = HTTPServerRequestPart
    package typealias OutboundOut = HTTPServerResponsePart

    /// Request body bytes read and thrown away before the connection is closed instead.
    static let maximumDiscardedBody = 64 * 1024

    private let settings: ProxyHTTPSettings
    private let logger: Logger
    private var head: HTTPRequestHead?
    private var discardedBody = 0
    private var closing = false

    init(settings: ProxyHTTPSettings, logger: Logger) {
        self.settings = settings
        self.logger = logger
    }

    package func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard !closing else { return }
        switch unwrapInboundIn(data) {
        case .head(let head):
            self.head = head
            discardedBody = 0
        case .body(let body):
            discardedBody += body.readableBytes
            if discardedBody > Self.maximumDiscardedBody, let head {
                self.head = nil
                respond(context: context, head: head, decision: .badRequest(reason: "request body too large"))
            }
        case .end:
            guard let head else { return }
            self.head = nil
            // The routing is pure; only a valid challenge asks for the thumbprint, which reads a file.
            var asked = false
            let decision = ACMEHTTPRouter.decide(
                method: head.method, uri: head.uri, hostHeaders: head.headers["Host"], httpsPort: settings.httpsPort,
                thumbprint: {
                    asked = true
                    return nil
                })
            guard asked else {
                respond(context: context, head: head, decision: decision)
                return
            }
            let thumbprints = settings.thumbprints
            switch settings.lookup {
            case .inline:
                respond(context: context, head: head, decision: decide(head, thumbprint: thumbprints.thumbprint()))
            case .threadPool:
                // Off the event loop; the pipelining handler holds the connection's next request until this answer
                // is written.
                let bound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
                NIOThreadPool.singleton.runIfActive(eventLoop: context.eventLoop) { thumbprints.thumbprint() }
                    .assumeIsolated().whenComplete { result in
                        let (handler, context) = bound.value
                        guard !handler.closing, context.channel.isActive else { return }
                        let thumbprint = (try? result.get()) ?? nil
                        handler.respond(context: context, head: head, decision: handler.decide(head, thumbprint: thumbprint))
                    }
            }
        }
    }

    /// The decision for `head` with the thumbprint looked up (`nil`: no account, answered 404).
    private func decide(_ head: HTTPRequestHead, thumbprint: String?) -> ACMEHTTPDecision {
        ACMEHTTPRouter.decide(
            method: head.method, uri: head.uri, hostHeaders: head.headers["Host"], httpsPort: settings.httpsPort, thumbprint: { thumbprint })
    }

    package func errorCaught(context: ChannelHandlerContext, error: Error) {
        // Parse errors were answered 400 by HTTPServerProtocolErrorHandler; anything else ends the connection.
        logger.debug("http client error", metadata: ["client": "\(context.channel.remoteAddress?.description ?? "?")", "error": "\(error)"])
        context.close(promise: nil)
    }

    package func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if event is IdleStateHandler.IdleStateEvent {
            context.close(promise: nil)
            return
        }
        context.fireUserInboundEventTriggered(event)
    }

    private func respond(context: ChannelHandlerContext, head: HTTPRequestHead, decision: ACMEHTTPDecision) {
        var keepAlive = head.isKeepAlive
        var headers = HTTPHeaders()
        let body: String
        switch decision {
        case .challenge(let keyAuthorization):
            body = keyAuthorization
            logger.info(
                "answered an http-01 challenge", metadata: ["client": "\(context.channel.remoteAddress?.description ?? "?")", "acme.token": "\(head.uri.split(separator: "/").last ?? "")"])
        case .redirect(let location, _):
            headers.add(name: "Location", value: location)
            body = ""
        case .notFound:
            body = "not found\n"
        case .methodNotAllowed:
            headers.add(name: "Allow", value: "GET, HEAD")
            body = "method not allowed\n"
        case .badRequest(let reason):
            keepAlive = false
            closing = true
            body = "bad request: \(reason)\n"
            logger.debug("http request refused", metadata: ["client": "\(context.channel.remoteAddress?.description ?? "?")", "reason": "\(reason)"])
        }
        headers.add(name: "Content-Type", value: "text/plain")
        headers.add(name: "Content-Length", value: "\(body.utf8.count)")
        headers.add(name: "Connection", value: keepAlive ? "keep-alive" : "close")
        let version = head.version.major == 1 ? head.version : .http1_1
        context.write(wrapOutboundOut(.head(HTTPResponseHead(version: version, status: decision.status, headers: headers))), promise: nil)
        if head.method != .HEAD, !body.isEmpty {
            context.write(wrapOutboundOut(.body(.byteBuffer(context.channel.allocator.buffer(string: body)))), promise: nil)
        }
        let written = context.writeAndFlush(wrapOutboundOut(.end(nil)))
        if !keepAlive {
            closing = true
            let channel = context.channel
            written.whenComplete { _ in channel.close(promise: nil) }
        }
    }

    /// Installs the HTTP server pipeline of one connection: header limits, pipelining order, 400 on parse
    /// errors, the idle limit, then this handler.
    package static func configure(channel: any Channel, settings: ProxyHTTPSettings, idle: TimeAmount, logger: Logger) throws {
        var limits = NIOHTTPDecoderLimitConfiguration()
        limits.maxHeaderListSize = settings.maximumHeaderBytes
        limits.maxHeaderFieldSize = settings.maximumHeaderBytes
        limits.maxHeaderFieldCount = 100
        let sync = channel.pipeline.syncOperations
        try sync.addHandler(IdleStateHandler(readTimeout: idle))
        try sync.addHandler(HTTPResponseEncoder())
        try sync.addHandler(ByteToMessageHandler(HTTPRequestDecoder(leftOverBytesStrategy: .dropBytes, informationalResponseStrategy: .drop, limitConfiguration: limits)))
        try sync.addHandler(HTTPServerPipelineHandler())
        try sync.addHandler(HTTPServerProtocolErrorHandler())
        try sync.addHandler(ACMEHTTPHandler(settings: settings, logger: logger))
    }
}

extension ProxyFrontend {
    /// Creates a plain-HTTP frontend (`mode: http`): ACME http-01 answers and redirects to https, no backends.
    /// - Parameters:
    ///   - name: Name for logs and stats.
    ///   - host: Bind address.
    ///   - port: Bind port (80 in production; 0 for any free port).
    ///   - http: What to answer with and where to redirect.
    ///   - timeouts: `idle` closes a connection that sends nothing for that long (also between keep-alive requests).
    ///   - maxConnections: Open client connections at most, or `nil`.
    public init(name: String, host: String, port: Int, http: ProxyHTTPSettings, timeouts: ProxyTimeouts = ProxyTimeouts(idle: .seconds(30)), maxConnections: Int? = nil) {
        self.init(name: name, host: host, port: port, tls: nil, pool: ProxyBackendPool(addresses: []), timeouts: timeouts, maxConnections: maxConnections)
        self.http = http
    }
}
