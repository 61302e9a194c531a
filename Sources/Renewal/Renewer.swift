import ACMEClient
import ACMEProtocol
import AsyncHTTPClient
import CertHooks
import CertStore
import CertkeeperConfig
import Durations
import Foundation
import Crypto
import Logging
import RenewalPolicy

/// Renews the configured certificates: lock → check again → order (or sign with the internal CA) → verify →
/// install → hooks (certmagic's `renewCert` shape), several at once up to `renew.concurrency`.
///
/// Time and randomness are injected so tests can fix them; everything that touches the network is created lazily,
/// so a run with nothing due reads only the config and the store.
public final class Renewer: Sendable {
    public let configuration: CertkeeperConfiguration
    public let store: CertificateStore
    let logger: Logger
    let clock: @Sendable () -> Date
    let nodeName: String
    let environment: [String: String]
    /// In a cluster: pulls what the reachable peers hold that is newer here, before anything due is ordered (a
    /// standby's takeover certificate, a renewer's while this node's daemon was down), so a node never orders what
    /// another node already has. `nil` on a single node.
    let catchUp: (@Sendable () async -> Void)?
    let backoff = Backoff()

    /// - Parameters:
    ///   - nodeName: recorded as the issuing node in `meta.json`.
    ///   - environment: the process environment passed on to hooks (PATH and friends).
    ///   - catchUp: in a cluster, pulls newer certificates from the reachable peers before anything due is ordered.
    public init(
        configuration: CertkeeperConfiguration,
        store: CertificateStore,
        nodeName: String,
        environment: [String: String],
        logger: Logger,
        clock: @escaping @Sendable () -> Date = Date.init,
        catchUp: (@Sendable () async -> Void)? = nil
    ) {
        self.catchUp = catchUp
        self.configuration = configuration
        self.store = store
        self.nodeName = nodeName
        self.environment = environment
        self.logger = logger
        self.clock = clock
    }

    /// Selects certificates by name; every name must be configured.
    public func select(_ names: [String]) throws(RenewalSetupError) -> [CertificateSpec] {
        guard !names.isEmpty else { return configuration.certificates }
        let unknown = names.filter { name in !configuration.certificates.contains(where: { $0.name == name }) }
        guard unknown.isEmpty else {
            throw RenewalSetupError("no certificate named \(unknown.map { "'\($0)'" }.joined(separator: ", ")) in the configuration")
        }
        return configuration.certificates.filter { names.contains($0.name) }
    }

    // MARK: Decisions

    /// The policy's decision for `spec` from the store alone (no network).
    public func decision(for spec: CertificateSpec, now: Date) throws(StoreError) -> RenewalDecision {
        let meta = try store.meta(name: spec.name)
        let record = try store.readState(RenewalRecord.self, key: RenewalRecord.key(for: spec.name)) ?? RenewalRecord()
        return decision(spec: spec, meta: meta, record: record, now: now)
    }

    func decision(spec: CertificateSpec, meta: CertificateMeta?, record: RenewalRecord, now: Date) -> RenewalDecision {
        // A renew_before the CA's lifetime made impossible is capped (see dueAtIssuance), never a loop.
        let renewBefore = record.renewBeforeCap.map { cap in spec.renewBefore.map { min($0, cap) } ?? cap } ?? spec.renewBefore
        let policy = RenewalPolicy(renewBefore: renewBefore)
        guard let meta else { return policy.decide(now: now, validity: nil, backoff: record.backoff) }
        let invalidatedBy: RenewalReason?
        if record.revokedSerial == meta.serial {
            invalidatedBy = .revoked
        } else if !NameCoverage.sameNames(installed: meta.domains, configured: spec.domains) {
            invalidatedBy = .domainsChanged
        } else if meta.keyType != spec.keyType.rawValue {
            invalidatedBy = .keyTypeChanged
        } else {
            invalidatedBy = nil
        }
        // The internal CA has no ARI: a window left from an ACME certificate of the same name does not apply.
        let window = spec.issuer == .acme ? record.ari.flatMap { $0.certID == meta.ariCertID ? $0.window : nil } : nil
        return policy.decide(
            now: now,
            validity: Validity(notBefore: meta.notBefore, notAfter: meta.notAfter),
            invalidatedBy: invalidatedBy,
            suggestedWindow: window,
            windowFraction: meta.ariCertID.map { WindowFraction.of(certID: $0, node: nodeName) } ?? 0,
            backoff: record.backoff
        )
    }

