import CertStore
import CertkeeperConfig
import ClusterTrust
import Foundation
import Logging
import PeerSync
import Renewal

/// One node's process: its configuration, its one ``CertStore/CertificateStore`` (the store's in-process install
/// gate and lock queue are per root, but one instance is what every part of a process shares), its resolved node
/// name and its environment. Every command and the daemon build their parts from it.
public struct NodeContext: Sendable {
    /// The validated configuration.
    public let configuration: CertkeeperConfiguration
    /// The store.
    public let store: CertificateStore
    /// `node_name`, else the host name: the one place that rule lives.
    public let nodeName: String
    /// The process environment (passed to hooks).
    public let environment: [String: String]
    /// The logger.
    public let logger: Logger

    /// Creates the context.
    public init(configuration: CertkeeperConfiguration, logger: Logger, environment: [String: String] = ProcessInfo.processInfo.environment) {
        self.configuration = configuration
        self.logger = logger
        self.environment = environment
        self.nodeName = Self.nodeName(configuration)
        self.store = CertificateStore(root: configuration.stateDirectory, keepVersions: configuration.keepVersions, logger: logger)
    }

    /// `node_name`, else this machine's host name.
    public static func nodeName(_ configuration: CertkeeperConfiguration) -> String {
        configuration.nodeName ?? ProcessInfo.processInfo.hostName
    }

    /// The cluster credentials (identity, trusted CAs, revocation lists), or `nil` outside a cluster.
    /// - Throws: ``AgentError`` (configuration) naming the identity file.
    public func clusterCredentials() throws(AgentError) -> ClusterCredentials? {
        guard let cluster = configuration.cluster else { return nil }
        do {
            return try ClusterCredentials(configuration: configuration, cluster: cluster)
        } catch {
            throw .configuration(["cluster.identity: \(error)"])
        }
    }

    /// A renewer for this node. In a cluster it asks the peers before ordering (what a standby or the renewer
    /// already holds); the identity is read then, not here: `status` and a daemon that refuses to start need none.
    public func makeRenewer() -> Renewer {
        let (configuration, store, logger, environment) = (configuration, store, logger, environment)
        var catchUp: (@Sendable () async -> Void)?
        if let cluster = configuration.cluster {
            catchUp = {
                do {
                    let credentials = try ClusterCredentials(configuration: configuration, cluster: cluster)
                    await PeerCatchUp(
                        configuration: configuration, cluster: cluster, store: store, clientTLS: credentials.current.clientTLS,
                        environment: environment, logger: logger
                    ).run()
                } catch {
                    logger.warning("cannot ask the peers before ordering: no cluster identity", metadata: ["error": "\(error)"])
                }
            }
        }
        return Renewer(configuration: configuration, store: store, nodeName: nodeName, environment: environment, logger: logger, catchUp: catchUp)
    }
}
