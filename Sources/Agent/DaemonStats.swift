import CertProxy
import CertStats
import CertStore
import CertkeeperConfig
import CoreMetrics
import Foundation
import Logging
import Prometheus

/// The daemon's stats listener, built from `stats:`.
public enum DaemonStats {
    /// The stats service: `/metrics`, `/status.json` and the status page, from the proxy's snapshot and the
    /// certificates it serves, taken at each request.
    ///
    /// Also bootstraps swift-metrics with a Prometheus factory over the registry `/metrics` appends, so anything
    /// in the process that records through swift-metrics is exported too (once per process: the daemon's).
    /// - Parameters:
    ///   - settings: `stats:`.
    ///   - proxy: The running proxy, or `nil`: then the certificates shown are the store's installed ones (read
    ///     from their `meta.json` at each request) and there are no frontends.
    ///   - store: The certificate store.
    ///   - logger: Where the listener logs.
    public static func make(_ settings: StatsSettings, proxy: ProxyService?, store: CertificateStore, logger: Logger) -> StatsService {
        let registry = PrometheusCollectorRegistry()
        MetricsSystem.bootstrap(PrometheusMetricsFactory(registry: registry))
        let endpoints = StatsEndpoints(pathPrefix: settings.pathPrefix, registry: registry) {
            let now = Date()
            guard let proxy else {
                return StatsReport(generatedAt: now, frontends: [], certificates: installedCertificates(store, now: now))
            }
            let certificates = proxy.certificates.names.compactMap(proxy.certificates.entry(named:))
            return StatsReport(frontends: proxy.snapshot(), certificates: certificates, now: now)
        }
        return StatsService(host: settings.listen.host, port: settings.listen.port, endpoints: endpoints, logger: logger)
    }

    /// The live certificates of the store, from their meta records (a certbot-style entry without one is left out).
    static func installedCertificates(_ store: CertificateStore, now: Date) -> [CertificateStatus] {
        let names = (try? store.installedNames()) ?? []
        return names.compactMap { name in
            guard let meta = try? store.meta(name: name) else { return nil }
            return CertificateStatus(name: name, serial: meta.serial, sha256: meta.sha256, dnsNames: meta.domains, notAfter: meta.notAfter, now: now)
        }
    }
}
