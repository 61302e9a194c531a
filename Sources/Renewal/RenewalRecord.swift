import Foundation
import RenewalPolicy

/// What certkeeper remembers about one certificate between runs (`state/renewal-<name>.json`).
public struct RenewalRecord: Codable, Sendable, Equatable {
    /// Set while the last attempts failed; cleared by a success.
    public var backoff: BackoffState?
    /// The ARI answer for the installed certificate.
    public var ari: ARIRecord?
    public var lastSuccess: Date?
    /// Serial of the installed certificate if it was revoked: it is then renewed on the next run.
    public var revokedSerial: String?
    /// Serial of an installed certificate whose deploy hooks have not all succeeded yet: they run again on every
    /// run until they do, so a failed reload cannot leave a server on the old certificate until it expires.
    public var pendingDeploy: String?
    /// Hooks that failed for `pendingDeploy`, for `status`.
    public var failedHooks: [String]?
    /// Set when the installed certificate was due again the moment it was issued (`renew_before` at or above the
    /// lifetime the CA gives): the `renew_before` used instead (half that lifetime) until a certificate is issued for
    /// which the configured one works. With ``configurationError``, which `status` shows.
    public var renewBeforeCap: Double?
    /// Why ``renewBeforeCap`` is set, in words.
    public var configurationError: String?
    /// Serial of a certificate being installed, written before `live/` swaps to it: if the process stops after the
    /// swap, its deploy is owed (see ``owesDeploy(liveSerial:)``); if it stops before, the serial never went live and
    /// this is ignored. Cleared once the install is recorded.
    public var installing: String?

    public init(backoff: BackoffState? = nil, ari: ARIRecord? = nil, lastSuccess: Date? = nil, revokedSerial: String? = nil, pendingDeploy: String? = nil, failedHooks: [String]? = nil) {
        self.backoff = backoff
        self.ari = ari
        self.lastSuccess = lastSuccess
        self.revokedSerial = revokedSerial
        self.pendingDeploy = pendingDeploy
        self.failedHooks = failedHooks
    }

    /// Whether the live certificate's deploy hooks have not all succeeded yet: they failed (`pendingDeploy`), or
    /// the process that installed it stopped between the swap and its hooks (`installing`).
    /// - Parameter liveSerial: The serial `live/<name>` holds now, `nil` when nothing is installed.
    public func owesDeploy(liveSerial: String?) -> Bool {
        guard let liveSerial else { return false }
        return pendingDeploy == liveSerial || installing == liveSerial
    }

    /// The state-file key for certificate `name`.
    public static func key(for name: String) -> String { "renewal-\(name)" }
}

/// ARI state for one certificate: its certID, the CA's window, and when to ask again.
public struct ARIRecord: Codable, Sendable, Equatable {
    public var certID: String
    /// `nil` when the CA has no ARI.
    public var window: SuggestedWindow?
    public var nextPoll: Date

    public init(certID: String, window: SuggestedWindow?, nextPoll: Date) {
        self.certID = certID
        self.window = window
        self.nextPoll = nextPoll
    }
}

/// The part of a ``RenewalRecord`` that belongs to the certificate rather than to the node holding it, and so
/// replicates with it: the CA's ARI window, a revocation, the last success. Back-off and deploy-hook failures stay
/// per node (a standby judges its own attempts; hooks run on each node).
public struct SharedRenewalState: Codable, Sendable, Equatable {
    /// The ARI answer for the certificate.
    public var ari: ARIRecord?
    /// The serial, if it was revoked.
    public var revokedSerial: String?
    /// The last successful renewal on the node that issued it.
    public var lastSuccess: Date?

    /// Creates a shared state.
    public init(ari: ARIRecord?, revokedSerial: String?, lastSuccess: Date?) {
        self.ari = ari
        self.revokedSerial = revokedSerial
        self.lastSuccess = lastSuccess
    }

    /// Whether there is anything to share.
    public var isEmpty: Bool { ari == nil && revokedSerial == nil && lastSuccess == nil }
}

extension RenewalRecord {
    /// The certificate's shared state; setting it keeps this node's back-off and hook failures.
    public var shared: SharedRenewalState {
        get { SharedRenewalState(ari: ari, revokedSerial: revokedSerial, lastSuccess: lastSuccess) }
        set {
            ari = newValue.ari
            revokedSerial = newValue.revokedSerial
            lastSuccess = newValue.lastSuccess
        }
    }
}

/// When this node's renewal last looked at each certificate (`state/renewal-checks.json`): every `renew` run and
/// every internal renewal pass records the certificates it checked, due or not. A renewer's catalogue carries it,
/// so a standby can tell a renewer that answers but no longer renews (a stopped cron timer) from one that does.
public struct RenewalChecks: Codable, Sendable, Equatable {
    /// The state-file key.
    public static let key = "renewal-checks"

    /// Certificate name → the end of the last check.
    public var checked: [String: Date]

    /// Creates the record.
    public init(checked: [String: Date] = [:]) {
        self.checked = checked
    }

    /// This record with `names` checked at `time`.
    public func recording(_ names: [String], at time: Date) -> RenewalChecks {
        var next = self
        for name in names { next.checked[name] = time }
        return next
    }
}