    /// Whether the installed certificate's deploy hooks still have to succeed.
    func hasPendingDeploy(_ spec: CertificateSpec) -> Bool {
        store.owedDeploy(name: spec.name) != nil
    }

    /// Whether ARI should be asked about `spec` now: the certificate has a certID and the last answer is stale.
    func needsARIPoll(spec: CertificateSpec, now: Date) -> Bool {
        guard spec.issuer == .acme, let meta = try? store.meta(name: spec.name), let certID = meta.ariCertID else { return false }
        let record = (try? store.readState(RenewalRecord.self, key: RenewalRecord.key(for: spec.name))) ?? nil
        guard let ari = record?.ari, ari.certID == certID else { return true }
        return ari.nextPoll <= now
    }

    // MARK: Running

    /// Renews what is due among `specs` (everything when `force`), holding the store lock.
    /// - Parameter randomDelay: called once, after the first check found work, before taking the lock
    ///   (cron's random sleep); pass `nil` to skip it.
    public func run(_ specs: [CertificateSpec], force: Bool, randomDelay: (@Sendable () async -> Void)? = nil) async throws(RenewalSetupError) -> RunReport {
        do {
            try store.prepare()
        } catch {
            throw RenewalSetupError("\(error)")
        }
        store.removeStaleTemporaries(now: clock())
        // A quick look without the network: if nothing is due and no ARI answer is stale, we are done.
        let now = clock()
        let quick = specs.map { spec in (try? decision(for: spec, now: now)) ?? .due(.missing) }
        let hasWork = force || quick.contains(where: \.isDue) || specs.contains(where: { needsARIPoll(spec: $0, now: now) || hasPendingDeploy($0) })
        guard hasWork else {
            recordChecks(specs)
            return RunReport(outcomes: zip(specs, quick).map { spec, decision in
                let lastError = (try? store.readState(RenewalRecord.self, key: RenewalRecord.key(for: spec.name)))??.backoff?.lastError
                return (spec.name, Self.outcome(for: decision, lastError: lastError ?? ""))
            })
        }
        if let randomDelay, quick.contains(where: \.isDue) || force { await randomDelay() }
        // Before the lock (installs from peers take it themselves); the check under the lock then sees what arrived.
        if !force, let catchUp, quick.contains(where: \.isDue) { await catchUp() }

        let lock: StoreLock
        do {
            lock = try await store.acquireLock(timeout: .clampedSeconds(configuration.renew.lockTimeout))
        } catch {
            throw RenewalSetupError("another certkeeper run holds the lock: \(error)")
        }
        defer { lock.release() }

        let session = RenewalSession(configuration: configuration, store: store, environment: environment, logger: logger, clock: clock)
        let outcomes = await withTaskGroup(of: (Int, CertificateOutcome).self) { group in
            var next = 0
            var results: [(Int, CertificateOutcome)] = []
            func addNext() {
                guard next < specs.count else { return }
                let index = next
                next += 1
                group.addTask { (index, await self.process(specs[index], force: force, session: session)) }
            }
            for _ in 0..<max(1, configuration.renew.concurrency) { addNext() }
            for await result in group {
                results.append(result)
                addNext()
            }
            return results.sorted(by: { $0.0 < $1.0 }).map(\.1)
        }
        await session.close()
        recordChecks(specs)
        return RunReport(outcomes: zip(specs, outcomes).map { ($0.name, $1) })
    }

    /// Notes that `specs` were checked now (``RenewalChecks``); a failure to write it is logged, nothing more.
    func recordChecks(_ specs: [CertificateSpec]) {
        do {
            let checks = try store.readState(RenewalChecks.self, key: RenewalChecks.key) ?? RenewalChecks()
            try store.writeState(checks.recording(specs.map(\.name), at: clock()), key: RenewalChecks.key)
        } catch {
            logger.warning("cannot record the renewal check", metadata: ["error": "\(error)"])
        }
    }

    static func outcome(for decision: RenewalDecision, lastError: String) -> CertificateOutcome {
        switch decision {
        case .notDue(let until, let reason): .notDue(until: until, reason: reason)
        case .backingOff(let until, _): .backingOff(until: until, lastError: lastError)
        case .due(let reason): .failed(reason: reason, error: "not attempted", nextAttempt: .distantPast)
        }
    }

