import Foundation
import RenewalPolicy
import Testing

private let day: TimeInterval = 86_400
private let epoch = Date(timeIntervalSince1970: 1_800_000_000)

private func validity(days: Double) -> Validity {
    Validity(notBefore: epoch, notAfter: epoch.addingTimeInterval(days * day))
}

@Suite("Renewal windows with fixed clocks")
struct RenewalWindowTests {
    @Test("90-day certificate is due with 30 days (1/3) left, not a second before")
    func ninetyDayBackstop() {
        let policy = RenewalPolicy()
        let cert = validity(days: 90)
        let dueAt = epoch.addingTimeInterval(60 * day)
        #expect(policy.decide(now: dueAt.addingTimeInterval(-1), validity: cert) == .notDue(until: dueAt, reason: .lifetimeFraction))
        #expect(policy.decide(now: dueAt, validity: cert) == .due(.lifetimeFraction))
        #expect(policy.decide(now: dueAt.addingTimeInterval(day), validity: cert) == .due(.lifetimeFraction))
    }

    @Test("45-day (tlsserver) certificate renews with 15 days left")
    func fortyFiveDay() {
        let (date, reason) = RenewalPolicy().renewalTime(validity: validity(days: 45), suggestedWindow: nil)
        #expect(date == epoch.addingTimeInterval(30 * day))
        #expect(reason == .lifetimeFraction)
    }

    @Test("lifetimes under 10 days renew at half: 160-hour shortlived renews after 80 hours")
    func shortLived() {
        let cert = Validity(notBefore: epoch, notAfter: epoch.addingTimeInterval(160 * 3600))
        let (date, _) = RenewalPolicy().renewalTime(validity: cert, suggestedWindow: nil)
        #expect(date == epoch.addingTimeInterval(80 * 3600))
        // Exactly 10 days is not "under 10 days": a third.
        let ten = RenewalPolicy().renewalTime(validity: validity(days: 10), suggestedWindow: nil).date
        #expect(abs(ten.timeIntervalSince(epoch.addingTimeInterval(10 * day * 2 / 3))) < 0.001)
    }

    @Test("ARI window start decides when present, earlier or later than the backstop")
    func ariWindow() {
        let policy = RenewalPolicy()
        let cert = validity(days: 90)
        let early = SuggestedWindow(start: epoch.addingTimeInterval(20 * day), end: epoch.addingTimeInterval(21 * day))
        #expect(policy.decide(now: epoch.addingTimeInterval(20 * day), validity: cert, suggestedWindow: early) == .due(.suggestedWindowOpen))
        #expect(policy.decide(now: epoch.addingTimeInterval(19 * day), validity: cert, suggestedWindow: early) == .notDue(until: early.start, reason: .suggestedWindowOpen))
        // A later window than 1/3 is honoured (ARI takes precedence over the backstop)...
        let late = SuggestedWindow(start: epoch.addingTimeInterval(70 * day), end: epoch.addingTimeInterval(72 * day))
        #expect(policy.decide(now: epoch.addingTimeInterval(65 * day), validity: cert, suggestedWindow: late).isDue == false)
        #expect(policy.decide(now: epoch.addingTimeInterval(70 * day), validity: cert, suggestedWindow: late) == .due(.suggestedWindowOpen))
    }

    @Test("the renewal point inside the ARI window follows the per-certificate fraction")
    func windowFraction() {
        let cert = validity(days: 90)
        let window = SuggestedWindow(start: epoch.addingTimeInterval(50 * day), end: epoch.addingTimeInterval(52 * day))
        let policy = RenewalPolicy()
        #expect(policy.renewalTime(validity: cert, suggestedWindow: window, windowFraction: 0.25).date == epoch.addingTimeInterval(50.5 * day))
        #expect(policy.renewalTime(validity: cert, suggestedWindow: window, windowFraction: 1).date == window.end)
        #expect(policy.renewalTime(validity: cert, suggestedWindow: window, windowFraction: 7).date == window.end)
        let now = epoch.addingTimeInterval(50.4 * day)
        #expect(policy.decide(now: now, validity: cert, suggestedWindow: window, windowFraction: 0.25).isDue == false)
        #expect(policy.decide(now: now, validity: cert, suggestedWindow: window, windowFraction: 0.1) == .due(.suggestedWindowOpen))
    }

    @Test("a window past the emergency point cannot let the certificate expire")
    func emergencyOverride() {
        let cert = validity(days: 100)
        let absurd = SuggestedWindow(start: epoch.addingTimeInterval(99.9 * day), end: epoch.addingTimeInterval(100 * day))
        let (date, reason) = RenewalPolicy().renewalTime(validity: cert, suggestedWindow: absurd)
        #expect(date == epoch.addingTimeInterval(95 * day))
        #expect(reason == .emergency)
    }

