import CertStore
import Durations
import Foundation
import Logging

/// The peer API's routes, independent of the transport:
///
/// - `GET /v1/catalog?after=<epoch.counter>&wait=<seconds>`: this node's ``PeerCatalog``; with `after` equal to the
///   current index, held open until the index moves or `wait` passes (a long-poll), at most ``maximumWait``.
/// - `GET /v1/certificates/<name>`: the live ``BundlePayload`` (certificate chain and key).
/// - `GET /v1/account`: the ACME account (``AccountPayload``) for the configured directory.
/// - `GET /v1/internal-ca`: the internal CA's root and key (``InternalCAPayload``), only to the peers in
///   ``internalCAReaders`` (standbys this node's configuration names); 403 for every other peer.
///
/// Every response is JSON. Only ever served behind mutual TLS (``PeerAPIServer``).
public struct PeerAPI: Sendable {
    /// A response: status code and JSON body.
    public struct Response: Sendable, Equatable {
        /// HTTP status.
        public var status: Int
        /// JSON body.
        public var body: Data
    }

    /// What this node offers.
    public let local: LocalNode
    /// This node's change index.
    public let index: ChangeIndex
    /// The longest long-poll honoured.
    public let maximumWait: Duration
    /// The peers that may fetch the internal CA (its root key can mint certificates every client trusts).
    public let internalCAReaders: Set<String>

    /// Creates the API.
    public init(local: LocalNode, index: ChangeIndex, maximumWait: Duration, internalCAReaders: Set<String> = []) {
        self.local = local
        self.index = index
        self.maximumWait = maximumWait
        self.internalCAReaders = internalCAReaders
    }

    /// Answers one request.
    /// - Parameters:
    ///   - method: The HTTP method.
    ///   - uri: The request target (path and query).
    ///   - peer: The client's node name, for logs.
    ///   - logger: Where requests are logged (debug) and failures (warning).
    public func respond(method: String, uri: String, peer: String, logger: Logger) async -> Response {
        await respond(method: method, uri: uri, peer: peer, logger: logger, heartbeat: nil)
    }

    /// How often a long-poll that was asked for heartbeats sends one (``heartbeatHeader``): a follower that hears
    /// nothing for ``heartbeatIdleLimit`` knows the connection is dead (a silent partition sends no RST).
    public static let heartbeatInterval: Duration = .seconds(2)
    /// The silence after which a heartbeat-sending long-poll counts as dead: three missed heartbeats.
    public static let heartbeatIdleLimit: Duration = .seconds(6)
    /// The request and response header that asks for and announces heartbeats (whitespace before the JSON).
    public static let heartbeatHeader = "x-certkeeper-heartbeat"

    /// Whether `uri` is a long-poll that will wait (`/v1/catalog` with a valid `after` and a positive `wait`): only
    /// those are answered with heartbeats, so nothing else can fail after its 200 head has gone out.
    public func isWaitingLongPoll(_ uri: String) -> Bool {
        guard let components = URLComponents(string: uri), components.path == "/v1/catalog" else { return false }
        let query = Dictionary((components.queryItems ?? []).map { ($0.name, $0.value ?? "") }, uniquingKeysWith: { first, _ in first })
        guard let after = query["after"].flatMap(SyncIndex.init), let wait = query["wait"].flatMap(Self.requestedWait) else { return false }
        return wait > .zero && after == index.current
    }

    /// Answers one request; while a long-poll waits, calls `heartbeat` every ``heartbeatInterval`` (it throws when
    /// the client is gone, which ends the wait).
    public func respond(
        method: String, uri: String, peer: String, logger: Logger, heartbeat: (@Sendable () async throws -> Void)?
    ) async -> Response {
        guard method == "GET" else { return Self.error(405, "only GET is served") }
        guard let components = URLComponents(string: uri) else { return Self.error(400, "malformed request target") }
        let segments = components.path.split(separator: "/", omittingEmptySubsequences: false).dropFirst().map(String.init)
        let query = Dictionary((components.queryItems ?? []).map { ($0.name, $0.value ?? "") }, uniquingKeysWith: { first, _ in first })
        do {
            switch segments {
            case ["v1", "catalog"]:
                var after: SyncIndex?
                if let text = query["after"] {
                    guard let parsed = SyncIndex(text) else { return Self.error(400, "after: '\(text.prefix(40))' is not an index") }
                    after = parsed
                }
                var wait = Duration.zero
                if let text = query["wait"] {
                    guard let requested = Self.requestedWait(text) else {
                        return Self.error(400, "wait: '\(text.prefix(40))' is not a number of seconds from 0 to \(Int(Self.longestRequestableWait))")
                    }
                    wait = min(requested, maximumWait)
                }
                var now = await index.wait(after: after, timeout: heartbeat == nil ? wait : min(wait, Self.heartbeatInterval))
                if let heartbeat, let after {
                    let deadline = ContinuousClock.now + wait
                    while now == after, ContinuousClock.now < deadline, !Task.isCancelled {
                        try await heartbeat()
                        now = await index.wait(after: after, timeout: min(Self.heartbeatInterval, ContinuousClock.now.duration(to: deadline)))
                    }
                }
                return try Self.json(local.catalog(index: now))
            case let path where path.count == 3 && path[0] == "v1" && path[1] == "certificates":
                let name = path[2]
                guard StoreName.isValid(name) else { return Self.error(400, "not a valid certificate name") }
                guard let bundle = try local.bundle(name: name) else { return Self.error(404, "no certificate named \(name)") }
                logger.debug("sending certificate to peer", metadata: ["peer": "\(peer)", "cert": "\(name)"])
                return try Self.json(bundle)
            case ["v1", "internal-ca"]:
                guard internalCAReaders.contains(peer) else {
                    return Self.error(403, "only a standby this node's cluster.peers lists with role: standby gets the internal CA")
                }
                guard let ca = try local.internalCA() else { return Self.error(404, "no internal CA on this node") }
                logger.notice("sending the internal CA to a standby", metadata: ["peer": "\(peer)"])
                return try Self.json(ca)
            case ["v1", "account"]:
                guard let account = try local.account() else { return Self.error(404, "no registered ACME account") }
                logger.debug("sending ACME account to peer", metadata: ["peer": "\(peer)"])
                return try Self.json(account)
            default:
                return Self.error(404, "no such resource")
            }
        } catch {
            logger.warning("peer API request failed", metadata: ["peer": "\(peer)", "uri": "\(uri.prefix(120))", "error": "\(error)"])
            return Self.error(500, "\(error)")
        }
    }

    /// The largest `wait=` a request may name, in seconds (a day). Larger values are refused with 400 rather than
    /// cut to ``maximumWait``: they are no real client's, and converting them would overflow.
    static let longestRequestableWait: Double = 86_400

    /// The `wait=` parameter as a duration: a finite number of seconds from 0 to ``longestRequestableWait``,
    /// rounded up to whole milliseconds; `nil` for anything else.
    static func requestedWait(_ text: String) -> Duration? {
        guard text.utf8.count <= 32, let seconds = Double(text), seconds.isFinite, (0...longestRequestableWait).contains(seconds) else {
            return nil
        }
        return .clampedSeconds(seconds)
    }

    static func json<T: Encodable>(_ value: T) throws -> Response {
        Response(status: 200, body: try PeerJSON.encoder.encode(value))
    }

    static func error(_ status: Int, _ message: String) -> Response {
        let body = (try? PeerJSON.encoder.encode(["error": message])) ?? Data()
        return Response(status: status, body: body)
    }
}
