import CertStore
import CertkeeperConfig
import Durations
import Foundation
import InternalCA
import Logging
import Renewal
import X509
import SwiftASN1

/// What became of a certificate a peer offered.
public enum OfferOutcome: Sendable, Equatable {
    /// Installed; the hooks listed failed (empty when all succeeded).
    case installed(serial: String, failedHooks: [String])
    /// What this node holds is as new or newer.
    case notNewer
    /// This node's configuration has no certificate of that name.
    case notConfigured
    /// The peer's bundle was refused; this node's certificate is untouched.
    case rejected(reason: String)
    /// The bundle could not be fetched or installed (the peer or the disk failed); tried again later.
    case failed(reason: String)
}

/// Pulls, verifies and installs certificates that peers offer, one at a time.
///
/// A bundle is installed only when it parses, its key matches its certificate, its chain links, it covers the
/// names this node's configuration gives the certificate, it is valid now, and it is strictly newer (notBefore,
/// then serial) than what this node holds — checked again under the store lock, since a local `renew` may have
/// installed something meanwhile. Then the deploy hooks run, as after a renewal.
public actor SyncInstaller {
    private let configuration: CertkeeperConfiguration
    private let store: CertStore.CertificateStore
    private let deploy: DeployPlan
    private let verifier = BundleVerifier()
    private let logger: Logger
    private let clock: @Sendable () -> Date

    /// Creates the installer.
    public init(configuration: CertkeeperConfiguration, store: CertStore.CertificateStore, environment: [String: String], logger: Logger, clock: @escaping @Sendable () -> Date = Date.init) {
        self.configuration = configuration
        self.store = store
        self.deploy = DeployPlan(configuration: configuration, environment: environment)
        self.logger = logger
        self.clock = clock
    }

    /// Considers one catalogue entry of a peer, pulling the bundle only when it is newer than what is installed.
    public func consider(_ entry: CatalogCertificate, from peer: PeerClient) async -> OfferOutcome {
        var log = logger
        log[metadataKey: "peer"] = "\(peer.peerName)"
        log[metadataKey: "cert"] = "\(entry.name.prefix(64))"
        guard StoreName.isValid(entry.name) else {
            return reject("the certificate name \(String(reflecting: String(entry.name.prefix(64)))) is not a valid name", log)
        }
        guard let spec = configuration.certificate(named: entry.name) else {
            log.debug("peer offers a certificate this node does not configure; ignored")
            return .notConfigured
        }
        let current: CertificateMeta?
        do {
            current = try store.meta(name: entry.name)
        } catch {
            return fail("cannot read the installed certificate: \(error)", log)
        }
        if let current, !entry.isNewer(thanNotBefore: current.notBefore, serial: current.serial) {
            if current.sha256 == entry.sha256, current.issuedBy == peer.peerName, let shared = entry.renewal {
                adoptRenewalState(shared, name: entry.name, log)
            }
            return .notNewer
        }

        let payload: BundlePayload
        do {
            payload = try await peer.bundle(name: entry.name)
        } catch {
            return fail("\(error)", log)
        }
        let verified: VerifiedBundle
        do {
            let bundle = try CertificateBundle(fullchainPEM: payload.fullchainPEM, privateKeyPEM: payload.privateKeyPEM)
            verified = try verifier.verify(bundle, expectedDomains: spec.domains, now: clock())
        } catch {
            return reject("\(error)", log)
        }
        let issuedBy = payload.issuedBy.flatMap { StoreName.isValid($0) ? $0 : nil } ?? peer.peerName
        let lock: StoreLock
        do {
            lock = try await store.acquireLock(timeout: .clampedSeconds(configuration.renew.lockTimeout))
        } catch {
            return fail("\(error)", log)
        }
        // Held through the hooks and their record, as `renew` holds it: a cron `renew` that saw the owed deploy
        // meanwhile would run the same hooks at the same time and then overwrite this record.
        defer { lock.release() }
        let meta: CertificateMeta
        var record: RenewalRecord
        do {
            if spec.issuer == .internalCA, let refusal = try checkInternalRoot(verified, name: entry.name) {
                return reject(refusal, log)
            }
            if let installed = try store.meta(name: entry.name) {
                let offered = CatalogCertificate(
                    name: entry.name, serial: verified.serialHex, notBefore: verified.leaf.notValidBefore,
                    notAfter: verified.leaf.notValidAfter, sha256: verified.sha256Hex, domains: verified.domains)
                guard offered.isNewer(thanNotBefore: installed.notBefore, serial: installed.serial) else {
                    if installed.sha256 == verified.sha256Hex { return .notNewer }
                    // A race, not an attack: another peer's (or a local renew's) newer certificate got here first.
                    return reject("its certificate (serial \(verified.serialHex)) is not newer than the installed one (serial \(installed.serial))", log, level: .info)
                }
            }
            // The owed deploy is recorded before live/ swaps, so a crash after the swap still runs the hooks on the
            // next `renew`. Back-off belonged to renewing the certificate this one replaces.
            let shared = entry.sha256 == verified.sha256Hex ? entry.renewal : nil
            (meta, record) = try store.installRecorded(verified, name: entry.name, issuedBy: issuedBy, now: clock(), owesDeploy: true, change: {
                if let shared { $0.shared = shared }
                $0.backoff = nil
            }, logger: log)
        } catch {
            return fail("\(error)", log)
        }
        log.info("installed certificate from peer", metadata: [
            "cert.serial": "\(meta.serial)", "cert.not_after": "\(meta.notAfter)", "cert.issued_by": "\(meta.issuedBy)",
        ])
        let failed = await deploy.run(spec: spec, meta: meta, liveDirectory: store.liveDirectory(name: spec.name), logger: log)
        record.installing = nil
        record.pendingDeploy = failed.isEmpty ? nil : meta.serial
        record.failedHooks = failed.isEmpty ? nil : failed
        store.saveRenewalRecord(record, name: spec.name, logger: log)
        return .installed(serial: meta.serial, failedHooks: failed)
    }

    /// One internal root per cluster, checked and pinned under the store lock before the install: the root this
    /// node accepts is its own, else the pinned one, else the root of the internal certificate already live here
    /// (a node upgraded with one installed); with none of those, the offered root is pinned now. A leaf from
    /// another root was issued by a second node acting as the renewer, and is refused.
    /// - Returns: Why the bundle is refused, or `nil` when its root is this cluster's.
    private func checkInternalRoot(_ verified: VerifiedBundle, name: String) throws -> String? {
        guard let root = verified.chain.last else { return "an internal certificate without its root in the chain" }
        let directory = InternalCADirectory(stateDirectory: store.root)
        let accepted = try directory.acceptedPeerRoot()
        var acceptedKey = accepted?.certificate.publicKey
        var acceptedName = accepted?.certificate.subject.description
        if acceptedKey == nil, let live = try store.liveBundle(name: name),
           let liveRoot = (try? PEMDocument.parseMultiple(pemString: live.chainPEM))?.last.flatMap({ try? Certificate(derEncoded: $0.derBytes) }) {
            acceptedKey = liveRoot.publicKey
            acceptedName = liveRoot.subject.description
        }
        if let acceptedKey {
            guard acceptedKey == root.publicKey else {
                return "its internal certificate chains to another root ('\(root.subject)') than this cluster's ('\(acceptedName ?? "?")'): is a second node configured as the renewer?"
            }
        }
        try directory.pinPeerRoot(root)
        return nil
    }

    /// Whether this node should ask a renewer for its internal CA: a standby with `issuer: internal` certificates
    /// and no root of its own, which could not take them over otherwise.
    public var needsInternalCA: Bool {
        guard configuration.cluster?.role == .standby, !configuration.internalCertificates.isEmpty else { return false }
        return ((try? InternalCADirectory(stateDirectory: store.root).loadRoot()) ?? nil) == nil
    }

    /// What became of asking a renewer for its internal CA.
    public enum InternalCAAdoption: Sendable, Equatable {
        /// Installed (or this node has a root already).
        case adopted
        /// The renewer refused (403: it does not list this node with `role: standby`); asking again will not help.
        case refused
        /// Not now (no CA there yet, a network failure): ask again at the renewer's next answer.
        case unavailable
    }

    /// Fetches and installs the renewer's internal CA (see ``needsInternalCA``), under the store lock.
    public func adoptInternalCA(from peer: PeerClient) async -> InternalCAAdoption {
        var log = logger
        log[metadataKey: "peer"] = "\(peer.peerName)"
        guard needsInternalCA else { return .adopted }
        let payload: InternalCAPayload
        do {
            payload = try await peer.internalCA()
        } catch {
            let refused = error.isRefusal
            log.log(level: refused ? .warning : .info, "the renewer's internal CA is not to be had; this standby cannot take over internal certificates yet",
                    metadata: ["error": "\(error)"])
            return refused ? .refused : .unavailable
        }
        do {
            let lock = try await store.acquireLock(timeout: .clampedSeconds(configuration.renew.lockTimeout))
            defer { lock.release() }
            if try InternalCADirectory(stateDirectory: store.root).adopt(rootPEM: payload.rootPEM, keyPEM: payload.keyPEM, source: "peer \(peer.peerName)") {
                log.notice("adopted the renewer's internal CA: this standby can take over internal certificates")
            }
            return .adopted
        } catch let error as InternalCAError where error.code == .keyMismatch || error.code == .malformed {
            log.warning("the renewer's internal CA is not usable here", metadata: ["error": "\(error)"])
            return .refused
        } catch {
            // A lock held by a long renew, an I/O error: ask again at the renewer's next answer.
            log.info("cannot adopt the renewer's internal CA yet", metadata: ["error": "\(error)"])
            return .unavailable
        }
    }

    /// Copies the peer's ACME account when this node has no registered account for the same directory.
    /// - Returns: Whether an account was saved.
    public func adoptAccount(_ entry: CatalogAccount, from peer: PeerClient) async -> Bool {
        var log = logger
        log[metadataKey: "peer"] = "\(peer.peerName)"
        let directoryURL = configuration.acme.directoryURL
        guard entry.directoryURL == directoryURL else { return false }
        if let existing = try? store.loadAccount(directoryURL: directoryURL), existing.record != nil { return false }
        do {
            let account = try await peer.account()
            guard account.record.directoryURL == directoryURL else {
                log.warning("peer's ACME account refused: it is for another directory")
                return false
            }
            guard account.keyPEM.contains("PRIVATE KEY-----"), account.keyPEM.utf8.count < 16 * 1024 else {
                log.warning("peer's ACME account refused: the key is not a PEM private key")
                return false
            }
            try store.saveAccountKey(directoryURL: directoryURL, keyPEM: account.keyPEM)
            try store.saveAccountRecord(directoryURL: directoryURL, record: account.record)
            log.info("adopted the ACME account from peer", metadata: ["acme.account": "\(account.record.accountURL)"])
            return true
        } catch {
            log.warning("cannot adopt the peer's ACME account", metadata: ["error": "\(error)"])
            return false
        }
    }

    /// Takes the certificate's shared renewal state (ARI window, revocation) from the node that issued it.
    private func adoptRenewalState(_ shared: SharedRenewalState, name: String, _ log: Logger) {
        let key = RenewalRecord.key(for: name)
        var record = ((try? store.readState(RenewalRecord.self, key: key)) ?? nil) ?? RenewalRecord()
        guard record.shared != shared else { return }
        record.shared = shared
        do {
            try store.writeState(record, key: key)
            log.debug("renewal state taken from the certificate's issuer")
        } catch {
            log.warning("cannot save the renewal state", metadata: ["error": "\(error)"])
        }
    }

    private func reject(_ reason: String, _ log: Logger, level: Logger.Level = .warning) -> OfferOutcome {
        log.log(level: level, "refused certificate from peer", metadata: ["reason": "\(reason)"])
        return .rejected(reason: reason)
    }

    private func fail(_ reason: String, _ log: Logger) -> OfferOutcome {
        log.warning("cannot sync certificate from peer", metadata: ["reason": "\(reason)"])
        return .failed(reason: reason)
    }
}
