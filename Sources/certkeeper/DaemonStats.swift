import CertProxy
import CertStats
import CertkeeperConfig
import CoreMetrics
import Foundation
import Logging
import Prometheus

/// The daemon's stats listener, built from `stats:`.
enum DaemonStats {
    /// The stats service: `/metrics`, `/status.json` and the status page, from the proxy's snapshot and the
    /// certificates it serves, taken at each request.
    ///
    /// Also bootstraps swift-metrics with a Prometheus factory over the registry `/metrics` appends, so anything
    /// in the process that records through swift-metrics is exported too (once per process: the daemon's).
    /// - Parameters:
    ///   - settings: `stats:`.
    ///   - proxy: The running proxy, or `nil` (then only swift-metrics values are shown).
    ///   - logger: Where the listener logs.
    static func make(_ settings: StatsSettings, proxy: ProxyService?, logger: Logger) -> StatsService {
        let registry = PrometheusCollectorRegistry()
        MetricsSystem.bootstrap(PrometheusMetricsFactory(registry: registry))
        let endpoints = StatsEndpoints(pathPrefix: settings.pathPrefix, registry: registry) {
            let certificates = proxy.map { proxy in proxy.certificates.names.compactMap(proxy.certificates.entry(named:)) } ?? []
            return StatsReport(frontends: proxy?.snapshot() ?? [], certificates: certificates, now: Date())
        }
        return StatsService(host: settings.listen.host, port: settings.listen.port, endpoints: endpoints, logger: logger)
    }
}
