import CertProxy
import Foundation

/// Everything the stats endpoints show, taken at one moment: the proxy's frontends with their backends and servers,
/// and the certificates served.
///
/// `/metrics`, `/status.json` and the status page all render the same report, so they always agree. Build it from
/// ``ProxyServer/snapshot()`` with ``init(frontends:certificates:now:)``; the time is a parameter so tests can fix
/// "seconds left".
public struct StatsReport: Sendable, Codable, Equatable {
    /// When the report was taken.
    public var generatedAt: Date
    /// The proxy's frontends, in configuration order (empty without a proxy).
    public var frontends: [FrontendStatus]
    /// The certificates the proxy serves (without a proxy: the store's installed ones), by name.
    public var certificates: [CertificateStatus]

    /// Creates a report from parts.
    public init(generatedAt: Date, frontends: [FrontendStatus], certificates: [CertificateStatus]) {
        self.generatedAt = generatedAt
        self.frontends = frontends
        self.certificates = certificates
    }

    /// Takes a report from the proxy's snapshot and the certificates it serves.
    /// - Parameters:
    ///   - frontends: ``ProxyServer/snapshot()`` (or ``ProxyService/snapshot()``).
    ///   - certificates: The entries of the proxy's ``CertificateSet``.
    ///   - now: The time "seconds left" is counted from.
    public init(frontends: [ProxyFrontendSnapshot], certificates: [CertificateEntry], now: Date) {
        self.init(
            generatedAt: now, frontends: frontends.map(FrontendStatus.init),
            certificates: certificates.map { CertificateStatus($0, now: now) }.sorted { $0.name < $1.name })
    }
}

/// One frontend: its listener's counters and its backend.
public struct FrontendStatus: Sendable, Codable, Equatable {
    /// Whether it takes new connections, as HAProxy shows a frontend.
    public enum State: String, Sendable, Codable, Equatable {
        /// Accepting.
        case open
        /// `maxconn` connections are open: new ones are closed at once.
        case full
    }

    /// The frontend's name.
    public var name: String
    /// The port it listens on.
    public var port: Int
    /// ``State/full`` while `maxconn` connections are open.
    public var state: State
    /// Client connections open now.
    public var activeConnections: Int
    /// Client connections accepted since it was bound.
    public var totalConnections: Int
    /// Connections refused because `maxconn` was reached.
    public var refusedConnections: Int
    /// Clients closed because no server could take them.
    public var noServerClosures: Int
    /// TLS handshakes that failed or timed out.
    public var handshakeFailures: Int
    /// `maxconn`, if set.
    public var maxConnections: Int?
    /// Bytes from clients relayed to servers (counted as each connection closes).
    public var bytesIn: Int
    /// Bytes from servers relayed to clients (counted as each connection closes).
    public var bytesOut: Int
    /// The servers behind it.
    public var backend: BackendStatus

    /// Creates a frontend status from parts; the state follows from the connections and `maxconn`.
    public init(
        name: String, port: Int, activeConnections: Int, totalConnections: Int, refusedConnections: Int,
        noServerClosures: Int, handshakeFailures: Int, maxConnections: Int?, bytesIn: Int, bytesOut: Int,
        backend: BackendStatus
    ) {
        self.name = name
        self.port = port
        self.state = maxConnections.map { activeConnections >= $0 } == true ? .full : .open
        self.activeConnections = activeConnections
        self.totalConnections = totalConnections
        self.refusedConnections = refusedConnections
        self.noServerClosures = noServerClosures
        self.handshakeFailures = handshakeFailures
        self.maxConnections = maxConnections
        self.bytesIn = bytesIn
        self.bytesOut = bytesOut
        self.backend = backend
    }

    init(_ snapshot: ProxyFrontendSnapshot) {
        let servers = snapshot.servers.map(ServerStatus.init)
        self.init(
            name: snapshot.name, port: snapshot.port, activeConnections: snapshot.activeConnections,
            totalConnections: snapshot.totalConnections, refusedConnections: snapshot.refusedConnections,
            noServerClosures: snapshot.noServerClosures, handshakeFailures: snapshot.handshakeFailures,
            maxConnections: snapshot.maxConnections, bytesIn: servers.reduce(0) { $0 + $1.bytesToServer },
            bytesOut: servers.reduce(0) { $0 + $1.bytesFromServer },
            backend: BackendStatus(balance: snapshot.balance.rawValue, servers: servers))
    }
}

/// A frontend's servers, taken together.
public struct BackendStatus: Sendable, Codable, Equatable {
    /// Up or down, as HAProxy shows a backend.
    public enum State: String, Sendable, Codable, Equatable {
        /// At least one server is up.
        case up
        /// Every server is down: clients are closed at once.
        case down
        /// The frontend has no servers (an http frontend answering ACME challenges itself).
        case none
    }

