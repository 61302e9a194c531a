import CertStore
import Foundation
import Logging

extension CertificateStore {
    /// Installs a verified bundle with its deploy debt written *ahead* of the `live/` swap: the one way certkeeper
    /// installs a certificate that a renewal, a peer or an import brings (``Renewer``, `SyncInstaller`,
    /// `CertbotImporter`).
    ///
    /// 1. When `owesDeploy`, the record's ``RenewalRecord/installing`` is set to the new serial and written before
    ///    ``install(_:name:issuedBy:now:)`` swaps `live/<name>`; nothing else changes yet. Killed after the swap,
    ///    the deploy is owed for the serial that is live and the next `renew` runs the hooks; killed before it, the
    ///    serial never went live and is ignored, and an older debt (`pendingDeploy` of the live certificate) stays.
    ///    When that write fails, nothing is installed: a swap without its debt on disk could lose a deploy.
    /// 2. After the swap, `change` is applied (back-off cleared, ARI reset, …), the debt moves to `pendingDeploy`
    ///    (it is settled when the hooks have run), and the record is written again.
    ///
    /// When the install fails, the record is written back as it was. Call under the store lock, like
    /// ``install(_:name:issuedBy:now:)``, and keep holding it through the deploy hooks.
    /// - Parameters:
    ///   - verified: The bundle to install.
    ///   - name: The certificate name.
    ///   - issuedBy: The node that issued it.
    ///   - now: The install time.
    ///   - owesDeploy: Whether deploy hooks must run for the new certificate (false for an import: the imported
    ///     certificate is already what the servers have).
    ///   - change: What else the install changes in the record, applied once it is live.
    ///   - logger: Where failed state writes after the swap are reported (warnings: the certificate is installed).
    /// - Returns: The installed meta and the record as written after the swap.
    /// - Throws: ``StoreError`` from the write ahead or the install; `live/<name>` is then unchanged.
    public func installRecorded(
        _ verified: VerifiedBundle, name: String, issuedBy: String, now: Date, owesDeploy: Bool,
        change: (inout RenewalRecord) -> Void, logger: Logger
    ) throws(StoreError) -> (meta: CertificateMeta, record: RenewalRecord) {
        let key = RenewalRecord.key(for: name)
        let before: RenewalRecord
        do {
            before = try readState(RenewalRecord.self, key: key) ?? RenewalRecord()
        } catch {
            logger.warning("renewal state unreadable; starting a new one", metadata: ["cert.name": "\(name)", "error": "\(error)"])
            before = RenewalRecord()
        }
        var record = before
        if owesDeploy {
            record.installing = verified.serialHex
            try writeState(record, key: key)
        }
        let meta: CertificateMeta
        do {
            meta = try install(verified, name: name, issuedBy: issuedBy, now: now)
        } catch {
            if owesDeploy { saveRenewalRecord(before, name: name, logger: logger) }
            throw error
        }
        change(&record)
        if owesDeploy {
            record.installing = nil
            record.pendingDeploy = meta.serial
            record.failedHooks = nil
        }
        if record != before || owesDeploy { saveRenewalRecord(record, name: name, logger: logger) }
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

    /// The live certificate's serial when its deploy hooks are still owed (``RenewalRecord/owesDeploy(liveSerial:)``);
    /// `nil` otherwise.
    public func owedDeploy(name: String) -> String? {
        guard let record = (try? readState(RenewalRecord.self, key: RenewalRecord.key(for: name))) ?? nil,
              let live = (try? meta(name: name)) ?? nil, record.owesDeploy(liveSerial: live.serial) else { return nil }
        return live.serial
    }
}
