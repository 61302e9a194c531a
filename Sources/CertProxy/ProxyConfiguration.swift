import NIOCore
import NIOSSL

/// A backend server the proxy relays to.
public struct ProxyBackend: Sendable, Hashable, CustomStringConvertible {
    /// Host name or IP literal.
    public var host: String
    /// TCP port.
    public var port: Int

    /// Creates a backend address.
    /// - Parameters:
    ///   - host: Host name or IP literal.
    ///   - port: TCP port.
    public init(host: String, port: Int) {
        self.host = host
        self.port = port
    }

    /// `host:port`.
    public var description: String { "\(host):\(port)" }
}

/// Time limits applied to every proxied connection.
public struct ProxyTimeouts: Sendable, Hashable {
    /// From accept to a completed TLS handshake; the connection is closed if it takes longer.
    public var handshake: TimeAmount
    /// To connect to a backend; the client is closed when it expires.
    public var backendConnect: TimeAmount
    /// With no byte read from or written to the client; the connection is closed.
    public var idle: TimeAmount

    /// Creates time limits.
    /// - Parameters:
    ///   - handshake: TLS handshake limit (10 s by default).
    ///   - backendConnect: Backend connect limit (5 s by default).
    ///   - idle: Idle limit (5 min by default).
    public init(handshake: TimeAmount = .seconds(10), backendConnect: TimeAmount = .seconds(5), idle: TimeAmount = .minutes(5)) {
        self.handshake = handshake
        self.backendConnect = backendConnect
        self.idle = idle
    }
}

/// TLS settings of a frontend. Certificates come from the ``CertificateSet``, chosen per handshake by SNI; every
/// certificate gets one prebuilt `NIOSSLContext` per distinct settings value (see ``CertificateSet/prepareContexts(for:)``).
public struct ProxyTLSSettings: Sendable, Hashable {
    /// ALPN protocols offered, in preference order (e.g. `["h2", "http/1.1"]`); empty for none.
    public var applicationProtocols: [String]
    /// The lowest protocol version accepted (TLS 1.2 by default; TLS 1.3 is always allowed).
    public var minimumVersion: TLSVersion

    /// TLS 1.2 suites: ECDHE key exchange with AES-GCM or ChaCha20-Poly1305 only (TLS 1.3 suites are fixed by
    /// BoringSSL and all modern).
    public static let modernTLS12Ciphers = [
        "ECDHE-ECDSA-AES128-GCM-SHA256", "ECDHE-RSA-AES128-GCM-SHA256",
        "ECDHE-ECDSA-AES256-GCM-SHA384", "ECDHE-RSA-AES256-GCM-SHA384",
        "ECDHE-ECDSA-CHACHA20-POLY1305", "ECDHE-RSA-CHACHA20-POLY1305",
    ].joined(separator: ":")

    /// Creates TLS settings.
    /// - Parameters:
    ///   - applicationProtocols: ALPN protocols offered.
    ///   - minimumVersion: Lowest accepted version; `.tlsv12` or `.tlsv13`.
    public init(applicationProtocols: [String] = [], minimumVersion: TLSVersion = .tlsv12) {
        self.applicationProtocols = applicationProtocols
        self.minimumVersion = minimumVersion
    }

    /// The server configuration for one certificate: TLS 1.2 (or 1.3) to 1.3, modern TLS 1.2 suites, the ALPN list.
    /// - Parameters:
    ///   - certificateChain: Leaf then intermediates.
    ///   - privateKey: The leaf's key.
    public func makeTLSConfiguration(certificateChain: [NIOSSLCertificate], privateKey: NIOSSLPrivateKey) -> TLSConfiguration {
        var configuration = TLSConfiguration.makeServerConfiguration(
            certificateChain: certificateChain.map { .certificate($0) }, privateKey: .privateKey(privateKey))
        configuration.minimumTLSVersion = minimumVersion == .tlsv13 ? .tlsv13 : .tlsv12
        configuration.maximumTLSVersion = .tlsv13
        configuration.cipherSuites = Self.modernTLS12Ciphers
        configuration.applicationProtocols = applicationProtocols
        return configuration
    }
}

