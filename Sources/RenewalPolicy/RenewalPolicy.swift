import Durations
import Foundation

/// A certificate's validity period.
public struct Validity: Sendable, Equatable, Codable {
    public var notBefore: Date
    public var notAfter: Date

    public init(notBefore: Date, notAfter: Date) {
        self.notBefore = notBefore
        self.notAfter = notAfter
    }

    /// notAfter − notBefore, in seconds.
    public var lifetime: TimeInterval { notAfter.timeIntervalSince(notBefore) }
}

/// A renewal window suggested by the CA through ARI (RFC 9773).
public struct SuggestedWindow: Sendable, Equatable, Codable {
    public var start: Date
    public var end: Date

    public init(start: Date, end: Date) {
        self.start = start
        self.end = end
    }
}

/// Why a certificate is (or is not yet) due.
public enum RenewalReason: String, Sendable, Equatable, Codable {
    /// Nothing is installed under this name yet.
    case missing
    /// The installed certificate's names differ from the configured domains (the config changed).
    case domainsChanged
    /// The configured key type differs from the installed key's.
    case keyTypeChanged
    /// The installed certificate was revoked.
    case revoked
    /// ARI's suggested window has begun.
    case suggestedWindowOpen
    /// Less than a third of the lifetime remains (half for lifetimes under 10 days).
    case lifetimeFraction
    /// Less than the configured `renew_before` remains.
    case renewBefore
    /// Less than 1/20 of the lifetime remains: renewed whatever ARI says (certmagic's emergency override).
    case emergency
    /// An operator asked for it (`force-renew`).
    case forced
}

/// What the policy says for one certificate at one instant.
public enum RenewalDecision: Sendable, Equatable {
    /// Renew now.
    case due(RenewalReason)
    /// Not yet; the earliest time it will be due.
    case notDue(until: Date, reason: RenewalReason)
    /// Due, but a recent failure asks us to wait until `until`.
    case backingOff(until: Date, reason: RenewalReason)

    public var isDue: Bool { if case .due = self { true } else { false } }
}

/// The "renew early" rule: pure maths over the validity, ARI's window, an optional override, and the time.
///
/// Without ARI a certificate is due when less than 1/3 of its lifetime remains (1/2 when the lifetime is under
/// 10 days), the Let's Encrypt integration guide's backstop that certbot ≥ 4 and lego ≥ 5 use. With ARI it is due
/// when the suggested window has begun. `renew_before` makes it due earlier still, never later. Whatever ARI says,
/// a certificate with less than 1/20 of its lifetime left is due.
public struct RenewalPolicy: Sendable, Equatable {
    /// The `renew_before` override in seconds, if configured.
    public var renewBefore: TimeInterval?

    public static let shortLifetime: TimeInterval = 10 * 86_400

    public init(renewBefore: TimeInterval? = nil) {
        self.renewBefore = renewBefore
    }

    /// The fraction of the lifetime left at which the backstop renews.
    public static func backstopFraction(lifetime: TimeInterval) -> Double {
        lifetime < shortLifetime ? 1.0 / 2.0 : 1.0 / 3.0
    }

    /// The instant the certificate becomes due, and why, ignoring back-off.
    /// - Parameter windowFraction: where in ARI's window to renew, 0 (start) to 1 (end). RFC 9773 §4.2 asks for a
    ///   uniformly random point so that clients given the same window do not all arrive at once; callers pass a
    ///   value that is stable per certificate (so every run agrees) but differs between certificates and nodes.
    public func renewalTime(validity: Validity, suggestedWindow: SuggestedWindow?, windowFraction: Double = 0) -> (date: Date, reason: RenewalReason) {
        let lifetime = max(0, validity.lifetime)
        var candidates: [(Date, RenewalReason)] = []
        if let window = suggestedWindow {
            let span = max(0, window.end.timeIntervalSince(window.start))
            let fraction = min(max(windowFraction, 0), 1)
            candidates.append((window.start.addingTimeInterval(span * fraction), .suggestedWindowOpen))
            candidates.append((validity.notAfter.addingTimeInterval(-lifetime / 20), .emergency))
        } else {
            candidates.append((validity.notAfter.addingTimeInterval(-lifetime * Self.backstopFraction(lifetime: lifetime)), .lifetimeFraction))
        }
        if let renewBefore {
            candidates.append((validity.notAfter.addingTimeInterval(-renewBefore), .renewBefore))
        }
        // The earliest trigger wins; on a tie the first listed (the CA's own suggestion) names the reason.
        return candidates.min(by: { $0.0 < $1.0 })!
    }

