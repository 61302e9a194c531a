import NIOConcurrencyHelpers

/// Connection counters of a ``ProxyServer`` (all frontends together).
public struct ProxyStats: Sendable, Equatable, CustomStringConvertible {
    /// Connections accepted since start.
    public var accepted = 0
    /// Connections open now.
    public var active = 0
    /// Connections that reached a backend and were relayed.
    public var relayed = 0
    /// TLS handshakes that failed or timed out.
    public var handshakeFailures = 0
    /// Backend connections that failed (refused, timed out).
    public var backendFailures = 0
    /// Connections closed for being idle.
    public var idleTimeouts = 0

    /// Creates zeroed counters.
    public init() {}

    /// `accepted=… active=… …`.
    public var description: String {
        "accepted=\(accepted) active=\(active) relayed=\(relayed) handshakeFailures=\(handshakeFailures) backendFailures=\(backendFailures) idleTimeouts=\(idleTimeouts)"
    }
}

/// The shared, locked counters.
final class ProxyCounters: Sendable {
    private let stats = NIOLockedValueBox(ProxyStats())

    var snapshot: ProxyStats { stats.withLockedValue { $0 } }

    func update(_ change: (inout ProxyStats) -> Void) {
        stats.withLockedValue { change(&$0) }
    }
}
