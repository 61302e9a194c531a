import ACMEProtocol
import CertStore
import CertkeeperConfig
import Durations
import Foundation
import RenewalPolicy

/// One line of `certkeeper status`.
public struct CertificateStatus: Codable, Sendable, Equatable {
    public var name: String
    public var domains: [String]
    public var serial: String?
    public var notAfter: Date?
    public var daysLeft: Double?
    /// When the next renewal is planned (the policy's time, or the end of a back-off).
    public var nextRenewal: Date?
    /// Why: the policy's reason (`lifetimeFraction`, `suggestedWindowOpen`, ...).
    public var reason: String
    public var lastError: String?
    /// Deploy hooks that failed for the installed certificate and will run again on the next `renew`.
    public var failedHooks: [String]?
    /// Whether the installed certificate's deploy hooks have not all succeeded yet: they failed (``failedHooks``),
    /// or the process that installed it stopped before they finished. The next `renew` runs them.
    public var deployOwed: Bool
    /// The deploy is owed while another run holds the store lock: its hooks are most likely running right now (or
    /// that run, or the next `renew`, runs them). Not a failure.
    public var deployInProgress: Bool
    public var issuedBy: String?
    public var version: Int?

    enum CodingKeys: String, CodingKey {
        case name, domains, serial, reason, version
        case notAfter = "not_after", daysLeft = "days_left", nextRenewal = "next_renewal"
        case lastError = "last_error", issuedBy = "issued_by", failedHooks = "failed_hooks", deployOwed = "deploy_owed"
        case deployInProgress = "deploy_in_progress"
    }
}

extension Renewer {
    /// The status of `specs` from the store alone (no network, no lock).
    public func status(_ specs: [CertificateSpec]) -> [CertificateStatus] {
        let now = clock()
        return specs.map { spec in
            let meta = try? store.meta(name: spec.name)
            let record = (try? store.readState(RenewalRecord.self, key: RenewalRecord.key(for: spec.name))) ?? RenewalRecord()
            let owesDeploy = record.owesDeploy(liveSerial: meta?.serial)
            let busy = owesDeploy && store.isLockHeldElsewhere()
            let owed = owesDeploy && !busy
            let next: Date?
            let reason: RenewalReason
            switch decision(spec: spec, meta: meta, record: record, now: now) {
            case .due(let why): (next, reason) = (now, why)
            case .notDue(let until, let why): (next, reason) = (until, why)
            case .backingOff(let until, let why): (next, reason) = (until, why)
            }
            // A follower renews nothing itself: its certificates come from the renewer (or a standby) by peer sync.
            let follower = configuration.cluster?.role == .follower
            return CertificateStatus(
                name: spec.name,
                domains: spec.domains,
                serial: meta?.serial,
                notAfter: meta?.notAfter,
                daysLeft: meta.map { ($0.notAfter.timeIntervalSince(now) / 86_400 * 10).rounded() / 10 },
                nextRenewal: follower ? nil : next,
                reason: follower ? "fromPeers" : reason.rawValue,
                lastError: record.backoff?.lastError ?? record.configurationError,
                failedHooks: record.pendingDeploy == meta?.serial ? record.failedHooks : nil,
                deployOwed: owed,
                deployInProgress: busy,
                issuedBy: meta?.issuedBy,
                version: meta?.version
            )
        }
    }

    /// Revokes the live certificate of `name` and marks it for renewal, holding the store lock so that a concurrent
    /// `renew` neither swaps the certificate underneath nor overwrites the mark.
    ///
    /// `keyCompromise` is signed with the certificate's own private key (what Let's Encrypt requires); other
    /// reasons with the account that ordered it.
    public func revoke(_ spec: CertificateSpec, reason: RevocationReason?) async throws(RenewalSetupError) -> String {
        guard spec.issuer == .acme else {
            throw RenewalSetupError("\(spec.name): issuer: internal has no revocation (clients cannot ask it); run 'certkeeper force-renew \(spec.name)' to replace the certificate")
        }
        let lock: StoreLock
        do {
            lock = try await store.acquireLock(timeout: .clampedSeconds(configuration.renew.lockTimeout))
        } catch {
            throw RenewalSetupError("another certkeeper run holds the lock: \(error)")
        }
        defer { lock.release() }
        // Under the lock, the bundle and its meta are of the same version.
        let bundle: CertificateBundle
        let serial: String
        do {
            guard let live = try store.liveBundle(name: spec.name), let meta = try store.meta(name: spec.name) else {
                throw RenewalSetupError("\(spec.name): no certificate is installed")
            }
            (bundle, serial) = (live, meta.serial)
        } catch let error as RenewalSetupError {
            throw error
        } catch {
            throw RenewalSetupError("\(spec.name): \(error)")
        }
        let der: [UInt8]
        do {
            der = try PEMChain.firstCertificateDER(bundle.certificatePEM)
        } catch {
            throw RenewalSetupError("\(spec.name): installed certificate does not parse: \(error)")
        }
        let session = RenewalSession(configuration: configuration, store: store, environment: environment, logger: logger, clock: clock)
        do {
            if reason == .keyCompromise {
                let client = try await session.acme.client(signingWith: try AccountKey(pem: bundle.privateKeyPEM))
                try await client.revoke(certificateDER: der, reason: reason, account: nil)
            } else {
                let (client, account) = try await session.acme.clientAndAccount()
                try await client.revoke(certificateDER: der, reason: reason, account: account)
            }
        } catch {
            await session.close()
            throw RenewalSetupError("\(spec.name): revocation failed: \(Self.oneLine(error))")
        }
        await session.close()
        var record = (try? store.readState(RenewalRecord.self, key: RenewalRecord.key(for: spec.name))) ?? RenewalRecord()
        record.revokedSerial = serial
        do {
            try store.writeState(record, key: RenewalRecord.key(for: spec.name))
        } catch {
            throw RenewalSetupError("\(spec.name): revoked, but cannot record it: \(error)")
        }
        logger.notice("certificate revoked; it will be renewed on the next run", metadata: ["cert.name": "\(spec.name)", "cert.serial": "\(serial)"])
        return serial
    }
}
