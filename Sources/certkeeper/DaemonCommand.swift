import ArgumentParser
import CertProxy
import CertStore
import CertkeeperConfig
import ClusterTrust
import Durations
import Foundation
import Logging
import NIOCore
import PeerSync
import Renewal
import ServiceLifecycle
import UnixSignals

struct Daemon: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run peer sync, the built-in proxy and internal-CA renewal until SIGTERM.",
        discussion: """
        Runs what the configuration's cluster: and proxy: sections describe: the peer API and one long-poll per \
        peer (new certificates are pulled, verified, installed and their deploy hooks run), and the proxy's \
        frontends, which serve the store's certificates and pick up every change at once. A stats: section adds \
        a listener on loopback or the private network with /metrics (Prometheus), /status.json and a status \
        page. Certificates with \
        issuer: internal are issued at start when missing and renewed when due (on a single node or the cluster's \
        renewer); ACME certificates are renewed by cron (certkeeper renew). SIGHUP re-reads the \
        configuration and applies the proxy's frontends without closing open connections; a configuration with \
        errors is refused and the running one kept. SIGTERM or SIGINT stops accepting, drains open connections \
        for proxy.grace and exits 0.

        Examples:
          certkeeper daemon
          certkeeper daemon --config /etc/certkeeper/certkeeper.yaml --log-level debug
        """
    )

    @OptionGroup var global: GlobalOptions

    func run() async throws {
        let configuration = try global.loadConfiguration()
        let logger = global.logger
        let nodeName = configuration.nodeName ?? ProcessInfo.processInfo.hostName
        let store = CertificateStore(root: configuration.stateDirectory, keepVersions: configuration.keepVersions, logger: logger)
        // The proxy watches live/ and peer sync watches live/ and accounts/ from the start, so a new state
        // directory is laid out before anything watches it (the first certificate may arrive a moment later).
        do {
            try store.prepare()
        } catch {
            throw CommandFailure.failure("state_dir: \(error)")
        }
        store.removeStaleTemporaries()
        var services: [ServiceGroupConfiguration.ServiceConfiguration] = []

        // issuer: internal certificates are renewed here (on the renewer, or a single node); ACME stays with cron.
        let internalRenewal = InternalRenewalService.make(renewer: global.makeRenewer(configuration), logger: logger)
        let proxy = try DaemonProxy.make(configuration, store: store, logger: logger, issuingAtStart: internalRenewal != nil)
        if let proxy { services.append(.init(service: proxy)) }
        if let internalRenewal { services.append(.init(service: internalRenewal)) }

        if let cluster = configuration.cluster {
            let identityPath = cluster.identityFile(stateDirectory: configuration.stateDirectory)
            // `cluster join` writes it atomically; a join killed mid-write leaves its temporary beside it.
            let identityURL = URL(fileURLWithPath: identityPath)
            AtomicFile.removeStaleTemporaries(in: identityURL.deletingLastPathComponent().path, of: identityURL.lastPathComponent)
            let credentials: ClusterCredentials
            do {
                credentials = try ClusterCredentials(configuration: configuration, cluster: cluster)
            } catch {
                throw CommandFailure.usage(["cluster.identity: \(error)"])
            }
            let identity = credentials.current.identity
            guard identity.nodeName == nodeName else {
                throw CommandFailure.usage(["cluster.identity: \(identityPath) is node '\(identity.nodeName)', but this node is '\(nodeName)' (node_name)"])
            }
            let setup = PeerSyncService.Setup(
                configuration: configuration, cluster: cluster, nodeName: nodeName, store: store,
                credentials: credentials,
                environment: ProcessInfo.processInfo.environment, logger: logger)
            do {
                services.append(.init(service: try await PeerSyncService.prepare(setup)))
            } catch {
                throw CommandFailure.failure("\(error)")
            }
        }
        guard !services.isEmpty else {
            throw CommandFailure.usage(["nothing to run: the configuration has no cluster: section, no proxy.frontends and no certificate with issuer: internal"])
        }
        if let stats = configuration.stats {
            services.append(.init(service: DaemonStats.make(stats, proxy: proxy, store: store, logger: logger)))
        }
        let path = ConfigLoader.resolvePath(explicit: global.config, environment: ProcessInfo.processInfo.environment)
        services.append(.init(service: ConfigReloadService(path: path, running: configuration, proxy: proxy, logger: logger)))

        let group = ServiceGroup(configuration: .init(services: services, gracefulShutdownSignals: [.sigterm, .sigint], logger: logger))
        do {
            try await group.run()
        } catch {
            throw CommandFailure.failure("\(error)")
        }
    }
}

