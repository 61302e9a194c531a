/// `cluster:`: this node's place among its peers (peer sync, issue #4).
public struct ClusterSettings: Sendable, Equatable {
    /// Default for ``longPollTimeout``.
    public static let defaultLongPollTimeout: Double = 60
    /// Default for ``antiEntropyInterval``.
    public static let defaultAntiEntropyInterval: Double = 300
    /// Default for ``takeoverAfter``.
    public static let defaultTakeoverAfter: Double = 3600
    /// Default for ``takeoverMargin``.
    public static let defaultTakeoverMargin: Double = 86_400

    /// What this node does about renewal.
    public enum Role: String, Sendable, Equatable, CaseIterable {
        /// Renews (from cron or by hand) and serves its certificates to the peers.
        case renewer
        /// Only pulls and serves.
        case follower
        /// Pulls and serves, and renews itself when the renewer has been unreachable long enough.
        case standby
    }

    /// A peer node.
    public struct Peer: Sendable, Equatable {
        /// The peer's node name (the name in its cluster certificate).
        public var name: String
        /// The address of the peer's API.
        public var address: ListenAddress
        /// The peer's role, when this node's file says it (`peers[].role`). On the renewer, `standby` is what lets
        /// that peer fetch the internal CA's root key, so that it can take over internal certificates.
        public var role: Role?

        /// Creates a peer.
        public init(name: String, address: ListenAddress, role: Role? = nil) {
            self.name = name
            self.address = address
            self.role = role
        }
    }

    /// `cluster.role`.
    public var role: Role
    /// `cluster.listen`: where this node's peer API listens (the private network).
    public var listen: ListenAddress
    /// `cluster.peers`: the other nodes.
    public var peers: [Peer]
    /// `cluster.identity`: this node's cluster identity file; `nil` means `<state_dir>/cluster/identity.pem`.
    public var identityPath: String?
    /// `cluster.long_poll`: how long a peer holds a change query open before answering "nothing new".
    public var longPollTimeout: Double
    /// `cluster.anti_entropy`: how often a full comparison with every peer runs even when nothing was announced.
    public var antiEntropyInterval: Double
    /// `cluster.takeover_after`: (standby) how long the renewer must have been unreachable before this node renews.
    public var takeoverAfter: Double
    /// `cluster.takeover_margin`: (standby) how far inside its renewal window a certificate must be.
    public var takeoverMargin: Double

    /// Creates cluster settings; omitted values take the documented defaults.
    public init(
        role: Role, listen: ListenAddress, peers: [Peer], identityPath: String? = nil,
        longPollTimeout: Double = Self.defaultLongPollTimeout,
        antiEntropyInterval: Double = Self.defaultAntiEntropyInterval,
        takeoverAfter: Double = Self.defaultTakeoverAfter, takeoverMargin: Double = Self.defaultTakeoverMargin
    ) {
        self.role = role
        self.listen = listen
        self.peers = peers
        self.identityPath = identityPath
        self.longPollTimeout = longPollTimeout
        self.antiEntropyInterval = antiEntropyInterval
        self.takeoverAfter = takeoverAfter
        self.takeoverMargin = takeoverMargin
    }

    /// The identity file to use for a given state directory.
    public func identityFile(stateDirectory: String) -> String {
        identityPath ?? "\(stateDirectory)/cluster/identity.pem"
    }
}

/// `proxy:`: the built-in TLS-terminating proxy of `certkeeper daemon`.
public struct ProxySettings: Sendable, Equatable {
    /// Default for ``grace``.
    public static let defaultGrace: Double = 30
    /// Allowed values for ``threads``.
    public static let threadsRange = 1...256

    /// `proxy.threads`: event loops; `nil` means one per core.
    public var threads: Int?
    /// `proxy.grace`: how long open connections may continue after SIGTERM.
    public var grace: Double
    /// `proxy.default_certificate`: the certificate for clients without SNI or with an unknown name; `nil` means the
    /// first by name.
    public var defaultCertificate: String?
    /// `proxy.frontends`.
    public var frontends: [FrontendSettings]

    /// Creates proxy settings.
    public init(threads: Int? = nil, grace: Double = Self.defaultGrace, defaultCertificate: String? = nil, frontends: [FrontendSettings] = []) {
        self.threads = threads
        self.grace = grace
        self.defaultCertificate = defaultCertificate
        self.frontends = frontends
    }
}

