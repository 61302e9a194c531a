import AsyncHTTPClient
import Foundation
import NIOConcurrencyHelpers
import NIOCore
import NIOHTTP1
import NIOSSL

/// Why a request to a peer failed, in one line naming the peer.
public struct PeerError: Error, Sendable, CustomStringConvertible {
    /// The peer's node name.
    public var peer: String
    /// What was asked (`catalog`, `certificate web`, `account`).
    public var operation: String
    /// What went wrong.
    public var reason: String
    /// The HTTP status, when the peer answered with an error (403: it does not list this node as a peer).
    public var status: UInt?

    /// Whether the peer answered and refused this node (403): it is alive, but this node is not its peer.
    public var isRefusal: Bool { status == 403 }

    /// `peer n2: catalog: connection refused`.
    public var description: String { "peer \(peer): \(operation): \(reason)" }
}

/// Talks to one peer's API over mutual TLS.
///
/// The HTTP client must be configured with this node's cluster identity (client certificate, cluster CA as the
/// only trust root); see `ClusterIdentity.makeClientTLSConfiguration()`.
public struct PeerClient: Sendable {
    /// Bodies larger than these are refused (a misbehaving peer cannot make this node buffer without bound).
    public enum Limit {
        /// Catalogue responses.
        public static let catalog = 4 * 1024 * 1024
        /// Certificate bundles.
        public static let bundle = 1024 * 1024
        /// Account responses.
        public static let account = 64 * 1024
    }

    /// The peer's node name.
    public let peerName: String
    /// `https://host:port`.
    public let baseURL: String
    private let http: HTTPClient
    /// The longest a request may take (a long-poll: its wait plus this).
    private let requestTimeout: Duration
    /// Whether this peer's long-polls have sent heartbeats: then a long-poll's head must come within
    /// ``PeerAPI/heartbeatIdleLimit`` too, and silence that long means the connection is dead.
    private let heartbeatsSeen = NIOLockedValueBox(false)
    /// The TLS configuration of each request when it can change (swappable cluster credentials); `nil` uses the
    /// HTTP client's own.
    private let tls: (@Sendable () -> TLSConfiguration)?

    /// Creates a client for a peer at `host:port`.
    /// - Parameters:
    ///   - timeout: The longest a request may take, beyond a long-poll's wait (15 s by default).
    ///   - tls: Read before every request (new connections use what it returns, e.g. after a CA rotation).
    public init(peerName: String, host: String, port: Int, http: HTTPClient, timeout: Duration = .seconds(15), tls: (@Sendable () -> TLSConfiguration)? = nil) {
        self.peerName = peerName
        self.baseURL = "https://\(host.contains(":") ? "[\(host)]" : host):\(port)"
        self.http = http
        self.requestTimeout = timeout
        self.tls = tls
    }

    /// The peer's catalogue; with `after`, a long-poll that returns when the peer's index moves or `wait` passes.
    public func catalog(after: SyncIndex?, wait: Duration) async throws(PeerError) -> PeerCatalog {
        var target = "/v1/catalog"
        if let after {
            let seconds = Double(wait.components.seconds) + Double(wait.components.attoseconds) / 1e18
            target += "?after=\(after)&wait=\(String(format: "%.3f", seconds))"
        }
        // A long-poll asks for heartbeats; a peer known to send them must answer its head at once.
        let longPoll = after != nil && wait > .zero
        let timeout = longPoll && heartbeatsSeen.withLockedValue({ $0 }) ? PeerAPI.heartbeatIdleLimit : wait + requestTimeout
        let catalog: PeerCatalog = try await get(target, operation: "catalog", limit: Limit.catalog, timeout: timeout, heartbeats: longPoll)
        guard catalog.node == peerName else {
            throw PeerError(peer: peerName, operation: "catalog", reason: "the node answering calls itself '\(catalog.node.prefix(64))'")
        }
        return catalog
    }

    /// The peer's live bundle named `name`.
    public func bundle(name: String) async throws(PeerError) -> BundlePayload {
        let payload: BundlePayload = try await get("/v1/certificates/\(name)", operation: "certificate \(name)", limit: Limit.bundle, timeout: requestTimeout)
        guard payload.name == name else {
            throw PeerError(peer: peerName, operation: "certificate \(name)", reason: "the answer is for '\(payload.name.prefix(64))'")
        }
        return payload
    }

