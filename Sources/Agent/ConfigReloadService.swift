import CertProxy
import CertStore
import CertkeeperConfig
import Logging
import ServiceLifecycle
import UnixSignals

/// What a SIGHUP can apply of a new configuration, decided without touching anything.
public struct ReloadPlan: Sendable, Equatable {
    /// The proxy's frontends to apply (`nil`: no running proxy to apply them to).
    public var proxyFrontends: ProxySettings?
    /// Whether the new file adds a proxy to a daemon that runs none (it starts at the next restart).
    public var proxyAddedWhileStopped: Bool
    /// Whether settings other than `proxy:` changed (they take effect at the next restart).
    public var otherSettingsChanged: Bool

    /// Compares the running configuration with the new one.
    /// - Parameter proxyRunning: Whether this daemon runs a proxy.
    public static func plan(running: CertkeeperConfiguration, next: CertkeeperConfiguration, proxyRunning: Bool) -> ReloadPlan {
        var unchanged = next
        unchanged.proxy = running.proxy
        let proxyAdded = !proxyRunning && next.proxy?.frontends.isEmpty == false
        return ReloadPlan(
            proxyFrontends: proxyRunning ? (next.proxy ?? ProxySettings(frontends: [])) : nil,
            proxyAddedWhileStopped: proxyAdded, otherSettingsChanged: unchanged != running)
    }
}

/// Re-reads the configuration on SIGHUP and applies what can change while running: the proxy's frontends
/// (listeners, backends, TLS settings, timeouts). Open connections are never closed. A file with errors is logged
/// and ignored. Other sections (cluster, certificates, hooks) take effect at the next start, which is logged.
public struct ConfigReloadService: Service {
    let path: String
    let running: CertkeeperConfiguration
    let proxy: ProxyService?
    let store: CertificateStore
    let logger: Logger

    /// Creates the service for the daemon running `running`, read from `path`.
    /// - Parameter store: The daemon's store (the http-01 frontends read the account key through it).
    public init(path: String, running: CertkeeperConfiguration, proxy: ProxyService?, store: CertificateStore, logger: Logger) {
        self.path = path
        self.running = running
        self.proxy = proxy
        self.store = store
        self.logger = logger
    }

    public func run() async throws {
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
            let plan = ReloadPlan.plan(running: current, next: next, proxyRunning: proxy != nil)
            if plan.otherSettingsChanged {
                logger.notice("settings other than proxy.frontends changed; they take effect when the daemon restarts")
            }
            if let proxy, plan.proxyFrontends != nil {
                let frontends = DaemonProxy.frontends(next, store: store, logger: logger)
                do {
                    try await proxy.reconfigure(frontends: frontends)
                    logger.notice("proxy reconfigured", metadata: ["proxy.frontends": "\(frontends.map(\.name).joined(separator: ","))"])
                    current.proxy = next.proxy
                } catch {
                    logger.error("proxy reconfiguration failed; the running frontends keep serving", metadata: ["error": "\(error)"])
                }
            } else if plan.proxyAddedWhileStopped {
                logger.notice("proxy: added while running; it starts when the daemon restarts")
            }
        }
    }
}

extension ConfigReloadService: CustomStringConvertible {
    /// `ConfigReloadService(/etc/certkeeper/certkeeper.yaml)`: what ServiceLifecycle logs for the service (instead of
    /// a reflected dump of the whole running configuration).
    public var description: String { "ConfigReloadService(\(path))" }
}