/// One `proxy.frontends[]` entry.
public struct FrontendSettings: Sendable, Equatable {
    /// Default for ``handshakeTimeout``.
    public static let defaultHandshakeTimeout: Double = 10
    /// Default for ``connectTimeout``.
    public static let defaultConnectTimeout: Double = 5
    /// Default for ``idleTimeout``.
    public static let defaultIdleTimeout: Double = 300
    /// Default ``idleTimeout`` of a `mode: http` frontend (also the keep-alive limit between requests).
    public static let defaultHTTPIdleTimeout: Double = 30

    /// Whether the frontend terminates TLS.
    public enum Mode: String, Sendable, Equatable, CaseIterable {
        /// Terminate TLS with the store's certificates and relay the plain stream.
        case tls
        /// Relay TCP unchanged.
        case tcp
        /// Plain HTTP (port 80): answer ACME http-01 challenges with the stored account's thumbprint, redirect
        /// everything else to https; no backends.
        case http
    }

    /// `name`: unique among frontends; used in logs and stats.
    public var name: String
    /// `listen`.
    public var listen: ListenAddress
    /// `mode` (default `tls`).
    public var mode: Mode
    /// `alpn`: protocols offered, in preference order.
    public var alpn: [String]
    /// `min_tls`: `"1.2"` (default) or `"1.3"`.
    public var minimumTLS13: Bool
    /// `backends`: the servers, in order (a string entry is a server with only an address).
    public var servers: [BackendServerSettings]
    /// `balance` (default `roundrobin`).
    public var balance: Balance
    /// `prefer_local`: local servers first, the others only when no local one can take the connection.
    public var preferLocal: Bool
    /// `proxy_protocol`: send a PROXY v2 header to every server (servers may override it).
    public var proxyProtocol: Bool
    /// `on_marked_down` (default `keep_sessions`).
    public var onMarkedDown: MarkedDownAction
    /// `maxconn`: open client connections at most; `nil` for no limit.
    public var maxConnections: Int?
    /// `check`: the health check of every server that does not set its own; `nil` for none.
    public var check: HealthCheckSettings?
    /// `handshake_timeout`.
    public var handshakeTimeout: Double
    /// `connect_timeout`.
    public var connectTimeout: Double
    /// `idle_timeout`.
    public var idleTimeout: Double
    /// `https_port` (mode `http`): the port of redirect targets; `nil` for 443.
    public var httpsPort: Int? = nil
    /// The MQTT keys (`require_mqtt_connect`, `stick: mqtt_client_id`, ...); all off by default.
    public var mqtt = MQTTFrontendSettings()

    /// How a server is picked.
    public enum Balance: String, Sendable, Equatable, CaseIterable {
        /// Weighted round-robin.
        case roundrobin
        /// Fewest open connections relative to weight.
        case leastconn
        /// The first server in order that is up and below its `maxconn`.
        case first
    }

    /// What happens to a server's open connections when its check marks it down.
    public enum MarkedDownAction: String, Sendable, Equatable, CaseIterable {
        /// They continue.
        case keepSessions = "keep_sessions"
        /// They are closed.
        case shutdownSessions = "shutdown_sessions"
    }

    /// The addresses of ``servers``, in order.
    public var backends: [ListenAddress] { servers.map(\.address) }

    /// Creates a frontend.
    public init(
        name: String, listen: ListenAddress, mode: Mode = .tls, alpn: [String] = [], minimumTLS13: Bool = false,
        servers: [BackendServerSettings], balance: Balance = .roundrobin, preferLocal: Bool = false,
        proxyProtocol: Bool = false, onMarkedDown: MarkedDownAction = .keepSessions, maxConnections: Int? = nil,
        check: HealthCheckSettings? = nil, handshakeTimeout: Double = Self.defaultHandshakeTimeout,
        connectTimeout: Double = Self.defaultConnectTimeout, idleTimeout: Double = Self.defaultIdleTimeout
    ) {
        self.name = name
        self.listen = listen
        self.mode = mode
        self.alpn = alpn
        self.minimumTLS13 = minimumTLS13
        self.servers = servers
        self.balance = balance
        self.preferLocal = preferLocal
        self.proxyProtocol = proxyProtocol
        self.onMarkedDown = onMarkedDown
        self.maxConnections = maxConnections
        self.check = check
        self.handshakeTimeout = handshakeTimeout
        self.connectTimeout = connectTimeout
        self.idleTimeout = idleTimeout
    }
}

/// One `proxy.frontends[].backends[]` entry: a string `host:port`, or a mapping.
public struct BackendServerSettings: Sendable, Equatable {
    /// Allowed values for ``weight``.
    public static let weightRange = 0...256
    /// Allowed values for ``maxConnections`` (and the frontend's `maxconn`).
    public static let maxConnectionsRange = 1...1_000_000

