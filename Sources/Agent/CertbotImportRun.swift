import CertStore
import CertbotImport
import Durations
import Foundation

/// `certkeeper import certbot`'s lock discipline: lock → plan (compared with the store under the lock the
/// installs hold) → install → release. A dry run plans without the lock and installs nothing.
public enum CertbotImportRun {
    /// Plans and, unless `dryRun`, applies the import into the context's store.
    /// - Returns: The plan and what each install did (empty for a dry run).
    /// - Throws: ``AgentError``: the lock could not be had (failure), the selection or certbot's files are invalid
    ///   (configuration; nothing imported).
    public static func run(
        _ context: NodeContext, importer: CertbotImporter, selection: ImportSelection, dryRun: Bool, now: @Sendable () -> Date = Date.init
    ) async throws(AgentError) -> (plan: ImportPlan, outcomes: [ImportOutcome]) {
        var lock: StoreLock?
        if !dryRun {
            do {
                lock = try await context.store.acquireLock(timeout: .clampedSeconds(context.configuration.renew.lockTimeout))
            } catch {
                throw .failure("another certkeeper run holds the store lock: \(error)")
            }
        }
        defer { lock?.release() }
        let plan: ImportPlan
        do {
            plan = try importer.plan(selection, now: now())
        } catch {
            throw .configuration(error.problems.map(\.description) + ["nothing was imported"])
        }
        let outcomes = dryRun ? [] : importer.apply(plan, nodeName: context.nodeName, now: now())
        return (plan, outcomes)
    }
}
