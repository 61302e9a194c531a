import AsyncHTTPClient
import CertStore
import CertkeeperConfig
import ClusterTrust
import Durations
import Foundation
import Logging
import NIOCore
import NIOPosix
import NIOSSL
import Renewal
import ServiceLifecycle
import StoreWatch

/// Peer sync on one node, as a ServiceLifecycle service: the peer API (mutual TLS), the inotify watch that moves
/// the change index, one ``PeerFollower`` per peer, and on a standby the ``StandbyTakeover``.
///
/// Build it with ``prepare(_:)``, which binds the peer API, so a port in use is reported before the daemon starts.
/// Graceful shutdown cancels every loop and closes the listener and the client.
public final class PeerSyncService: Service, Sendable {
    /// Everything the service needs.
    public struct Setup: Sendable {
        /// The whole configuration (certificates, hooks, acme, renew).
        public var configuration: CertkeeperConfiguration
        /// The cluster section.
        public var cluster: ClusterSettings
        /// This node's name.
        public var nodeName: String
        /// The store.
        public var store: CertificateStore
        /// This node's identity, the cluster CAs it trusts and the revocation list (re-read when its files change).
        public var credentials: ClusterCredentials
        /// Environment for deploy hooks.
        public var environment: [String: String]
        /// Time source.
        public var clock: @Sendable () -> Date
        /// Logger.
        public var logger: Logger

        /// Creates the setup.
        public init(
            configuration: CertkeeperConfiguration, cluster: ClusterSettings, nodeName: String, store: CertificateStore,
            credentials: ClusterCredentials,
            environment: [String: String], clock: @escaping @Sendable () -> Date = Date.init, logger: Logger
        ) {
            self.configuration = configuration
            self.cluster = cluster
            self.nodeName = nodeName
            self.store = store
            self.credentials = credentials
            self.environment = environment
            self.clock = clock
            self.logger = logger
        }
    }

    /// The peers' last known state (for `status --cluster` and tests).
    public let directory: PeerDirectory
    /// This node's change index.
    public let index: ChangeIndex
    /// The port the peer API listens on.
    public var port: Int { server.port }

    private let setup: Setup
    private let server: PeerAPIServer

    private init(setup: Setup, server: PeerAPIServer, index: ChangeIndex) {
        self.setup = setup
        self.server = server
        self.index = index
        self.directory = PeerDirectory(
            peerNames: setup.cluster.peers.map(\.name), start: setup.clock(), local: (setup.nodeName, setup.cluster.role.rawValue))
    }

    /// Prepares the store and binds the peer API.
    /// - Throws: A one-line error when the store cannot be prepared or the address cannot be bound.
    public static func prepare(_ setup: Setup) async throws -> PeerSyncService {
        try setup.store.prepare()
        var generator = SystemRandomNumberGenerator()
        let index = ChangeIndex(initial: .fresh(using: &generator))
        let listen = setup.cluster.listen
        let server: PeerAPIServer
        do {
            server = try await PeerAPIServer.bind(
                host: listen.host, port: listen.port, credentials: setup.credentials, allowList: PeerAllowList(cluster: setup.cluster), logger: setup.logger)
        } catch {
            throw PeerSyncSetupError("cluster.listen: cannot listen on \(listen): \(error)")
        }
        return PeerSyncService(setup: setup, server: server, index: index)
    }