/// One listening address of the proxy and where its connections go.
public struct ProxyFrontend: Sendable {
    /// A short name for logs and stats.
    public var name: String
    /// The address to bind (`0.0.0.0`, `::`, `127.0.0.1`, …).
    public var host: String
    /// The port to bind; 0 picks a free one (see ``ProxyServer/boundPorts``).
    public var port: Int
    /// TLS termination settings; `nil` relays plain TCP.
    public var tls: ProxyTLSSettings?
    /// The servers and how they are chosen.
    public var pool: ProxyBackendPool
    /// Time limits.
    public var timeouts: ProxyTimeouts
    /// Open client connections at most; `nil` for no limit. Connections beyond it are accepted and closed at
    /// once (not queued), so a flood never fills the listen backlog with connections that would wait.
    public var maxConnections: Int?
    /// Plain-HTTP mode (`mode: http`): answer ACME http-01 challenges and redirect the rest to https instead of
    /// relaying; `tls` and `pool` are then unused. See ``ProxyHTTPSettings``.
    public var http: ProxyHTTPSettings? = nil
    /// MQTT options: CONNECT validation (`require_mqtt_connect`) and stickiness by client id. Off by default.
    public var mqtt = MQTTSettings()

    /// The servers' addresses, in configuration order. Setting it replaces the pool with plain round-robin.
    public var backends: [ProxyBackend] {
        get { pool.servers.map(\.address) }
        set { pool = ProxyBackendPool(addresses: newValue) }
    }

    /// Creates a frontend that relays round-robin to `backends`.
    /// - Parameters:
    ///   - name: Name for logs and stats.
    ///   - host: Bind address.
    ///   - port: Bind port (0 for any free port).
    ///   - tls: TLS settings, or `nil` for plain TCP.
    ///   - backends: Backends, round-robin.
    ///   - timeouts: Time limits.
    public init(
        name: String, host: String, port: Int, tls: ProxyTLSSettings? = ProxyTLSSettings(), backends: [ProxyBackend],
        timeouts: ProxyTimeouts = ProxyTimeouts()
    ) {
        self.init(name: name, host: host, port: port, tls: tls, pool: ProxyBackendPool(addresses: backends), timeouts: timeouts)
    }

    /// Creates a frontend with a full backend pool (weights, backups, health checks, PROXY protocol).
    /// - Parameters:
    ///   - name: Name for logs and stats.
    ///   - host: Bind address.
    ///   - port: Bind port (0 for any free port).
    ///   - tls: TLS settings, or `nil` for plain TCP.
    ///   - pool: The servers and how they are chosen.
    ///   - timeouts: Time limits.
    ///   - maxConnections: Open client connections at most, or `nil`.
    public init(
        name: String, host: String, port: Int, tls: ProxyTLSSettings? = ProxyTLSSettings(), pool: ProxyBackendPool,
        timeouts: ProxyTimeouts = ProxyTimeouts(), maxConnections: Int? = nil
    ) {
        self.name = name
        self.host = host
        self.port = port
        self.tls = tls
        self.pool = pool
        self.timeouts = timeouts
        self.maxConnections = maxConnections
    }
}

/// Proxy failures, one line each.
public enum ProxyError: Error, Sendable, CustomStringConvertible, Equatable {
    /// No certificate is loaded for a handshake.
    case noCertificate(serverName: String?)
    /// A frontend has no backend.
    case noBackends(frontend: String)
    /// Binding a frontend failed.
    case bindFailed(frontend: String, address: String, reason: String)
    /// The TLS context of a frontend could not be built.
    case tlsContext(frontend: String, reason: String)
    /// Two frontends share a name.
    case duplicateFrontend(name: String)
    /// Two servers of a frontend share a name.
    case duplicateServer(frontend: String, server: String)
    /// The proxy is not running (not started yet, or shut down).
    case notRunning
    /// Another reconfiguration is still running.
    case reconfigurationInProgress

    /// One line.
    public var description: String {
        switch self {
        case .noCertificate(let serverName):
            return "no certificate loaded for server name \(serverName ?? "(none)")"
        case .noBackends(let frontend):
            return "frontend \(frontend) has no backends"
        case .bindFailed(let frontend, let address, let reason):
            return "frontend \(frontend) cannot listen on \(address): \(reason)"
        case .tlsContext(let frontend, let reason):
            return "frontend \(frontend): cannot build the TLS context: \(reason)"
        case .duplicateFrontend(let name):
            return "two frontends are named \(name)"
        case .duplicateServer(let frontend, let server):
            return "frontend \(frontend) has two servers named \(server)"
        case .notRunning:
            return "the proxy is not running"
        case .reconfigurationInProgress:
            return "another proxy reconfiguration is still running"
        }
    }
}
