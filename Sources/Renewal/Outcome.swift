import ACMEProtocol
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
    /// lifetime the CA gives. A configuration error: renewed at half its life (`nextAttempt`) until it is fixed.
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

extension CertificateOutcome {
    /// The line `renew` prints for certificate `name` (`web: renewed (lifetimeFraction), serial …`); also how
    /// the daemon logs a standby's renewals.
    public func summary(name: String) -> String {
        switch self {
        case .renewed(let meta, let reason):
            "\(name): renewed (\(reason.rawValue)), serial \(meta.serial), expires \(RFC3339.format(meta.notAfter))"
        case .renewedWithHookFailures(let meta, let reason, let hooks):
            "\(name): renewed (\(reason.rawValue)), serial \(meta.serial), but deploy hook(s) failed: \(hooks.joined(separator: ", "))"
        case .renewedButDueAgain(let meta, let error, let next):
            "\(name): renewed, serial \(meta.serial), but ERROR: \(error) (next renewal \(RFC3339.format(next)))"
        case .redeployed(let meta, let failed):
            failed.isEmpty
                ? "\(name): deploy hooks for serial \(meta.serial) succeeded on retry"
                : "\(name): deploy hook(s) still failing for serial \(meta.serial): \(failed.joined(separator: ", "))"
        case .notDue(let until, _):
            "\(name): not due until \(RFC3339.format(until))"
        case .backingOff(let until, let lastError):
            "\(name): due, backing off until \(RFC3339.format(until))" + (lastError.isEmpty ? "" : " after: \(lastError)")
        case .failed(_, let error, let next):
            "\(name): FAILED: \(error) (next attempt after \(RFC3339.format(next)))"
        }
    }
}