    /// `roundrobin`, `leastconn` or `first`.
    public var balance: String
    /// ``State/up`` when any server is up.
    public var state: State
    /// How many servers are up.
    public var serversUp: Int
    /// The servers, in configuration order.
    public var servers: [ServerStatus]

    /// Creates a backend status; the state follows from the servers.
    public init(balance: String, servers: [ServerStatus]) {
        self.balance = balance
        self.servers = servers
        self.serversUp = servers.filter { $0.state == .up }.count
        self.state = servers.isEmpty ? .none : serversUp > 0 ? .up : .down
    }
}

/// One server of a backend.
public struct ServerStatus: Sendable, Codable, Equatable {
    /// Up (gets new connections) or down (its health check failed).
    public enum State: String, Sendable, Codable, Equatable {
        /// Gets new connections.
        case up
        /// Gets none.
        case down
    }

    /// The server's name.
    public var name: String
    /// `host:port`.
    public var address: String
    /// Up or down.
    public var state: State
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
    /// Bytes sent to it (counted as each connection closes).
    public var bytesToServer: Int
    /// Bytes received from it (counted as each connection closes).
    public var bytesFromServer: Int
    /// The last health check; `nil` before the first or without a check.
    public var lastCheck: CheckStatus?

    /// Creates a server status from parts.
    public init(
        name: String, address: String, state: State, checked: Bool, backup: Bool, local: Bool, weight: Int,
        activeConnections: Int, totalConnections: Int, connectFailures: Int, bytesToServer: Int, bytesFromServer: Int,
        lastCheck: CheckStatus?
    ) {
        self.name = name
        self.address = address
        self.state = state
        self.checked = checked
        self.backup = backup
        self.local = local
        self.weight = weight
        self.activeConnections = activeConnections
        self.totalConnections = totalConnections
        self.connectFailures = connectFailures
        self.bytesToServer = bytesToServer
        self.bytesFromServer = bytesFromServer
        self.lastCheck = lastCheck
    }

    init(_ snapshot: ProxyServerSnapshot) {
        self.init(
            name: snapshot.name, address: snapshot.address, state: snapshot.state == .up ? .up : .down,
            checked: snapshot.checked, backup: snapshot.backup, local: snapshot.local, weight: snapshot.weight,
            activeConnections: snapshot.activeConnections, totalConnections: snapshot.totalConnections,
            connectFailures: snapshot.connectFailures, bytesToServer: snapshot.bytesToServer,
            bytesFromServer: snapshot.bytesFromServer, lastCheck: snapshot.lastCheck.map(CheckStatus.init))
    }
}

/// The result of a server's last health check.
public struct CheckStatus: Sendable, Codable, Equatable {
    /// Whether it passed.
    public var passed: Bool
    /// What was seen: `connected`, `status 200`, `connection refused`, …
    public var detail: String
    /// When it finished.
    public var time: Date
    /// How long it took, in seconds.
    public var durationSeconds: Double

    /// Creates a check status from parts.
    public init(passed: Bool, detail: String, time: Date, durationSeconds: Double) {
        self.passed = passed
        self.detail = detail
        self.time = time
        self.durationSeconds = durationSeconds
    }

    init(_ result: ProxyCheckResult) {
        let parts = result.duration.components
        self.init(
            passed: result.passed, detail: result.detail, time: result.time,
            durationSeconds: Double(parts.seconds) + Double(parts.attoseconds) / 1e18)
    }
}

/// One certificate the proxy serves.
public struct CertificateStatus: Sendable, Codable, Equatable {
    /// The set name (`live/<name>`).
    public var name: String
    /// The leaf's serial, lowercase hex.
    public var serial: String
    /// The leaf's SHA-256, lowercase hex.
    public var sha256: String
    /// The leaf's DNS names.
    public var dnsNames: [String]
    /// The end of the leaf's validity.
    public var notAfter: Date
    /// Whole seconds from the report's time to `notAfter`; negative once expired.
    public var secondsLeft: Int

    /// Creates a certificate status from parts.
    public init(name: String, serial: String, sha256: String, dnsNames: [String], notAfter: Date, secondsLeft: Int) {
        self.name = name
        self.serial = serial
        self.sha256 = sha256
        self.dnsNames = dnsNames
        self.notAfter = notAfter
        self.secondsLeft = secondsLeft
    }

    /// Creates a certificate status whose ``secondsLeft`` is counted from `now`.
    public init(name: String, serial: String, sha256: String, dnsNames: [String], notAfter: Date, now: Date) {
        self.init(
            name: name, serial: serial, sha256: sha256, dnsNames: dnsNames, notAfter: notAfter,
            secondsLeft: Int(notAfter.timeIntervalSince(now).rounded(.down)))
    }

    init(_ entry: CertificateEntry, now: Date) {
        self.init(
            name: entry.name, serial: entry.serialHex, sha256: entry.sha256Hex, dnsNames: entry.dnsNames,
            notAfter: entry.notAfter, now: now)
    }
}