    /// The peer's internal CA (only a standby the peer lists with `role: standby` gets it; others get 403).
    public func internalCA() async throws(PeerError) -> InternalCAPayload {
        try await get("/v1/internal-ca", operation: "internal CA", limit: Limit.account, timeout: requestTimeout)
    }

    /// The peer's ACME account.
    public func account() async throws(PeerError) -> AccountPayload {
        try await get("/v1/account", operation: "account", limit: Limit.account, timeout: requestTimeout)
    }

    /// - Parameters:
    ///   - timeout: How long the response's head may take.
    ///   - heartbeats: Ask for heartbeats (a long-poll); when the answer announces them, a body silent for
    ///     ``PeerAPI/heartbeatIdleLimit`` fails the request.
    private func get<T: Decodable>(_ target: String, operation: String, limit: Int, timeout: Duration, heartbeats: Bool = false) async throws(PeerError) -> T {
        func failure(_ reason: String) -> PeerError { PeerError(peer: peerName, operation: operation, reason: reason) }
        let body: ByteBuffer
        let status: HTTPResponseStatus
        do {
            var request = HTTPClientRequest(url: baseURL + target)
            if let tls { request.tlsConfiguration = tls() }
            if heartbeats { request.headers.add(name: PeerAPI.heartbeatHeader, value: "\(PeerAPI.heartbeatInterval.components.seconds)") }
            let response = try await http.execute(request, timeout: timeout.timeAmount)
            status = response.status
            if let length = response.headers.first(name: "content-length").flatMap(Int.init), length > limit {
                throw failure("the answer is \(length) bytes, more than the \(limit) allowed")
            }
            let streaming = response.headers.contains(name: PeerAPI.heartbeatHeader)
            if heartbeats { heartbeatsSeen.withLockedValue { $0 = streaming } }
            if streaming {
                guard let collected = try await Self.collect(response.body, upTo: limit, idleLimit: PeerAPI.heartbeatIdleLimit) else {
                    throw failure("no heartbeat for \(PeerAPI.heartbeatIdleLimit): the connection is dead")
                }
                body = collected
            } else {
                body = try await response.body.collect(upTo: limit)
            }
        } catch let error as PeerError {
            throw error
        } catch let error as NIOTooManyBytesError {
            _ = error
            throw failure("the answer is more than the \(limit) bytes allowed")
        } catch {
            throw failure(Self.describe(error))
        }
        guard status == .ok else {
            let message = (try? PeerJSON.decoder.decode([String: String].self, from: Data(body.readableBytesView)))?["error"] ?? ""
            var error = failure("HTTP \(status.code)\(message.isEmpty ? "" : ": \(message.prefix(200))")")
            error.status = status.code
            throw error
        }
        do {
            return try PeerJSON.decoder.decode(T.self, from: Data(body.readableBytesView))
        } catch {
            throw failure("the answer is not a valid \(T.self): \(Self.describe(error))")
        }
    }

    /// The whole body, or `nil` when nothing arrived for `idleLimit` (the peer or the path to it is gone).
    /// - Throws: `NIOTooManyBytesError` past `limit`, or the body's own error.
    static func collect(_ body: HTTPClientResponse.Body, upTo limit: Int, idleLimit: Duration) async throws -> ByteBuffer? {
        let lastProgress = NIOLockedValueBox(ContinuousClock.now)
        return try await withThrowingTaskGroup(of: ByteBuffer?.self) { group in
            group.addTask {
                var collected = ByteBuffer()
                for try await var chunk in body {
                    lastProgress.withLockedValue { $0 = .now }
                    guard collected.readableBytes + chunk.readableBytes <= limit else { throw NIOTooManyBytesError(maxBytes: limit) }
                    collected.writeBuffer(&chunk)
                }
                return collected
            }
            group.addTask {
                while true {
                    try await Task.sleep(for: .milliseconds(500))
                    if lastProgress.withLockedValue({ ContinuousClock.now - $0 }) > idleLimit { return nil }
                }
            }
            defer { group.cancelAll() }
            return try await group.next() ?? nil
        }
    }

    static func describe(_ error: any Error) -> String {
        let text = "\(error)"
        return text.count > 300 ? String(text.prefix(300)) + "…" : text
    }
}

extension Duration {
    /// The same span as NIO's `TimeAmount` (NIO's conversion, which saturates instead of overflowing).
    var timeAmount: TimeAmount { TimeAmount(self) }
}
