import NIOCore

/// How a frontend picks one of its servers (HAProxy's `balance`).
public enum ProxyBalance: String, Sendable, Hashable, CaseIterable {
    /// Weighted round-robin (smooth: weights 3 and 1 give `a a b a`, not `a a a b`).
    case roundRobin = "roundrobin"
    /// The server with the fewest open connections relative to its weight; ties go round-robin.
    case leastConnections = "leastconn"
    /// The first server in configuration order that is up and below its `maxconn`.
    case first
}

/// What happens to a server's open connections when its health check marks it down.
public enum ProxyMarkedDownAction: String, Sendable, Hashable, CaseIterable {
    /// They run on until they end (HAProxy's default).
    case keepSessions = "keep_sessions"
    /// They are closed at once (HAProxy's `on-marked-down shutdown-sessions`), so clients reconnect to a server
    /// that is up.
    case shutdownSessions = "shutdown_sessions"
}

/// A health check of one server.
public struct ProxyHealthCheck: Sendable, Hashable {
    /// What a check does.
    public enum Kind: Sendable, Hashable {
        /// Connects and closes: the server is up when the port accepts.
        case tcp
        /// Sends `method path HTTP/1.0` and expects `expectStatus` in the status line.
        case http(method: String, path: String, expectStatus: Int)
        /// Completes a TLS handshake (the server's certificate is not verified: it proves the TLS stack answers).
        case tls
    }

    /// HAProxy's defaults: `inter 2s`, `fall 3`, `rise 2`.
    public static let defaultInterval: TimeAmount = .seconds(2)
    /// Default ``fall``.
    public static let defaultFall = 3
    /// Default ``rise``.
    public static let defaultRise = 2

    /// The probe.
    public var kind: Kind
    /// The port to check; `nil` means the server's traffic port.
    public var port: Int?
    /// Time between two checks.
    public var interval: TimeAmount
    /// Time one check may take (connect included); `nil` means `interval`.
    public var timeout: TimeAmount?
    /// Consecutive failures that mark an up server down.
    public var fall: Int
    /// Consecutive successes that mark a down server up.
    public var rise: Int

    /// Creates a check.
    /// - Parameters:
    ///   - kind: The probe.
    ///   - port: Another port than the traffic port, or `nil`.
    ///   - interval: Time between checks (2 s).
    ///   - timeout: Time allowed for one check (the interval when `nil`).
    ///   - fall: Failures that mark a server down (3).
    ///   - rise: Successes that mark it up again (2).
    public init(
        kind: Kind = .tcp, port: Int? = nil, interval: TimeAmount = Self.defaultInterval, timeout: TimeAmount? = nil,
        fall: Int = Self.defaultFall, rise: Int = Self.defaultRise
    ) {
        self.kind = kind
        self.port = port
        self.interval = interval
        self.timeout = timeout
        self.fall = max(1, fall)
        self.rise = max(1, rise)
    }

    /// The limit of one check.
    var effectiveTimeout: TimeAmount { timeout ?? interval }
}

/// One server of a frontend's backend.
public struct ProxyBackendServer: Sendable, Hashable {
    /// Name for logs and stats; unique within the frontend.
    public var name: String
    /// Where connections go.
    public var address: ProxyBackend
    /// Relative share of new connections (0 takes none; 1 by default).
    public var weight: Int
    /// Used only when no normal server can take the connection.
    public var backup: Bool
    /// Whether the server runs on this host, for ``ProxyBackendPool/preferLocal``; `nil` means "if its address is
    /// a loopback address or one of this host's interface addresses".
    public var local: Bool?
    /// Open connections this server takes at most; when full it is skipped. `nil` for no limit.
    public var maxConnections: Int?
    /// Overrides the pool's ``ProxyBackendPool/proxyProtocol`` for this server (`false` sends no header).
    public var proxyProtocol: Bool?
    /// The health check; `nil` for none (the server is always considered up).
    public var check: ProxyHealthCheck?

    /// Creates a server.
    /// - Parameters:
    ///   - name: Name for logs and stats (the address when `nil`).
    ///   - address: Where connections go.
    ///   - weight: Share of new connections (1).
    ///   - backup: Used only when no normal server can take the connection.
    ///   - local: Whether it runs on this host; `nil` detects it from the address.
    ///   - maxConnections: Open connections at most, or `nil`.
    ///   - proxyProtocol: Per-server PROXY protocol override, or `nil` to follow the pool.
    ///   - check: Health check, or `nil`.
    public init(
        name: String? = nil, address: ProxyBackend, weight: Int = 1, backup: Bool = false, local: Bool? = nil,
        maxConnections: Int? = nil, proxyProtocol: Bool? = nil, check: ProxyHealthCheck? = nil
    ) {
        self.name = name ?? address.description
        self.address = address
        self.weight = max(0, weight)
        self.backup = backup
        self.local = local
        self.maxConnections = maxConnections
        self.proxyProtocol = proxyProtocol
        self.check = check
    }
}

/// The servers behind a frontend and how they are chosen (HAProxy's `backend`).
public struct ProxyBackendPool: Sendable, Hashable {
    /// The servers, in configuration order. Must not be empty.
    public var servers: [ProxyBackendServer]
    /// How a server is picked.
    public var balance: ProxyBalance
    /// Local servers first; the others only when no local one can take the connection.
    public var preferLocal: Bool
    /// Send a PROXY protocol v2 header to every server (unless a server overrides it).
    public var proxyProtocol: Bool
    /// What happens to open connections of a server marked down.
    public var onMarkedDown: ProxyMarkedDownAction

    /// Creates a pool.
    /// - Parameters:
    ///   - servers: The servers, at least one.
    ///   - balance: Round-robin by default.
    ///   - preferLocal: Local servers first.
    ///   - proxyProtocol: PROXY v2 header to every server.
    ///   - onMarkedDown: Keep or close a server's connections when it is marked down.
    public init(
        servers: [ProxyBackendServer], balance: ProxyBalance = .roundRobin, preferLocal: Bool = false,
        proxyProtocol: Bool = false, onMarkedDown: ProxyMarkedDownAction = .keepSessions
    ) {
        self.servers = servers
        self.balance = balance
        self.preferLocal = preferLocal
        self.proxyProtocol = proxyProtocol
        self.onMarkedDown = onMarkedDown
    }

    /// Plain round-robin over addresses: the shape of the original `backends:` list.
    public init(addresses: [ProxyBackend]) {
        self.init(servers: addresses.map { ProxyBackendServer(address: $0) })
    }
}
