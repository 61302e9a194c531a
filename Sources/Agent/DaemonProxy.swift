import CertProxy
import CertStore
import CertkeeperConfig
import Durations
import Foundation
import Logging
import NIOCore

/// The daemon's proxy, built from `proxy:`.
public enum DaemonProxy {
    /// The proxy service, or `nil` when the configuration has no frontends.
    /// - Parameter issuingAtStart: the daemon issues missing internal certificates as it starts, so an empty
    ///   store is expected rather than a problem.
    public static func make(_ configuration: CertkeeperConfiguration, store: CertificateStore, logger: Logger, issuingAtStart: Bool = false) throws -> ProxyService? {
        guard let settings = configuration.proxy, !settings.frontends.isEmpty else { return nil }
        let certificates = CertificateSet(defaultName: settings.defaultCertificate)
        // The store swaps live/<name> with one rename, so there is no burst of writes to wait out: 10 ms is enough.
        let reloader = CertificateReloader(sources: [.store(root: store.root)], certificates: certificates, debounce: .milliseconds(10), logger: logger)
        for refused in reloader.loadAll() {
            logger.warning("certificate not served", metadata: ["error": "\(refused)"])
        }
        if certificates.names.isEmpty, settings.frontends.contains(where: { $0.mode == .tls }) {
            if issuingAtStart {
                logger.info("no certificate in the store yet; the internal CA issues the missing ones now")
            } else {
                logger.warning("no certificate in the store yet; TLS frontends refuse handshakes until one is installed")
            }
        }
        return ProxyService(
            frontends: frontends(configuration, store: store, logger: logger), certificates: certificates, reloader: reloader,
            threads: settings.threads ?? System.coreCount, grace: .clampedSeconds(settings.grace), logger: logger)
    }

    /// The proxy's frontends for `settings`.
    public static func frontends(_ settings: ProxySettings) -> [ProxyFrontend] {
        settings.frontends.map { frontend in
            var proxied = ProxyFrontend(
                name: frontend.name, host: frontend.listen.host, port: frontend.listen.port,
                tls: frontend.mode == .tls
                    ? ProxyTLSSettings(applicationProtocols: frontend.alpn, minimumVersion: frontend.minimumTLS13 ? .tlsv13 : .tlsv12)
                    : nil,
                pool: ProxyBackendPool(
                    servers: frontend.servers.map { server(frontend, $0) },
                    balance: balance(frontend.balance),
                    preferLocal: frontend.preferLocal, proxyProtocol: frontend.proxyProtocol,
                    onMarkedDown: frontend.onMarkedDown == .shutdownSessions ? .shutdownSessions : .keepSessions),
                timeouts: ProxyTimeouts(
                    handshake: amount(frontend.handshakeTimeout), backendConnect: amount(frontend.connectTimeout),
                    idle: amount(frontend.idleTimeout)),
                maxConnections: frontend.maxConnections)
            proxied.mqtt = mqtt(frontend.mqtt)
            return proxied
        }
    }

    /// The proxy's balancing for a configured one: every configured value has its own (no default: a value the
    /// configuration accepts and the proxy lacks would not compile).
    static func balance(_ configured: CertkeeperConfig.FrontendSettings.Balance) -> ProxyBalance {
        switch configured {
        case .roundrobin: .roundRobin
        case .leastconn: .leastConnections
        case .first: .first
        }
    }

    /// `require_mqtt_connect`, `stick: mqtt_client_id` and their limits.
    static func mqtt(_ settings: MQTTFrontendSettings) -> MQTTSettings {
        MQTTSettings(
            requireConnect: settings.requireConnect, connectDeadline: amount(settings.connectTimeout),
            maxPacketSize: settings.maxConnectSize, stickByClientID: settings.stickByClientID,
            stickExpiry: .clampedSeconds(settings.stickExpire), stickTableSize: settings.stickTableSize)
    }

    /// One `backends[]` entry as a proxy server; its check is its own, the frontend's, or none.
    static func server(_ frontend: CertkeeperConfig.FrontendSettings, _ server: BackendServerSettings) -> ProxyBackendServer {
        let check: HealthCheckSettings?
        switch server.check {
        case .inherit: check = frontend.check
        case .disabled: check = nil
        case .custom(let own): check = own
        }
        return ProxyBackendServer(
            name: server.name, address: ProxyBackend(host: server.address.host, port: server.address.port), weight: server.weight,
            backup: server.backup, local: server.local, maxConnections: server.maxConnections, proxyProtocol: server.proxyProtocol,
            check: check.map(healthCheck))
    }

    static func healthCheck(_ check: HealthCheckSettings) -> ProxyHealthCheck {
        let kind: ProxyHealthCheck.Kind
        switch check.kind {
        case .tcp: kind = .tcp
        case .tls: kind = .tls
        case .http: kind = .http(method: check.method, path: check.path, expectStatus: check.expectStatus)
        }
        return ProxyHealthCheck(
            kind: kind, port: check.port, interval: amount(check.interval), timeout: check.timeout.map(amount), fall: check.fall,
            rise: check.rise)
    }

    static func amount(_ seconds: Double) -> TimeAmount { TimeAmount(Duration.clampedSeconds(seconds)) }
}

