import CertStore
import ClusterTrust
import Foundation
import InternalCA
import Renewal

/// What this node offers its peers, read from its store on every request (no cache to go stale).
public struct LocalNode: Sendable {
    /// This node's name.
    public let name: String
    /// This node's role, as configured.
    public let role: String
    /// The store served.
    public let store: CertificateStore
    /// The configured ACME directory, whose account is offered.
    public let acmeDirectoryURL: String?
    /// The cluster credentials, whose revocation list the catalogue passes on.
    public let credentials: ClusterCredentials?

    /// Creates the local view.
    public init(name: String, role: String, store: CertificateStore, acmeDirectoryURL: String?, credentials: ClusterCredentials? = nil) {
        self.name = name
        self.role = role
        self.store = store
        self.acmeDirectoryURL = acmeDirectoryURL
        self.credentials = credentials
    }

    /// The catalogue of everything in `live/` (sets whose meta cannot be read are left out).
    public func catalog(index: SyncIndex) throws(StoreError) -> PeerCatalog {
        var certificates: [CatalogCertificate] = []
        for name in try store.installedNames() {
            guard let meta = try? store.meta(name: name) else { continue }
            let record = (try? store.readState(RenewalRecord.self, key: RenewalRecord.key(for: name))) ?? nil
            let shared = record.map(\.shared).flatMap { $0.isEmpty ? nil : $0 }
            certificates.append(CatalogCertificate(meta: meta, renewal: shared))
        }
        var account: CatalogAccount?
        if let acmeDirectoryURL, let record = (try? store.loadAccount(directoryURL: acmeDirectoryURL))??.record {
            account = CatalogAccount(directoryURL: record.directoryURL, accountURL: record.accountURL)
        }
        // Present (empty when no renewal ever ran here) unless it cannot be read: then absent, which a standby takes
        // as "unknown", as from an older version, and never as "not renewing".
        let checks: [String: Date]?
        do {
            checks = try store.readState(RenewalChecks.self, key: RenewalChecks.key)?.checked ?? [:]
        } catch {
            checks = nil
        }
        return PeerCatalog(
            node: name, role: role, index: index, certificates: certificates, account: account, revocations: credentials?.current.signedRevocations,
            renewalChecks: checks)
    }

    /// The live bundle named `name`, or `nil` when there is none. The name is checked before any path is built.
    public func bundle(name: String) throws(StoreError) -> BundlePayload? {
        guard StoreName.isValid(name), let bundle = try store.liveBundle(name: name) else { return nil }
        let issuedBy = (try? store.meta(name: name))??.issuedBy
        return BundlePayload(name: name, fullchainPEM: bundle.fullchainPEM, privateKeyPEM: bundle.privateKeyPEM, issuedBy: issuedBy)
    }

    /// The internal CA (root and key), if this node has one.
    public func internalCA() throws(InternalCAError) -> InternalCAPayload? {
        guard let ca = try InternalCADirectory(stateDirectory: store.root).load() else { return nil }
        return InternalCAPayload(rootPEM: ca.root.pem, keyPEM: ca.keyPEM)
    }

    /// The registered ACME account for the configured directory, if any.
    public func account() throws(StoreError) -> AccountPayload? {
        guard let acmeDirectoryURL, let stored = try store.loadAccount(directoryURL: acmeDirectoryURL),
              let record = stored.record else { return nil }
        return AccountPayload(keyPEM: stored.keyPEM, record: record)
    }
}