    /// Check again under the lock, then issue if due.
    func process(_ spec: CertificateSpec, force: Bool, session: RenewalSession) async -> CertificateOutcome {
        var log = logger
        log[metadataKey: "cert.name"] = "\(spec.name)"
        let meta: CertificateMeta?
        var record: RenewalRecord
        do {
            meta = try store.meta(name: spec.name)
            record = try store.readState(RenewalRecord.self, key: RenewalRecord.key(for: spec.name)) ?? RenewalRecord()
        } catch {
            log.error("cannot read the store: \(error)")
            return .failed(reason: .missing, error: "\(error)", nextAttempt: clock())
        }
        if !force, spec.issuer == .acme, let meta, let certID = meta.ariCertID, (record.ari?.certID != certID || record.ari!.nextPoll <= clock()) {
            record.ari = await session.pollARI(certID: certID, previous: record.ari, logger: log)
            try? store.writeState(record, key: RenewalRecord.key(for: spec.name))
        }
        let decision = force ? .due(.forced) : decision(spec: spec, meta: meta, record: record, now: clock())
        let reason: RenewalReason
        switch decision {
        case .notDue(let until, let why):
            if let meta, record.owesDeploy(liveSerial: meta.serial) {
                log.info("running the deploy hooks that failed last time", metadata: ["cert.serial": "\(meta.serial)"])
                let failed = await deploy(spec, meta: meta, record: &record, session: session, logger: log)
                return .redeployed(meta, failedHooks: failed)
            }
            log.debug("not due", metadata: ["renew.until": "\(RFC3339.format(until))", "renew.reason": "\(why.rawValue)"])
            return .notDue(until: until, reason: why)
        case .backingOff(let until, _):
            let lastError = record.backoff?.lastError ?? ""
            log.warning("due but backing off after \(record.backoff?.failures ?? 0) failure(s)", metadata: ["renew.until": "\(RFC3339.format(until))", "renew.last_error": "\(lastError)"])
            return .backingOff(until: until, lastError: lastError)
        case .due(let why):
            reason = why
        }
        log.info("renewing", metadata: ["renew.reason": "\(reason.rawValue)", "cert.domains": "\(spec.domains.joined(separator: " "))"])
        do {
            // Refuse before ordering what could not be installed (a certbot directory at live/<name>): ordering
            // anyway would burn the CA's duplicate-certificate limit on every retry.
            try store.checkInstallable(name: spec.name)
            let verified = try await session.issue(spec, replacing: meta, logger: log)
            let now = clock()
            let installed: CertificateMeta
            // The owed deploy is on disk before live/ swaps: killed after the swap, the next run still runs the hooks.
            (installed, record) = try store.installRecorded(verified, name: spec.name, issuedBy: nodeName, now: now, owesDeploy: true, change: {
                $0.backoff = nil
                $0.lastSuccess = now
                $0.revokedSerial = nil
                $0.ari = spec.issuer != .acme ? nil : verified.ariCertID.map { ARIRecord(certID: $0, window: nil, nextPoll: now.addingTimeInterval(RenewalSession.ariPollInterval)) }
            }, logger: log)
            let failed = await deploy(spec, meta: installed, record: &record, session: session, logger: log)
            if let dueAgain = dueAtIssuance(spec, installed: installed, record: &record, logger: log) { return dueAgain }
            return failed.isEmpty ? .renewed(installed, reason: reason) : .renewedWithHookFailures(installed, reason: reason, failedHooks: failed)
        } catch {
            let acmeError = error as? ACMEError
            let message = Self.oneLine(error)
            record.backoff = backoff.recordFailure(
                previous: record.backoff, now: clock(), retryAfter: acmeError?.retryAfter, error: message,
                permanent: acmeError.map { !$0.isTransient } ?? (error is StoreError && (error as! StoreError).code == .liveNotManaged)
            )
            do {
                try store.writeState(record, key: RenewalRecord.key(for: spec.name))
            } catch let stateError {
                log.warning("cannot save back-off state: \(stateError)")
            }
            log.error("renewal failed; keeping the current certificate", metadata: ["error": "\(message)", "renew.next_attempt": "\(RFC3339.format(record.backoff!.nextAttempt))"])
            return .failed(reason: reason, error: message, nextAttempt: record.backoff!.nextAttempt)
        }
    }

