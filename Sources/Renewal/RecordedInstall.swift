import CertStore
import Foundation
import Logging

extension CertificateStore {
    /// Installs a verified bundle with its renewal record written *ahead* of the `live/` swap: the one way
    /// certkeeper installs a certificate that a renewal, a peer or an import brings (``Renewer``, `SyncInstaller`,
    /// `CertbotImporter`).
    ///
    /// The record, with `change` applied and (when `owesDeploy`) `pendingDeploy` set to the new serial, is written
    /// before ``install(_:name:issuedBy:now:)`` swaps `live/<name>`. A process killed anywhere after the swap thus
    /// leaves the deploy owed for the serial that is live, and the next `renew` runs the hooks; killed before the
    /// swap, the record names a serial that never went live, which every reader ignores (an owed deploy counts only
    /// while its serial is the live one). When the install fails, the previous record is written back.
    ///
    /// Call under the store lock, like ``install(_:name:issuedBy:now:)``.
    /// - Parameters:
    ///   - verified: The bundle to install.
    ///   - name: The certificate name.
    ///   - issuedBy: The node that issued it.
    ///   - now: The install time.
    ///   - owesDeploy: Whether deploy hooks must run for the new certificate (false for an import: the imported
    ///     certificate is already what the servers have).
    ///   - change: What else the install changes in the record (back-off cleared, ARI reset, …).
    ///   - logger: Where a failed state write is reported (a warning: the install goes ahead).
    /// - Returns: The installed meta and the record as written.
    /// - Throws: ``StoreError`` from the install; the record is then as before.
    public func installRecorded(
        _ verified: VerifiedBundle, name: String, issuedBy: String, now: Date, owesDeploy: Bool,
        change: (inout RenewalRecord) -> Void, logger: Logger
    ) throws(StoreError) -> (meta: CertificateMeta, record: RenewalRecord) {
        let key = RenewalRecord.key(for: name)
        let previous: RenewalRecord?
        do {
            previous = try readState(RenewalRecord.self, key: key)
        } catch {
            logger.warning("renewal state unreadable; starting a new one", metadata: ["cert.name": "\(name)", "error": "\(error)"])
            previous = nil
        }
        var record = previous ?? RenewalRecord()
        change(&record)
        if owesDeploy {
            record.pendingDeploy = verified.serialHex
            record.failedHooks = nil
        }
        let unchanged = record == (previous ?? RenewalRecord())
        let wroteAhead = !unchanged && saveRenewalRecord(record, name: name, logger: logger)
        let meta: CertificateMeta
        do {
            meta = try install(verified, name: name, issuedBy: issuedBy, now: now)
        } catch {
            if wroteAhead { saveRenewalRecord(previous ?? RenewalRecord(), name: name, logger: logger) }
            throw error
        }
        return (meta, record)
    }

    /// Writes the renewal record of `name`; a failure is logged as a warning and returns `false`.
    @discardableResult
    public func saveRenewalRecord(_ record: RenewalRecord, name: String, logger: Logger) -> Bool {
        do {
            try writeState(record, key: RenewalRecord.key(for: name))
            return true
        } catch {
            logger.warning("cannot save renewal state", metadata: ["cert.name": "\(name)", "error": "\(error)"])
            return false
        }
    }

    /// The serial whose deploy hooks are still owed, when it is the live certificate's; `nil` otherwise.
    public func owedDeploy(name: String) -> String? {
        guard let record = (try? readState(RenewalRecord.self, key: RenewalRecord.key(for: name))) ?? nil,
              let pending = record.pendingDeploy, let live = (try? meta(name: name)) ?? nil, live.serial == pending else { return nil }
        return pending
    }
}
