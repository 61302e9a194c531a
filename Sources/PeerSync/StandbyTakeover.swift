import CertkeeperConfig
import Foundation
import Logging
import Renewal

/// On a `standby` node: renews a certificate itself once it has been due for at least `takeover_margin` and the
/// renewer is not renewing it: the renewer has been unreachable for `takeover_after`, or it answers but its
/// renewal has not checked that certificate for ``staleCheck`` or `takeover_margin`, whichever is longer (its
/// catalogue's ``PeerCatalog/renewalChecks``; a stopped cron timer, a `renew` that never runs).
///
/// While the renewer answers and renews, nothing happens, so two nodes that can see each other never order the same
/// certificate (a renewer whose renewals fail is still renewing: its errors are its own to fix, and a second node
/// ordering would only double the failed validations). When the renewer comes back, the newer certificate wins on every node (``SyncInstaller`` pulls only
/// strictly newer ones), and since the renewed certificate is no longer due, the renewer has nothing to do.
public struct StandbyTakeover: Sendable {
    /// A renewer whose renewal has not checked a certificate for this long is not renewing it: the renew timer runs
    /// twice a day (with up to an hour's random delay), so a day is two missed runs.
    public static let staleCheck: TimeInterval = 86_400

    let renewer: Renewer
    let directory: PeerDirectory
    let takeoverAfter: TimeInterval
    let margin: TimeInterval
    let checkInterval: Duration
    let logger: Logger
    let clock: @Sendable () -> Date

    /// Creates the takeover loop.
    /// - Parameters:
    ///   - checkInterval: How often the condition is checked.
    public init(renewer: Renewer, directory: PeerDirectory, takeoverAfter: TimeInterval, margin: TimeInterval, checkInterval: Duration, logger: Logger, clock: @escaping @Sendable () -> Date = Date.init) {
        self.renewer = renewer
        self.directory = directory
        self.takeoverAfter = takeoverAfter
        self.margin = margin
        self.checkInterval = checkInterval
        self.logger = logger
        self.clock = clock
    }

    /// Why this standby takes over a certificate.
    public enum Reason: Sendable, Equatable {
        /// No renewer has answered for this long.
        case renewerUnreachable(seconds: Int)
        /// The renewer answers, but its renewal last checked the certificate then (`nil`: never).
        case renewerNotRenewing(lastCheck: Date?)
    }

    /// The certificates this standby should renew now, with why; empty while the renewer answers and renews them
    /// (or has been silent for less than `takeover_after`, or refuses this node).
    public func dueForTakeover(now: Date) -> [(spec: CertificateSpec, reason: Reason)] {
        let silence = directory.renewerSilence(now: now)
        if let silence, silence < takeoverAfter { return [] }
        if silence == nil, directory.renewerIsRefusing { return [] }
        let cutoff = now.addingTimeInterval(-margin)
        return renewer.configuration.certificates.compactMap { spec in
            guard let decision = try? renewer.decision(for: spec, now: cutoff), decision.isDue else { return nil }
            if let silence { return (spec, .renewerUnreachable(seconds: Int(silence))) }
            switch directory.renewerLastCheck(of: spec.name) {
            case .unknown:
                // An older renewer (or an unreadable record): judged by its answering alone, as before.
                return nil
            case .never:
                return (spec, .renewerNotRenewing(lastCheck: nil))
            case .at(let lastCheck):
                if lastCheck >= now.addingTimeInterval(-max(margin, Self.staleCheck)) { return nil }
                return (spec, .renewerNotRenewing(lastCheck: lastCheck))
            }
        }
    }

    /// Checks every `checkInterval` until the task is cancelled.
    public func run() async {
        while !Task.isCancelled {
            try? await Task.sleep(for: checkInterval)
            if Task.isCancelled { return }
            let now = clock()
            let due = dueForTakeover(now: now)
            guard !due.isEmpty else { continue }
            for (spec, reason) in due {
                switch reason {
                case .renewerUnreachable(let seconds):
                    logger.warning("renewer unreachable; this standby renews", metadata: ["cluster.renewer_silent_s": "\(seconds)", "cert": "\(spec.name)"])
                case .renewerNotRenewing(let lastCheck):
                    logger.warning(
                        "the renewer answers but has not checked this due certificate for a day (is its renew timer running?); this standby renews",
                        metadata: ["cert": "\(spec.name)", "renewer.last_check": "\(lastCheck.map { $0.formatted(.iso8601) } ?? "never")"])
                }
            }
            do {
                let report = try await renewer.run(due.map(\.spec), force: false)
                for (name, outcome) in report.outcomes {
                    logger.info("standby renewal finished: \(outcome.summary(name: name))", metadata: ["cert": "\(name)"])
                }
            } catch {
                logger.error("standby renewal could not start", metadata: ["error": "\(error)"])
            }
        }
    }
}
