import CertStore
import Foundation
import RenewalPolicy

/// What happened to one certificate in one run.
public enum CertificateOutcome: Sendable {
    /// Issued, verified and installed; hooks all succeeded.
    case renewed(CertificateMeta, reason: RenewalReason)
    /// Installed, but at least one deploy hook failed (the new certificate stays: it is good).
    case renewedWithHookFailures(CertificateMeta, reason: RenewalReason, failedHooks: [String])
    /// Installed (and deployed), but due again the moment it was issued: `renew_before` is not shorter than the
    /// lifetime the CA gives. A configuration error: backed off like a failure, so it is not ordered again at once.
    case renewedButDueAgain(CertificateMeta, error: String, nextAttempt: Date)
    /// Not due, but the deploy hooks that failed for the installed certificate were run again.
    case redeployed(CertificateMeta, failedHooks: [String])
    /// Not due yet.
    case notDue(until: Date, reason: RenewalReason)
    /// Due, but waiting out a back-off after earlier failures.
    case backingOff(until: Date, lastError: String)
    /// This run's attempt failed; the previous certificate (if any) is untouched.
    case failed(reason: RenewalReason, error: String, nextAttempt: Date)

    /// Whether this outcome makes `renew` exit 1.
    public var isFailure: Bool {
        switch self {
        case .renewed, .notDue: false
        case .redeployed(_, let failedHooks): !failedHooks.isEmpty
        case .renewedWithHookFailures, .renewedButDueAgain, .backingOff, .failed: true
        }
    }
}

/// The result of a run for every selected certificate, in configuration order.
public struct RunReport: Sendable {
    public var outcomes: [(name: String, outcome: CertificateOutcome)]

    /// 0 when everything is renewed or not due, 1 otherwise (see README, "Exit codes").
    public var exitCode: Int32 { outcomes.contains(where: { $0.outcome.isFailure }) ? 1 : 0 }
}

/// Failures of a whole command, before any certificate is looked at.
public struct RenewalSetupError: Error, CustomStringConvertible, Sendable {
    public var description: String
    public init(_ description: String) { self.description = description }
}
