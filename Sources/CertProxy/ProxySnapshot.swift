import Foundation

/// The result of a server's most recent health check.
public struct ProxyCheckResult: Sendable, Hashable {
    /// Whether the check passed.
    public var passed: Bool
    /// What was seen: `connected`, `status 200`, `connection refused`, `timed out after 2 s`, …
    public var detail: String
    /// When it finished.
    public var time: Date
    /// How long the probe took (connect, request and answer, or handshake).
    public var duration: Duration = .zero
}

/// One server's state and counters at the moment of a ``ProxyServer/snapshot()``.
public struct ProxyServerSnapshot: Sendable, Hashable {
    /// The server's name.
    public var name: String
    /// `host:port`.
    public var address: String
    /// Up or down.
    public var state: ProxyServerState
    /// Whether it has a health check.
    public var checked: Bool
    /// A backup server.
    public var backup: Bool
    /// Counted as local for `prefer_local`.
    public var local: Bool
    /// Its weight.
    public var weight: Int
    /// Connections relayed to it now.
    public var activeConnections: Int
    /// Connections relayed to it since it was configured.
    public var totalConnections: Int
    /// Connect attempts that failed.
    public var connectFailures: Int
    /// Bytes sent to the server, counted when each connection closes.
    public var bytesToServer: Int
    /// Bytes received from the server, counted when each connection closes.
    public var bytesFromServer: Int
    /// The last health check, `nil` before the first one or without a check.
    public var lastCheck: ProxyCheckResult?
}

/// One frontend and its servers at the moment of a ``ProxyServer/snapshot()``.
public struct ProxyFrontendSnapshot: Sendable, Hashable {
    /// The frontend's name.
    public var name: String
    /// The bound port.
    public var port: Int
    /// Client connections open now.
    public var activeConnections: Int
    /// Client connections accepted since it was bound.
    public var totalConnections: Int
    /// Connections refused because `maxconn` was reached.
    public var refusedConnections: Int
    /// Clients closed because no server could take them.
    public var noServerClosures: Int
    /// TLS handshakes that failed or timed out (always 0 for a TCP frontend).
    public var handshakeFailures: Int = 0
    /// The frontend's `maxconn`, if any.
    public var maxConnections: Int?
    /// How servers are chosen.
    public var balance: ProxyBalance
    /// The servers, in configuration order.
    public var servers: [ProxyServerSnapshot]
}
