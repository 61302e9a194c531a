import Agent
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
        let context = NodeContext(configuration: try global.loadConfiguration(), logger: global.logger)
        let path = ConfigLoader.resolvePath(explicit: global.config, environment: ProcessInfo.processInfo.environment)
        let services = try await agentCommand { () async throws(AgentError) in try await DaemonAgent.services(context, configPath: path) }
        let group = ServiceGroup(configuration: .init(services: services, gracefulShutdownSignals: [.sigterm, .sigint], logger: context.logger))
        do {
            try await group.run()
        } catch {
            throw CommandFailure.failure("\(error)")
        }
    }
}
