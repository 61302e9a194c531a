import ACMEProtocol
import CertStore
import CertkeeperConfig
import Durations
import Foundation
import Logging
import RenewalPolicy
import ServiceLifecycle

/// When the daemon looks at its internal certificates again: pure maths over the renewal decisions and the time.
public struct InternalRenewalSchedule: Sendable, Equatable {
    /// Default for ``maximumInterval``: 5 minutes, so a changed clock or a certificate installed by hand is noticed
    /// soon without the daemon doing anything noticeable.
    public static let defaultMaximumInterval: TimeInterval = 300
    /// Default for ``minimumInterval``: a certificate that stays due (a store that cannot record the failure) is
    /// retried every 30 seconds, not in a loop.
    public static let defaultMinimumInterval: TimeInterval = 30

    /// The longest wait between two checks.
    public var maximumInterval: TimeInterval
    /// The shortest wait between two checks.
    public var minimumInterval: TimeInterval

    /// Creates a schedule.
    public init(maximumInterval: TimeInterval = Self.defaultMaximumInterval, minimumInterval: TimeInterval = Self.defaultMinimumInterval) {
        self.maximumInterval = maximumInterval
        self.minimumInterval = min(minimumInterval, maximumInterval)
    }

    /// The time of the next check after one that ended at `now`.
    ///
    /// The earliest of: each certificate's due time (`notDue`), the end of its back-off (`backingOff`), `now` for
    /// one still due, and `now + maximumInterval`; never sooner than `now + minimumInterval`. A certificate whose
    /// state could not be read (`nil`) only counts as the maximum interval: a broken store is not fixed in seconds.
    /// - Parameters:
    ///   - now: When the check ended.
    ///   - decisions: The policy's decision for every internal certificate at `now`.
    public func nextCheck(after now: Date, decisions: [RenewalDecision?]) -> Date {
        var next = now.addingTimeInterval(maximumInterval)
        for decision in decisions {
            switch decision {
            case nil: continue
            case .due?: next = min(next, now)
            case .notDue(let until, _)?: next = min(next, until)
            case .backingOff(let until, _)?: next = min(next, until)
            }
        }
        return max(next, now.addingTimeInterval(minimumInterval))
    }
}

/// The daemon's renewal of certificates with `issuer: internal`: one check at start (issuing what is missing),
/// then one at each certificate's due time or every ``InternalRenewalSchedule/maximumInterval``, whichever comes
/// first. ACME certificates stay with cron (`certkeeper renew`): their renewal has a random delay, a CA to
/// spare, and rate limits that a restart loop must not spend.
///
/// Each check is a normal ``Renewer/run(_:force:randomDelay:)`` (store lock, check again, issue, install, deploy
/// hooks), so a concurrent `certkeeper renew` and the daemon never issue the same certificate twice. Graceful
/// shutdown interrupts the wait, never a check in progress.
public struct InternalRenewalService: Service {
    let renewer: Renewer
    let specs: [CertificateSpec]
    let schedule: InternalRenewalSchedule
    let logger: Logger
    let sleep: @Sendable (TimeInterval) async throws -> Void

    /// Creates the service.
    /// - Parameters:
    ///   - renewer: Renews in the store; its clock is the schedule's clock.
    ///   - specs: The internal certificates to keep issued.
    ///   - schedule: When to check again.
    ///   - logger: Where checks are logged.
    ///   - sleep: Waits the given number of seconds, throwing when cancelled; tests pass one that advances a fake clock.
    public init(
        renewer: Renewer, specs: [CertificateSpec], schedule: InternalRenewalSchedule = InternalRenewalSchedule(), logger: Logger,
        sleep: @escaping @Sendable (TimeInterval) async throws -> Void = { try await Task.sleep(for: .clampedSeconds($0)) }
    ) {
        self.renewer = renewer
        self.specs = specs
        self.schedule = schedule
        self.logger = logger
        self.sleep = sleep
    }

    /// The service for `renewer`'s configuration, or `nil` when this node has nothing to renew internally: no
    /// certificate uses `issuer: internal`, or the node is part of a cluster without being its `renewer` (followers
    /// and standbys pull the renewer's certificates, signed by the renewer's root).
    public static func make(renewer: Renewer, logger: Logger) -> InternalRenewalService? {
        let configuration = renewer.configuration
        let specs = configuration.internalCertificates
        guard !specs.isEmpty, configuration.cluster.map({ $0.role == .renewer }) ?? true else { return nil }
        return InternalRenewalService(renewer: renewer, specs: specs, logger: logger)
    }

    /// Checks until graceful shutdown or cancellation.
    public func run() async throws {
        logger.info("renewing internal certificates in the daemon", metadata: ["cert.names": "\(specs.map(\.name).joined(separator: ","))"])
        while !Task.isShuttingDownGracefully, !Task.isCancelled {
            let next = await check()
            let wait = max(0, next.timeIntervalSince(renewer.clock()))
            logger.debug("next internal renewal check", metadata: ["renew.next_check": "\(RFC3339.format(next))"])
            do {
                try await cancelWhenGracefulShutdown { [sleep] in try await sleep(wait) }
            } catch {
                break
            }
        }
    }

    /// One check: renews what is due (under the store lock) and returns when to check again.
    public func check() async -> Date {
        do {
            let report = try await renewer.run(specs, force: false)
            for (name, outcome) in report.outcomes {
                if case .renewedWithHookFailures(_, _, let hooks) = outcome {
                    logger.warning("internal certificate installed, but deploy hooks failed", metadata: ["cert.name": "\(name)", "hooks.failed": "\(hooks.joined(separator: ","))"])
                }
            }
        } catch {
            logger.error("internal renewal check failed; trying again later", metadata: [
                "error": "\(error)", "renew.retry_in": "\(Int(schedule.maximumInterval))s",
            ])
            return renewer.clock().addingTimeInterval(schedule.maximumInterval)
        }
        let now = renewer.clock()
        return schedule.nextCheck(after: now, decisions: specs.map { try? renewer.decision(for: $0, now: now) })
    }
}

extension InternalRenewalService: CustomStringConvertible {
    /// `InternalRenewalService(certificates: a,b)`: what ServiceLifecycle logs for the service.
    public var description: String { "InternalRenewalService(certificates: \(specs.map(\.name).joined(separator: ",")))" }
}