/// The daemon's proxy, built from `proxy:`.
enum DaemonProxy {
    /// The proxy service, or `nil` when the configuration has no frontends.
    /// - Parameter issuingAtStart: the daemon issues missing internal certificates as it starts, so an empty
    ///   store is expected rather than a problem.
    static func make(_ configuration: CertkeeperConfiguration, store: CertificateStore, logger: Logger, issuingAtStart: Bool = false) throws -> ProxyService? {
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
            frontends: frontends(configuration, logger: logger), certificates: certificates, reloader: reloader,
            threads: settings.threads ?? System.coreCount, grace: .clampedSeconds(settings.grace), logger: logger)
    }

    /// The proxy's frontends for `settings`.
    static func frontends(_ settings: ProxySettings) -> [ProxyFrontend] {
        settings.frontends.map { frontend in
            var proxied = ProxyFrontend(
                name: frontend.name, host: frontend.listen.host, port: frontend.listen.port,
                tls: frontend.mode == .tls
                    ? ProxyTLSSettings(applicationProtocols: frontend.alpn, minimumVersion: frontend.minimumTLS13 ? .tlsv13 : .tlsv12)
                    : nil,
                pool: ProxyBackendPool(
                    servers: frontend.servers.map { server(frontend, $0) },
                    balance: ProxyBalance(rawValue: frontend.balance.rawValue) ?? .roundRobin,
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

/// Re-reads the configuration on SIGHUP and applies what can change while running: the proxy's frontends
/// (listeners, backends, TLS settings, timeouts). Open connections are never closed. A file with errors is logged
/// and ignored. Other sections (cluster, certificates, hooks) take effect at the next start, which is logged.
struct ConfigReloadService: Service {
    let path: String
    let running: CertkeeperConfiguration
    let proxy: ProxyService?
    let logger: Logger

    func run() async throws {
        var current = running
        for await _ in await UnixSignalsSequence(trapping: .sighup).cancelOnGracefulShutdown() {
            logger.notice("SIGHUP: re-reading the configuration", metadata: ["config": "\(path)"])
            let next: CertkeeperConfiguration
            do {
                next = try ConfigLoader.load(path: path)
            } catch {
                logger.error("configuration refused; keeping the running one", metadata: ["error": "\(String(describing: error).split(separator: "\n").joined(separator: "; "))"])
                continue
            }
            var unchanged = next
            unchanged.proxy = current.proxy
            if unchanged != current {
                logger.notice("settings other than proxy.frontends changed; they take effect when the daemon restarts")
            }
            if let proxy {
                let frontends = DaemonProxy.frontends(next, logger: logger)
                do {
                    try await proxy.reconfigure(frontends: frontends)
                    logger.notice("proxy reconfigured", metadata: ["proxy.frontends": "\(frontends.map(\.name).joined(separator: ","))"])
                    current.proxy = next.proxy
                } catch {
                    logger.error("proxy reconfiguration failed; the running frontends keep serving", metadata: ["error": "\(error)"])
                }
            } else if next.proxy?.frontends.isEmpty == false {
                logger.notice("proxy: added while running; it starts when the daemon restarts")
            }
        }
    }
}

extension ConfigReloadService: CustomStringConvertible {
    /// `ConfigReloadService(/etc/certkeeper/certkeeper.yaml)`: what ServiceLifecycle logs for the service (instead of
    /// a reflected dump of the whole running configuration).
    var description: String { "ConfigReloadService(\(path))" }
}
