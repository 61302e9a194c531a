import ClusterTrust
import CoreMetrics
import Foundation
import Logging
import LogThrottle

/// Follows one peer: a long-poll on its catalogue, and for every certificate it holds that is newer than this
/// node's, a pull through the ``SyncInstaller``.
///
/// Every answer carries the whole catalogue, so each one is also an anti-entropy pass: a missed change, a restart
/// on either side, or a node restored from an old backup converges on the next answer, at the latest after the
/// anti-entropy interval (the long-poll never waits longer than that). While the peer is unreachable, retries back
/// off from 250 ms to 1 s, so a peer that comes back is noticed within about a second (a refused connection costs a
/// few bytes; a silent host costs the 3 s connect timeout per try anyway); the loss and the recovery are logged once
/// each.
public struct PeerFollower: Sendable {
    /// Retry delays after failures, the last one repeating.
    public static let retryDelays: [Duration] = [.milliseconds(250), .milliseconds(500), .seconds(1)]
    /// How often a peer that refuses this node (403) is asked again.
    public static let refusedRetry: Duration = .seconds(30)

    let client: PeerClient
    let installer: SyncInstaller
    let directory: PeerDirectory
    let longPoll: Duration
    let logger: Logger
    let clock: @Sendable () -> Date
    let credentials: ClusterCredentials?
    let announce: @Sendable () -> Void
    private let refusedLists = WarningThrottle(interval: .seconds(600))

    /// Creates a follower for one peer.
    /// - Parameters:
    ///   - longPoll: The longest the peer is asked to hold a query: `min(long_poll, anti_entropy)`.
    ///   - credentials: Where a newer revocation list from the peer is installed.
    ///   - announce: Called after such an install, so that this node's own followers hear of it (the change index).
    public init(
        client: PeerClient, installer: SyncInstaller, directory: PeerDirectory, longPoll: Duration, logger: Logger,
        clock: @escaping @Sendable () -> Date = Date.init, credentials: ClusterCredentials? = nil, announce: @escaping @Sendable () -> Void = {}
    ) {
        self.announce = announce
        self.client = client
        self.installer = installer
        self.directory = directory
        self.longPoll = longPoll
        self.logger = logger
        self.clock = clock
        self.credentials = credentials
    }

    /// Runs until the task is cancelled.
    public func run() async {
        var log = logger
        log[metadataKey: "peer"] = "\(client.peerName)"
        var known: SyncIndex?
        var failures = 0
        var askedForInternalCA = false
        var refusedLogged = false
        while !Task.isCancelled {
            do {
                let catalog = try await client.catalog(after: known, wait: known == nil ? .zero : longPoll)
                if directory.reached(client.peerName, catalog: catalog, at: clock()) {
                    log.info("peer reachable", metadata: ["peer.role": "\(catalog.role)", "peer.certificates": "\(catalog.certificates.count)"])
                }
                // Exported on /metrics (when the daemon has a stats: section): alert on renewers > 1.
                Gauge(label: "certkeeper_cluster_renewers").record(directory.renewers.count)
                if let renewers = directory.renewerConflictChange() {
                    if renewers.isEmpty {
                        log.notice("only one node is the renewer again")
                    } else {
                        log.error(
                            "more than one node is the renewer: each issues on its own (internal certificates from different roots, duplicate ACME orders); keep role: renewer on one node and make the others follower or standby",
                            metadata: ["cluster.renewers": "\(renewers.joined(separator: ","))"])
                    }
                }
                failures = 0
                refusedLogged = false
                // A restarted peer (new epoch) may have a new configuration: ask it for the internal CA again.
                if let known, known.epoch != catalog.index.epoch { askedForInternalCA = false }
                adoptRevocations(catalog, logger: log)
                await reconcile(catalog)
                if catalog.role == "renewer", !askedForInternalCA, await installer.needsInternalCA {
                    // Until it is had or refused (the renewer does not list this node as a standby); a renewer
                    // without a CA yet is asked again at its next answer (its first install moves its index).
                    askedForInternalCA = await installer.adoptInternalCA(from: client) != .unavailable
                }
                known = catalog.index
            } catch {
                if Task.isCancelled { return }
                if error.isRefusal {
                    // Alive, but it does not list this node (or sees it from another address): a configuration
                    // error to fix there, not a reason to take over. Said once; asked again every 30 s.
                    directory.failed(client.peerName, error: "\(error)", at: clock(), refusing: true)
                    if !refusedLogged {
                        log.error("peer refuses this node (403): add this node, at the address it connects from, to that peer's cluster.peers", metadata: ["error": "\(error)"])
                        refusedLogged = true
                    }
                    known = nil
                    // Asked again sooner when this node's credentials change (a new identity after a revocation).
                    let generation = credentials?.current.generation
                    let deadline = ContinuousClock.now + Self.refusedRetry
                    while !Task.isCancelled, ContinuousClock.now < deadline, credentials?.current.generation == generation {
                        try? await Task.sleep(for: .milliseconds(500))
                    }
                    continue
                }
                if directory.failed(client.peerName, error: "\(error)", at: clock()) || failures == 0 {
                    log.warning("peer unreachable; retrying", metadata: ["error": "\(error)"])
                }
                let delay = Self.retryDelays[min(failures, Self.retryDelays.count - 1)]
                failures += 1
                known = nil
                try? await Task.sleep(for: delay)
            }
        }
    }

    /// Installs each of the peer's revocation lists that is newer than this node's list from the same CA and signed
    /// by a trusted cluster CA. A refused one is logged once per signer and ten minutes (during a CA rotation a
    /// peer may carry the list of a CA this node does not trust yet, or no more).
    func adoptRevocations(_ catalog: PeerCatalog, logger: Logger) {
        guard let credentials else { return }
        for signed in (catalog.revocations ?? []).prefix(16) {
            switch credentials.offer(signed, source: "revocation list from peer \(client.peerName)") {
            case .installed(let version, let newlyRevoked, let notSaved):
                var metadata: Logger.Metadata = [
                    "revocations.version": "\(version)", "revocations.signer": "\(signed.signer.prefix(23))",
                    "revoked": "\(newlyRevoked.joined(separator: ","))",
                ]
                if let notSaved { metadata["not_saved"] = "\(notSaved)" }
                logger.notice("installed the cluster's revocation list from a peer", metadata: metadata)
                if notSaved != nil { logger.error("the revocation list is enforced but could not be saved; it is lost at restart unless a peer sends it again", metadata: metadata) }
                announce()
            case .notNewer:
                break
            case .refused(let reason):
                if let heldBack = refusedLists.admit(String(signed.signer.prefix(95))) {
                    var metadata: Logger.Metadata = ["reason": "\(reason)"]
                    if heldBack > 0 { metadata["refusals_not_logged"] = "\(heldBack)" }
                    logger.warning("refused a revocation list from a peer", metadata: metadata)
                }
            }
        }
    }

    /// Pulls whatever the catalogue holds that is newer here, and the ACME account when this node has none.
    public func reconcile(_ catalog: PeerCatalog) async {
        for entry in catalog.certificates {
            if Task.isCancelled { return }
            _ = await installer.consider(entry, from: client)
        }
        if let account = catalog.account {
            _ = await installer.adoptAccount(account, from: client)
        }
    }
}
