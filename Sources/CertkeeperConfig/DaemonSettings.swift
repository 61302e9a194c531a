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

        /// Creates a peer.
        public init(name: String, address: ListenAddress) {
            self.name = name
            self.address = address
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

    /// Whether the frontend terminates TLS.
    public enum Mode: String, Sendable, Equatable, CaseIterable {
        /// Terminate TLS with the store's certificates and relay the plain stream.
        case tls
        /// Relay TCP unchanged.
        case tcp
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
    /// `backends`: addresses, round-robin.
    public var backends: [ListenAddress]
    /// `handshake_timeout`.
    public var handshakeTimeout: Double
    /// `connect_timeout`.
    public var connectTimeout: Double
    /// `idle_timeout`.
    public var idleTimeout: Double

    /// Creates a frontend.
    public init(
        name: String, listen: ListenAddress, mode: Mode = .tls, alpn: [String] = [], minimumTLS13: Bool = false,
        backends: [ListenAddress], handshakeTimeout: Double = Self.defaultHandshakeTimeout,
        connectTimeout: Double = Self.defaultConnectTimeout, idleTimeout: Double = Self.defaultIdleTimeout
    ) {
        self.name = name
        self.listen = listen
        self.mode = mode
        self.alpn = alpn
        self.minimumTLS13 = minimumTLS13
        self.backends = backends
        self.handshakeTimeout = handshakeTimeout
        self.connectTimeout = connectTimeout
        self.idleTimeout = idleTimeout
    }
}
