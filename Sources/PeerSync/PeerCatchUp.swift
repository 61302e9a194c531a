import AsyncHTTPClient
import CertStore
import CertkeeperConfig
import Foundation
import Logging
import NIOSSL

/// What a cluster node does before it orders a certificate that is due: asks every reachable peer once for its
/// catalogue and installs what is newer there, exactly as the daemon's peer sync would (verify, install under the
/// store lock, deploy hooks).
///
/// Without it, a renewer whose daemon is down (or has just started) orders a certificate a standby renewed during a
/// takeover, and every node swaps twice; `renew` from cron never asked anyone. Bounded: all peers are asked at once,
/// each for at most `timeout`; an unreachable peer only costs that.
public struct PeerCatchUp: Sendable {
    let configuration: CertkeeperConfiguration
    let cluster: ClusterSettings
    let store: CertificateStore
    let clientTLS: TLSConfiguration
    let environment: [String: String]
    let timeout: Duration
    let logger: Logger

    /// Creates the catch-up for a node's configuration.
    /// - Parameters:
    ///   - clientTLS: This node's side of mutual TLS (its cluster identity).
    ///   - timeout: The longest a peer may take to answer.
    public init(
        configuration: CertkeeperConfiguration, cluster: ClusterSettings, store: CertificateStore, clientTLS: TLSConfiguration,
        environment: [String: String], timeout: Duration = .seconds(5), logger: Logger
    ) {
        self.configuration = configuration
        self.cluster = cluster
        self.store = store
        self.clientTLS = clientTLS
        self.environment = environment
        self.timeout = timeout
        self.logger = logger
    }

    /// Asks the peers and installs what is newer. Never fails: a peer that cannot be asked is logged and skipped.
    /// - Returns: The serials installed.
    @discardableResult
    public func run() async -> [String] {
        guard !cluster.peers.isEmpty else { return [] }
        var configuration = HTTPClient.Configuration(tlsConfiguration: clientTLS)
        configuration.timeout = .init(connect: .seconds(3))
        configuration.httpVersion = .http1Only
        let http = HTTPClient(eventLoopGroupProvider: .singleton, configuration: configuration)
        let installer = SyncInstaller(configuration: self.configuration, store: store, environment: environment, logger: logger)
        let timeout = self.timeout
        let logger = self.logger
        let answers = await withTaskGroup(of: (PeerClient, PeerCatalog?).self) { group in
            for peer in cluster.peers {
                let client = PeerClient(peerName: peer.name, host: peer.address.host, port: peer.address.port, http: http, timeout: timeout)
                group.addTask {
                    do {
                        return (client, try await client.catalog(after: nil, wait: .zero))
                    } catch {
                        logger.info("peer not asked before ordering", metadata: ["peer": "\(peer.name)", "error": "\(error)"])
                        return (client, nil)
                    }
                }
            }
            var answers: [(PeerClient, PeerCatalog)] = []
            for await (client, catalog) in group { if let catalog { answers.append((client, catalog)) } }
            return answers.sorted { $0.0.peerName < $1.0.peerName }
        }
        var installed: [String] = []
        for (client, catalog) in answers {
            for entry in catalog.certificates {
                if case .installed(let serial, _) = await installer.consider(entry, from: client) { installed.append(serial) }
            }
        }
        try? await http.shutdown()
        logger.info("asked the peers before ordering", metadata: [
            "peers.answered": "\(answers.count)", "peers.asked": "\(cluster.peers.count)", "installed": "\(installed.joined(separator: ","))",
        ])
        return installed
    }
}
