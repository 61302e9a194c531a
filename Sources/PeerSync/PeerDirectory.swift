import Foundation
import NIOConcurrencyHelpers

/// What this node last heard from each peer: whether it answers, its role, its catalogue.
public final class PeerDirectory: Sendable {
    /// One peer's last known state.
    public struct PeerState: Sendable {
        /// The peer's node name.
        public var name: String
        /// Whether the last request succeeded.
        public var reachable: Bool
        /// When the last request succeeded.
        public var lastContact: Date?
        /// Since when the peer has not answered (nil while reachable).
        public var unreachableSince: Date?
        /// The last error, while unreachable.
        public var lastError: String?
        /// The last catalogue received.
        public var catalog: PeerCatalog?
        /// Whether the peer answers but refuses this node (403): alive, so a standby does not take over from it.
        public var refusing: Bool = false
    }

    private let peers: NIOLockedValueBox<[String: PeerState]>
    private let start: Date
    /// This node's name and role, when it counts itself among the renewers.
    private let local: (name: String, role: String)?
    /// The renewers last reported as a conflict (empty while there is none).
    private let reportedConflict = NIOLockedValueBox<[String]>([])

    /// Starts with every peer unknown since `start` (not yet reached).
    /// - Parameter local: This node's name and role, so that a second renewer among the peers is noticed.
    public init(peerNames: [String], start: Date, local: (name: String, role: String)? = nil) {
        self.start = start
        self.local = local
        peers = NIOLockedValueBox(Dictionary(uniqueKeysWithValues: peerNames.map {
            ($0, PeerState(name: $0, reachable: false, lastContact: nil, unreachableSince: start, lastError: "not contacted yet", catalog: nil))
        }))
    }

    /// Records a successful answer.
    /// - Returns: Whether the peer was unreachable before (to log the recovery once).
    @discardableResult
    public func reached(_ name: String, catalog: PeerCatalog, at now: Date) -> Bool {
        peers.withLockedValue { peers in
            let wasDown = peers[name]?.reachable == false
            peers[name] = PeerState(name: name, reachable: true, lastContact: now, unreachableSince: nil, lastError: nil, catalog: catalog)
            return wasDown
        }
    }

    /// Records a failure.
    /// - Returns: Whether the peer was reachable before (to log the loss once).
    /// - Parameter refusing: The peer answered 403 (it does not list this node): alive, but serving nothing here.
    @discardableResult
    public func failed(_ name: String, error: String, at now: Date, refusing: Bool = false) -> Bool {
        peers.withLockedValue { peers in
            var state = peers[name] ?? PeerState(name: name, reachable: false, lastContact: nil, unreachableSince: now, lastError: nil, catalog: nil)
            let wasUp = state.reachable
            if state.reachable || state.unreachableSince == nil { state.unreachableSince = now }
            state.reachable = false
            state.refusing = refusing
            state.lastError = error
            peers[name] = state
            return wasUp
        }
    }

    /// The nodes that say they are the renewer: this node when it is one, and every peer whose last catalogue says
    /// so (reachable or not: a renewer that is down is still configured as one). Sorted by name.
    public var renewers: [String] {
        let fromPeers = peers.withLockedValue { $0.values.filter { $0.catalog?.role == "renewer" }.map(\.name) }
        let mine = local.map { $0.role == "renewer" ? [$0.name] : [] } ?? []
        return Set(mine + fromPeers).sorted()
    }

    /// A change in the renewer conflict since the last call: the renewers when there are now two or more (and
    /// they differ from the ones last reported), an empty list when a reported conflict has ended, `nil` when
    /// nothing changed. Lets every node log the conflict once, and its end once.
    public func renewerConflictChange() -> [String]? {
        // One critical section for reading and reporting, so two followers cannot interleave a spurious pair.
        reportedConflict.withLockedValue { reported in
            let now = renewers
            let conflict = now.count > 1 ? now : []
            guard conflict != reported else { return nil }
            reported = conflict
            return conflict
        }
    }

    /// Every peer's state, by name.
    public var snapshot: [PeerState] {
        peers.withLockedValue { $0.values.sorted { $0.name < $1.name } }
    }

    /// What the answering renewers say about their renewal of one certificate.
    public enum RenewerCheck: Sendable, Equatable {
        /// No answering renewer's catalogue says (an older version, or its record could not be read).
        case unknown
        /// The renewers say, and none has ever checked it.
        case never
        /// The latest check among them.
        case at(Date)
    }

    /// For a standby: when the renewers that answer last checked certificate `name`.
    public func renewerLastCheck(of name: String) -> RenewerCheck {
        peers.withLockedValue { peers in
            let reports = peers.values.filter { $0.reachable && $0.catalog?.role == "renewer" }.compactMap { $0.catalog?.renewalChecks }
            guard !reports.isEmpty else { return .unknown }
            return reports.compactMap { $0[name] }.max().map(RenewerCheck.at) ?? .never
        }
    }

    /// Whether a possible renewer answers but refuses this node (403): alive, and what it renews is unknown here.
    public var renewerIsRefusing: Bool {
        peers.withLockedValue { peers in
            peers.values.contains { $0.refusing && ($0.catalog == nil || $0.catalog?.role == "renewer") }
        }
    }

    /// For a standby: how long no renewer has answered, or `nil` when one answers now.
    ///
    /// A peer counts as a possible renewer when its last catalogue said `renewer`, or when it has never answered
    /// (a standby that starts while the renewer is down still takes over after the configured time). When no peer
    /// can be the renewer, the silence counts from start-up.
    public func renewerSilence(now: Date) -> TimeInterval? {
        peers.withLockedValue { peers in
            let candidates = peers.values.filter { $0.catalog == nil || $0.catalog?.role == "renewer" }
            // A peer that refuses this node (403) is alive: taking over from it would order what it renews.
            if candidates.contains(where: { $0.reachable || $0.refusing }) { return nil }
            let since = candidates.compactMap(\.unreachableSince).max() ?? start
            return now.timeIntervalSince(since)
        }
    }
}