    @Test("renew_before makes it due earlier, never later")
    func renewBefore() {
        let cert = validity(days: 90)
        let earlier = RenewalPolicy(renewBefore: 45 * day).renewalTime(validity: cert, suggestedWindow: nil)
        #expect(earlier.date == epoch.addingTimeInterval(45 * day))
        #expect(earlier.reason == .renewBefore)
        let later = RenewalPolicy(renewBefore: 5 * day).renewalTime(validity: cert, suggestedWindow: nil)
        #expect(later.date == epoch.addingTimeInterval(60 * day))
        #expect(later.reason == .lifetimeFraction)
    }

    @Test("missing certificate and changed domains are due at once")
    func missingAndChanged() {
        let policy = RenewalPolicy()
        #expect(policy.decide(now: epoch, validity: nil) == .due(.missing))
        #expect(policy.decide(now: epoch, validity: validity(days: 90), invalidatedBy: .domainsChanged) == .due(.domainsChanged))
        #expect(policy.decide(now: epoch, validity: validity(days: 90), invalidatedBy: .revoked) == .due(.revoked))
    }

    @Test("back-off postpones a due certificate until its next attempt")
    func backoffPostpones() {
        let policy = RenewalPolicy()
        let cert = validity(days: 90)
        let now = epoch.addingTimeInterval(61 * day)
        let state = BackoffState(failures: 1, lastFailure: now, nextAttempt: now.addingTimeInterval(60), lastError: "boom")
        #expect(policy.decide(now: now, validity: cert, backoff: state) == .backingOff(until: now.addingTimeInterval(60), reason: .lifetimeFraction))
        #expect(policy.decide(now: now.addingTimeInterval(60), validity: cert, backoff: state) == .due(.lifetimeFraction))
        // Back-off never reports "due" for something that is not due yet.
        #expect(policy.decide(now: epoch, validity: cert, backoff: state).isDue == false)
    }
}

@Suite("Back-off after failures")
struct BackoffTests {
    @Test("delays grow 1 min, 10 min, 100 min, then daily")
    func growth() {
        let backoff = Backoff()
        var state: BackoffState? = nil
        var expected: [TimeInterval] = [60, 600, 6_000, 86_400, 86_400]
        for _ in 0..<5 {
            let next = backoff.recordFailure(previous: state, now: epoch, retryAfter: nil, error: "x")
            #expect(next.nextAttempt.timeIntervalSince(epoch) == expected.removeFirst())
            state = next
        }
        #expect(state?.failures == 5)
    }

    @Test("a CA's Retry-After counts up to 30 days; infinity or NaN cannot park a certificate past its expiry")
    func retryAfterIsCapped() {
        let backoff = Backoff()
        for retryAfter in [31 * 86_400.0, 1e19, .infinity] {
            let next = backoff.recordFailure(previous: nil, now: epoch, retryAfter: retryAfter, error: "rateLimited")
            #expect(next.nextAttempt == epoch.addingTimeInterval(Backoff.longestRetryAfter), "\(retryAfter)")
        }
        #expect(backoff.recordFailure(previous: nil, now: epoch, retryAfter: .nan, error: "x").nextAttempt == epoch.addingTimeInterval(60))
        let counted = BackoffState(failures: .max, lastFailure: epoch, nextAttempt: epoch, lastError: "x")
        #expect(backoff.recordFailure(previous: counted, now: epoch, retryAfter: nil, error: "x").failures == 1_000_001, "a failure count from a state file cannot overflow")
    }

    @Test("permanent failures skip the short steps")
    func permanent() {
        let backoff = Backoff()
        let first = backoff.recordFailure(previous: nil, now: epoch, retryAfter: nil, error: "caa", permanent: true)
        #expect(first.nextAttempt == epoch.addingTimeInterval(6_000))
        let second = backoff.recordFailure(previous: first, now: epoch, retryAfter: nil, error: "caa", permanent: true)
        #expect(second.nextAttempt == epoch.addingTimeInterval(6_000))
        let third = backoff.recordFailure(previous: second, now: epoch, retryAfter: nil, error: "caa", permanent: true)
        #expect(third.nextAttempt == epoch.addingTimeInterval(6_000))
        let fourth = backoff.recordFailure(previous: third, now: epoch, retryAfter: nil, error: "caa", permanent: true)
        #expect(fourth.nextAttempt == epoch.addingTimeInterval(86_400))
    }

    @Test("Retry-After longer than the step wins; shorter does not shorten it")
    func retryAfter() {
        let backoff = Backoff()
        #expect(backoff.recordFailure(previous: nil, now: epoch, retryAfter: 3600, error: "rate").nextAttempt == epoch.addingTimeInterval(3600))
        #expect(backoff.recordFailure(previous: nil, now: epoch, retryAfter: 5, error: "rate").nextAttempt == epoch.addingTimeInterval(60))
    }
}
