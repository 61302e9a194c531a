import CertProxy
import CertStore
import CertkeeperConfig
import ClusterTrust
import Foundation
import Logging
import PeerSync
import Renewal
import ServiceLifecycle

/// `certkeeper daemon` as a set of services: internal-CA renewal, the proxy, peer sync, stats and the SIGHUP
/// reload, built from one ``NodeContext`` (one store for all of them) and run under one `ServiceGroup`.
public enum DaemonAgent {
    /// Prepares the store and builds every service the configuration asks for; binds the listeners that report a
    /// port in use before anything starts (the peer API).
    /// - Parameter configPath: The file SIGHUP re-reads.
    /// - Throws: ``AgentError``: configuration problems (a wrong identity, nothing to run) or failures (the state
    ///   directory, a port in use).
    public static func services(_ context: NodeContext, configPath: String) async throws(AgentError) -> [ServiceGroupConfiguration.ServiceConfiguration] {
        let (configuration, store, logger) = (context.configuration, context.store, context.logger)
        // The proxy watches live/ and peer sync watches live/ and accounts/ from the start, so a new state
        // directory is laid out before anything watches it (the first certificate may arrive a moment later).
        do {
            try store.prepare()
        } catch {
            throw .failure("state_dir: \(error)")
        }
        store.removeStaleTemporaries()
        var services: [ServiceGroupConfiguration.ServiceConfiguration] = []

        // issuer: internal certificates are renewed here (on the renewer, or a single node); ACME stays with cron.
        let internalRenewal = InternalRenewalService.make(renewer: context.makeRenewer(), logger: logger)
        let proxy: ProxyService?
        do {
            proxy = try DaemonProxy.make(configuration, store: store, logger: logger, issuingAtStart: internalRenewal != nil)
        } catch {
            throw .failure("proxy: \(error)")
        }
        if let proxy { services.append(.init(service: proxy)) }
        if let internalRenewal { services.append(.init(service: internalRenewal)) }

        if let cluster = configuration.cluster {
            let identityPath = cluster.identityFile(stateDirectory: configuration.stateDirectory)
            // `cluster join` writes it atomically; a join killed mid-write leaves its temporary beside it.
            let identityURL = URL(fileURLWithPath: identityPath)
            AtomicFile.removeStaleTemporaries(in: identityURL.deletingLastPathComponent().path, of: identityURL.lastPathComponent)
            guard let credentials = try context.clusterCredentials() else { return services }
            let identity = credentials.current.identity
            guard identity.nodeName == context.nodeName else {
                throw .configuration(["cluster.identity: \(identityPath) is node '\(identity.nodeName)', but this node is '\(context.nodeName)' (node_name)"])
            }
            let setup = PeerSyncService.Setup(
                configuration: configuration, cluster: cluster, nodeName: context.nodeName, store: store,
                credentials: credentials, environment: context.environment, logger: logger)
            do {
                services.append(.init(service: try await PeerSyncService.prepare(setup)))
            } catch {
                throw .failure("\(error)")
            }
        }
        guard !services.isEmpty else {
            throw .configuration(["nothing to run: the configuration has no cluster: section, no proxy.frontends and no certificate with issuer: internal"])
        }
        if let stats = configuration.stats {
            services.append(.init(service: DaemonStats.make(stats, proxy: proxy, store: store, logger: logger)))
        }
        services.append(.init(service: ConfigReloadService(path: configPath, running: configuration, proxy: proxy, store: store, logger: logger)))
        return services
    }
}
