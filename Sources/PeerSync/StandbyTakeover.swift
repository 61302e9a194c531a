import CertkeeperConfig
import Foundation
import Logging
import Renewal

/// On a `standby` node: renews certificates itself once the renewer has been unreachable for `takeover_after` and a
/// certificate has been due for at least `takeover_margin`.
///
/// While the renewer answers, nothing happens, so two nodes that can see each other never order the same
/// certificate. When the renewer comes back, the newer certificate wins on every node (``SyncInstaller`` pulls only
/// strictly newer ones), and since the renewed certificate is no longer due, the renewer has nothing to do.
public struct StandbyTakeover: Sendable {
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

    /// The certificates this standby should renew now, or an empty list while the renewer answers (or has been
    /// silent for less than `takeover_after`).
    public func dueForTakeover(now: Date) -> [CertificateSpec] {
        guard let silence = directory.renewerSilence(now: now), silence >= takeoverAfter else { return [] }
        let cutoff = now.addingTimeInterval(-margin)
        return renewer.configuration.certificates.filter { spec in
            guard let decision = try? renewer.decision(for: spec, now: cutoff) else { return false }
            return decision.isDue
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
            let silence = directory.renewerSilence(now: now) ?? 0
            logger.warning("renewer unreachable; this standby renews", metadata: [
                "cluster.renewer_silent_s": "\(Int(silence))", "certificates": "\(due.map(\.name).joined(separator: ","))",
            ])
            do {
                let report = try await renewer.run(due, force: false)
                for (name, outcome) in report.outcomes {
                    logger.info("standby renewal finished: \(outcome.summary(name: name))", metadata: ["cert": "\(name)"])
                }
            } catch {
                logger.error("standby renewal could not start", metadata: ["error": "\(error)"])
            }
        }
    }
}