    /// Runs until graceful shutdown.
    public func run() async throws {
        let setup = self.setup
        var log = setup.logger
        log[metadataKey: "node"] = "\(setup.nodeName)"
        let logger = log
        let credentials = setup.credentials
        if !credentials.clusterDirectory.isEmpty {
            // Watched below; with cluster.identity elsewhere nothing else may have created it.
            try? FileManager.default.createDirectory(atPath: credentials.clusterDirectory, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        }
        let local = LocalNode(
            name: setup.nodeName, role: setup.cluster.role.rawValue, store: setup.store, acmeDirectoryURL: setup.configuration.acme.directoryURL,
            credentials: credentials)
        let longPoll = Duration.clampedSeconds(min(setup.cluster.longPollTimeout, setup.cluster.antiEntropyInterval))
        let api = PeerAPI(
            local: local, index: index, maximumWait: .seconds(600), internalCAReaders: PeerAllowList(cluster: setup.cluster).internalCAReaders)
        let watcher = StoreWatcher(directories: setup.store.syncedDirectories, debounce: .milliseconds(10), logger: logger)
        let changes = try watcher.changes()
        // `cluster join`, `trust-ca`, `untrust-ca` and `revoke-node` write here: the daemon takes them up at once.
        let credentialDirectories = Array(Set([credentials.clusterDirectory, (credentials.identityPath as NSString).deletingLastPathComponent]))
            .filter { !$0.isEmpty }.sorted()
        let credentialChanges = try StoreWatcher(directories: credentialDirectories, debounce: .milliseconds(50), logger: logger).changes()
        var httpConfiguration = HTTPClient.Configuration(tlsConfiguration: credentials.current.clientTLS)
        httpConfiguration.timeout = .init(connect: .seconds(3))
        httpConfiguration.connectionPool = .init(idleTimeout: .seconds(120))
        httpConfiguration.httpVersion = .http1Only
        // A refused handshake (wrong CA, revoked node) is an answer, not a reason to retry for the whole connect timeout.
        httpConfiguration.connectionPool.retryConnectionEstablishment = false
        let http = HTTPClient(eventLoopGroupProvider: .singleton, configuration: httpConfiguration)
        let installer = SyncInstaller(configuration: setup.configuration, store: setup.store, environment: setup.environment, logger: logger, clock: setup.clock)
        let directory = self.directory
        let index = self.index
        let server = self.server
        logger.info("peer sync started", metadata: [
            "cluster.role": "\(setup.cluster.role.rawValue)", "cluster.listen": "\(setup.cluster.listen.host):\(server.port)",
            "cluster.peers": "\(setup.cluster.peers.map { "\($0.name)@\($0.address)" }.joined(separator: ","))",
        ])
        await cancelWhenGracefulShutdown {
            await withDiscardingTaskGroup { group in
                group.addTask {
                    do {
                        try await server.run(api)
                    } catch is CancellationError {
                        // The graceful shutdown: nothing went wrong.
                    } catch {
                        logger.error("peer API stopped", metadata: ["error": "\(error)"])
                    }
                }
                group.addTask {
                    for await batch in changes {
                        let now = index.bump()
                        logger.debug("store changed", metadata: ["changes": "\(batch)", "index": "\(now)"])
                    }
                }
                group.addTask {
                    for await _ in credentialChanges {
                        do {
                            guard try credentials.reload() else { continue }
                            let current = credentials.current
                            logger.notice("cluster credentials reloaded", metadata: [
                                "cluster.identity": "\(current.identity.fingerprint.prefix(23))",
                                "cluster.trusted_cas": "\(current.anchors.count)",
                                "revocations.lists": "\(current.revocations.count)",
                            ])
                            // Peers long-polling this node get the new revocation list now.
                            index.bump()
                        } catch {
                            logger.error("cluster credentials not reloaded; the running ones stay", metadata: ["error": "\(error)"])
                        }
                    }
                }
                for peer in setup.cluster.peers {
                    let client = PeerClient(
                        peerName: peer.name, host: peer.address.host, port: peer.address.port, http: http, tls: { credentials.current.clientTLS })
                    let follower = PeerFollower(
                        client: client, installer: installer, directory: directory, longPoll: longPoll, logger: logger, clock: setup.clock,
                        credentials: credentials, announce: { _ = index.bump() })
                    group.addTask { await follower.run() }
                }
                if setup.cluster.role == .standby {
                    let renewer = Renewer(
                        configuration: setup.configuration, store: setup.store, nodeName: setup.nodeName, environment: setup.environment,
                        logger: logger, clock: setup.clock,
                        catchUp: {
                            // With the credentials of the moment (a CA rotation may have moved them since start-up).
                            await PeerCatchUp(
                                configuration: setup.configuration, cluster: setup.cluster, store: setup.store,
                                clientTLS: credentials.current.clientTLS, environment: setup.environment, logger: logger
                            ).run()
                        })
                    let check = Duration.clampedSeconds(max(1, min(30, setup.cluster.takeoverAfter / 4)))
                    let takeover = StandbyTakeover(
                        renewer: renewer, directory: directory, takeoverAfter: setup.cluster.takeoverAfter,
                        margin: setup.cluster.takeoverMargin, checkInterval: check, logger: logger, clock: setup.clock)
                    group.addTask { await takeover.run() }
                }
            }
        }
        try? await http.shutdown()
        logger.info("peer sync stopped")
    }
}

/// A setup problem, one line.
public struct PeerSyncSetupError: Error, Sendable, CustomStringConvertible {
    /// The line.
    public var description: String
    init(_ description: String) { self.description = description }
}

extension ClusterCredentials {
    /// The credentials of a cluster node: its identity (`cluster.identity`), and the trusted CAs and revocation list
    /// in `<state_dir>/cluster`.
    public convenience init(configuration: CertkeeperConfiguration, cluster: ClusterSettings, now: Date = Date()) throws(ClusterTrustError) {
        try self.init(
            identityPath: cluster.identityFile(stateDirectory: configuration.stateDirectory),
            clusterDirectory: ClusterPaths.identityDirectory(stateDirectory: configuration.stateDirectory), now: now)
    }
}

extension PeerAllowList {
    /// The nodes in `cluster.peers`, each at its configured address: the clients this node's peer API serves.
    public init(cluster: ClusterSettings) {
        self.init(peers: cluster.peers.map { Peer(name: $0.name, hosts: [$0.address.host], mayFetchInternalCA: $0.role == .standby) })
    }
}