    /// Which health check a server runs.
    public enum Check: Sendable, Equatable {
        /// The frontend's `check`, if any.
        case inherit
        /// None (`check: false`), even when the frontend has one.
        case disabled
        /// Its own.
        case custom(HealthCheckSettings)
    }

    /// `address`.
    public var address: ListenAddress
    /// `name`; `nil` means the address.
    public var name: String?
    /// `weight` (default 1; 0 takes no new connections).
    public var weight: Int
    /// `backup`: used only when no normal server can take the connection.
    public var backup: Bool
    /// `local`: runs on this host (for `prefer_local`); `nil` detects it from the address.
    public var local: Bool?
    /// `maxconn`: open connections at most; `nil` for no limit.
    public var maxConnections: Int?
    /// `proxy_protocol`: overrides the frontend's; `nil` follows it.
    public var proxyProtocol: Bool?
    /// `check`.
    public var check: Check

    /// Creates a server.
    public init(
        address: ListenAddress, name: String? = nil, weight: Int = 1, backup: Bool = false, local: Bool? = nil,
        maxConnections: Int? = nil, proxyProtocol: Bool? = nil, check: Check = .inherit
    ) {
        self.address = address
        self.name = name
        self.weight = weight
        self.backup = backup
        self.local = local
        self.maxConnections = maxConnections
        self.proxyProtocol = proxyProtocol
        self.check = check
    }
}

/// A `check:` mapping (on a frontend or a server).
public struct HealthCheckSettings: Sendable, Equatable {
    /// Default ``interval``.
    public static let defaultInterval: Double = 2
    /// Default ``fall``.
    public static let defaultFall = 3
    /// Default ``rise``.
    public static let defaultRise = 2
    /// Allowed values for ``fall`` and ``rise``.
    public static let countRange = 1...100

    /// What a check does.
    public enum Kind: String, Sendable, Equatable, CaseIterable {
        /// Connect and close.
        case tcp
        /// An HTTP request; the status must be `expect_status`.
        case http
        /// A TLS handshake (the certificate is not verified).
        case tls
    }

    /// `type` (default `tcp`).
    public var kind: Kind
    /// `port`: another port than the traffic port; `nil` for the traffic port.
    public var port: Int?
    /// `method` (http; default `GET`).
    public var method: String
    /// `path` (http; default `/`).
    public var path: String
    /// `expect_status` (http; default 200).
    public var expectStatus: Int
    /// `interval` in seconds (default 2).
    public var interval: Double
    /// `timeout` in seconds; `nil` means the interval.
    public var timeout: Double?
    /// `fall` (default 3).
    public var fall: Int
    /// `rise` (default 2).
    public var rise: Int

    /// Creates a check; omitted values take the documented defaults.
    public init(
        kind: Kind = .tcp, port: Int? = nil, method: String = "GET", path: String = "/", expectStatus: Int = 200,
        interval: Double = Self.defaultInterval, timeout: Double? = nil, fall: Int = Self.defaultFall, rise: Int = Self.defaultRise
    ) {
        self.kind = kind
        self.port = port
        self.method = method
        self.path = path
        self.expectStatus = expectStatus
        self.interval = interval
        self.timeout = timeout
        self.fall = fall
        self.rise = rise
    }
}

/// The MQTT keys of a `proxy.frontends[]` entry (modes `tls` and `tcp`).
public struct MQTTFrontendSettings: Sendable, Equatable {
    /// Allowed values for ``maxConnectSize``.
    public static let maxConnectSizeRange = 64...(16 << 20)
    /// Allowed values for ``stickTableSize``.
    public static let stickTableSizeRange = 1...10_000_000

    /// `require_mqtt_connect`: the first packet must be a valid MQTT 3.1/3.1.1/5.0 CONNECT within
    /// ``connectTimeout``, else the connection is closed before a backend is chosen.
    public var requireConnect = false
    /// `mqtt_connect_timeout` (5 s): how long a client has, after the TLS handshake, to send its CONNECT.
    public var connectTimeout: Double = 5
    /// `mqtt_max_connect_size` (65536 bytes): the largest CONNECT packet accepted.
    public var maxConnectSize = 65_536
    /// `stick: mqtt_client_id`: the same client id goes to the same server while it is up (implies
    /// ``requireConnect``: the CONNECT must be read to know the id).
    public var stickByClientID = false
    /// `stick_expire` (30 min): an id unused this long is forgotten.
    public var stickExpire: Double = 1800
    /// `stick_table_size` (100000): ids remembered at most (the least recently used go first).
    public var stickTableSize = 100_000

    /// Creates the settings; every option off.
    public init() {}
}