    /// Runs the deploy hooks for an installed certificate whose deploy is already recorded as owed (by
    /// ``CertificateStore/installRecorded(_:name:issuedBy:now:owesDeploy:change:logger:)`` or an earlier failure),
    /// and records whether they must run again.
    func deploy(_ spec: CertificateSpec, meta: CertificateMeta, record: inout RenewalRecord, session: RenewalSession, logger: Logger) async -> [String] {
        let failed = await session.runDeployHooks(spec: spec, meta: meta, liveDirectory: store.liveDirectory(name: spec.name), logger: logger)
        record.installing = nil
        record.pendingDeploy = failed.isEmpty ? nil : meta.serial
        record.failedHooks = failed.isEmpty ? nil : failed
        store.saveRenewalRecord(record, name: spec.name, logger: logger)
        return failed
    }

    /// A certificate that is due the moment it is issued would be ordered again on every check (a standby's every
    /// few seconds) until the CA's duplicate limit stops it: `renew_before` at or above the lifetime the CA gives
    /// (Let's Encrypt's 160-hour profile with `renew_before: 7d`). That is a configuration error: it is recorded
    /// (``RenewalRecord/configurationError``, which `status` shows and exits 1 for) and, until a certificate is
    /// issued for which the configured `renew_before` works, half the lifetime is used instead, so the certificate
    /// renews at half its life rather than in a loop or at a fixed back-off.
    /// - Returns: The outcome to report, or `nil` when the configured `renew_before` fits the new certificate.
    func dueAtIssuance(_ spec: CertificateSpec, installed: CertificateMeta, record: inout RenewalRecord, logger: Logger) -> CertificateOutcome? {
        let now = clock()
        var asConfigured = record
        asConfigured.renewBeforeCap = nil
        guard case .due(let why) = decision(spec: spec, meta: installed, record: asConfigured, now: now) else {
            if record.renewBeforeCap != nil || record.configurationError != nil {
                record.renewBeforeCap = nil
                record.configurationError = nil
                store.saveRenewalRecord(record, name: spec.name, logger: logger)
            }
            return nil
        }
        let lifetime = installed.notAfter.timeIntervalSince(installed.notBefore)
        let setting = spec.renewBefore.map { "renew_before \(Self.days($0))" } ?? "the renewal rule"
        let message = "the new certificate is due again at once (\(why.rawValue)): \(setting) is not shorter than its lifetime of \(Self.days(lifetime)); renewing at half its life until renew_before is lowered for certificates '\(spec.name)'"
        record.renewBeforeCap = lifetime / 2
        record.configurationError = message
        store.saveRenewalRecord(record, name: spec.name, logger: logger)
        let next = installed.notAfter.addingTimeInterval(-lifetime / 2)
        logger.error("certificate due again at issuance; renewing it at half its life instead", metadata: [
            "cert.serial": "\(installed.serial)", "renew.reason": "\(why.rawValue)",
            "cert.lifetime_s": "\(Int(lifetime))", "renew.next": "\(RFC3339.format(next))",
        ])
        return .renewedButDueAgain(installed, error: message, nextAttempt: next)
    }

    /// A span as days with one decimal (`6.7 days`).
    static func days(_ seconds: TimeInterval) -> String {
        String(format: "%.1f days", seconds / 86_400)
    }

    static func oneLine(_ error: any Error) -> String {
        String(describing: error).split(whereSeparator: \.isNewline).joined(separator: " ")
    }
}

/// Whether the installed names are exactly the configured ones (case-insensitive): a removed domain is a change too.
enum NameCoverage {
    static func sameNames(installed: [String], configured: [String]) -> Bool {
        Set(installed.map { $0.lowercased() }) == Set(configured.map { $0.lowercased() })
    }
}

/// A stable point in ARI's window per certificate and node (RFC 9773 §4.2 asks for a random one): every run
/// agrees on it, different certificates and nodes spread out.
enum WindowFraction {
    static func of(certID: String, node: String) -> Double {
        let digest = Array(SHA256.hash(data: Array("\(certID)|\(node)".utf8)))
        let value = digest.prefix(8).reduce(UInt64(0)) { $0 << 8 | UInt64($1) }
        return Double(value >> 11) / Double(1 << 53)
    }
}