    /// Decides for `now`.
    /// - Parameters:
    ///   - validity: the installed certificate's validity, or `nil` when none is installed.
    ///   - invalidatedBy: set when the installed certificate no longer fits (`.domainsChanged`, `.keyTypeChanged`,
    ///     `.revoked`): it is due at once.
    ///   - suggestedWindow: ARI's window, when the CA offers ARI and it was fetched.
    ///   - windowFraction: where in that window to renew (see `renewalTime`).
    ///   - backoff: the failure record, if the last attempt failed.
    public func decide(
        now: Date,
        validity: Validity?,
        invalidatedBy: RenewalReason? = nil,
        suggestedWindow: SuggestedWindow? = nil,
        windowFraction: Double = 0,
        backoff: BackoffState? = nil
    ) -> RenewalDecision {
        let (dueAt, reason): (Date, RenewalReason)
        if let validity {
            if let invalidatedBy {
                (dueAt, reason) = (.distantPast, invalidatedBy)
            } else {
                (dueAt, reason) = renewalTime(validity: validity, suggestedWindow: suggestedWindow, windowFraction: windowFraction)
            }
        } else {
            (dueAt, reason) = (.distantPast, .missing)
        }
        guard now >= dueAt else { return .notDue(until: dueAt, reason: reason) }
        if let backoff, now < backoff.nextAttempt {
            return .backingOff(until: backoff.nextAttempt, reason: reason)
        }
        return .due(reason)
    }
}

/// The failure record kept per certificate in the store, so back-off survives across cron runs.
public struct BackoffState: Sendable, Equatable, Codable {
    /// Consecutive failures since the last success.
    public var failures: Int
    public var lastFailure: Date
    /// No automatic attempt before this instant.
    public var nextAttempt: Date
    /// The last error, one line, for `status`.
    public var lastError: String

    public init(failures: Int, lastFailure: Date, nextAttempt: Date, lastError: String) {
        self.failures = failures
        self.lastFailure = lastFailure
        self.nextAttempt = nextAttempt
        self.lastError = lastError
    }
}

/// Growing delays after failed attempts: about 1 min, 10 min, 100 min, then daily (the Let's Encrypt
/// integration guide), never shorter than the CA's `Retry-After`.
public struct Backoff: Sendable, Equatable {
    public var delays: [TimeInterval]

    /// The longest CA-requested wait honoured: 30 days.
    public static let longestRetryAfter = TimeInterval(Duration.longestRetryAfter.components.seconds)

    public init(delays: [TimeInterval] = [60, 600, 6_000, 86_400]) {
        precondition(!delays.isEmpty, "back-off needs at least one delay")
        self.delays = delays
    }

    /// The state after another failure at `now`.
    /// - Parameters:
    ///   - previous: the state before this failure, if the one before failed too.
    ///   - retryAfter: the CA's Retry-After in seconds, if it sent one.
    ///   - permanent: the CA said no in a way that waiting alone will not fix (`caa`, `unauthorized`, ...):
    ///     skip the short steps, so automatic retries do not spend the CA's failed-validation limit.
    public func recordFailure(previous: BackoffState?, now: Date, retryAfter: TimeInterval?, error: String, permanent: Bool = false) -> BackoffState {
        let failures = min(previous?.failures ?? 0, 1_000_000) + 1
        let step = permanent ? max(failures, delays.count - 1) : failures
        // A CA's Retry-After counts up to 30 days (ACMEProtocol cuts it there too): a huge one must not park the
        // certificate past its expiry.
        let delay = max(delays[min(step, delays.count) - 1], min(retryAfter.map { $0.isNaN ? 0 : $0 } ?? 0, Self.longestRetryAfter))
        return BackoffState(failures: failures, lastFailure: now, nextAttempt: now.addingTimeInterval(delay), lastError: error)
    }
}
