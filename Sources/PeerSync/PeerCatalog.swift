import CertStore
import ClusterTrust
import Foundation
import Renewal

/// What a node holds, as it tells its peers: `GET /v1/catalog`.
public struct PeerCatalog: Codable, Sendable, Equatable {
    /// The node's name.
    public var node: String
    /// The node's configured role (`renewer`, `follower`, `standby`).
    public var role: String
    /// The node's change index when the catalogue was made.
    public var index: SyncIndex
    /// Every certificate in the node's `live/`.
    public var certificates: [CatalogCertificate]
    /// The node's ACME account for the configured directory, if it has a registered one.
    public var account: CatalogAccount?
    /// The cluster's revocation lists as this node has them (one per trusted cluster CA, signed by it; every node
    /// passes them on).
    public var revocations: [SignedRevocationList]?
    /// When this node's renewal last checked each certificate (``RenewalChecks``): a standby's sign that the
    /// renewer is renewing, not only answering.
    public var renewalChecks: [String: Date]?

    /// Creates a catalogue.
    public init(
        node: String, role: String, index: SyncIndex, certificates: [CatalogCertificate], account: CatalogAccount?,
        revocations: [SignedRevocationList]? = nil, renewalChecks: [String: Date]? = nil
    ) {
        self.renewalChecks = renewalChecks
        self.node = node
        self.role = role
        self.index = index
        self.certificates = certificates
        self.account = account
        self.revocations = revocations
    }

    /// The entry named `name`.
    public func certificate(named name: String) -> CatalogCertificate? {
        certificates.first { $0.name == name }
    }
}

/// One certificate in a ``PeerCatalog``: enough to decide whether to pull it, and to show it.
public struct CatalogCertificate: Codable, Sendable, Equatable {
    /// The certificate name (`live/<name>`).
    public var name: String
    /// Leaf serial, lowercase hex.
    public var serial: String
    /// Leaf notBefore.
    public var notBefore: Date
    /// Leaf notAfter.
    public var notAfter: Date
    /// SHA-256 of the leaf DER, hex.
    public var sha256: String
    /// The leaf's DNS names.
    public var domains: [String]
    /// The node that issued it.
    public var issuedBy: String?
    /// The renewal state that travels with the certificate (ARI window, revocation), from the node holding it.
    public var renewal: SharedRenewalState?

    /// Creates an entry.
    public init(
        name: String, serial: String, notBefore: Date, notAfter: Date, sha256: String, domains: [String],
        issuedBy: String? = nil, renewal: SharedRenewalState? = nil
    ) {
        self.name = name
        self.serial = serial
        self.notBefore = notBefore
        self.notAfter = notAfter
        self.sha256 = sha256
        self.domains = domains
        self.issuedBy = issuedBy
        self.renewal = renewal
    }

    /// The entry describing an installed certificate and its renewal record.
    public init(meta: CertificateMeta, renewal: SharedRenewalState? = nil) {
        self.init(
            name: meta.name, serial: meta.serial, notBefore: meta.notBefore, notAfter: meta.notAfter, sha256: meta.sha256,
            domains: meta.domains, issuedBy: meta.issuedBy, renewal: renewal)
    }

    /// Whether this certificate should replace `installed`: a later notBefore, or the same notBefore and a larger
    /// serial. Anything else (older, the same certificate) is not newer, so two nodes never trade a certificate
    /// back and forth.
    public func isNewer(thanNotBefore notBefore: Date, serial: String) -> Bool {
        let mine = self.notBefore.timeIntervalSince1970.rounded(.down)
        let theirs = notBefore.timeIntervalSince1970.rounded(.down)
        if mine != theirs { return mine > theirs }
        return SerialOrder.compare(self.serial, serial) == .orderedDescending
    }
}

/// An ACME account in a ``PeerCatalog``: which directory, and a digest to tell whether it changed.
public struct CatalogAccount: Codable, Sendable, Equatable {
    /// The ACME directory URL.
    public var directoryURL: String
    /// The account URL.
    public var accountURL: String

    /// Creates an entry.
    public init(directoryURL: String, accountURL: String) {
        self.directoryURL = directoryURL
        self.accountURL = accountURL
    }
}

/// Orders hex serial numbers as the integers they are.
public enum SerialOrder {
    /// Compares two hex serials numerically (leading zeros ignored, case ignored).
    public static func compare(_ left: String, _ right: String) -> ComparisonResult {
        let a = normalised(left)
        let b = normalised(right)
        if a.count != b.count { return a.count < b.count ? .orderedAscending : .orderedDescending }
        if a == b { return .orderedSame }
        return a < b ? .orderedAscending : .orderedDescending
    }

    private static func normalised(_ serial: String) -> String {
        let lower = serial.lowercased().filter { $0 != ":" }
        let trimmed = lower.drop { $0 == "0" }
        return trimmed.isEmpty ? "0" : String(trimmed)
    }
}

/// A certificate bundle as one peer sends it to another: `GET /v1/certificates/<name>`. Only ever sent over
/// mutual TLS; its description never shows the key.
public struct BundlePayload: Codable, Sendable, CustomStringConvertible {
    /// The certificate name.
    public var name: String
    /// Leaf then intermediates, PEM.
    public var fullchainPEM: String
    /// The leaf's private key, PEM.
    public var privateKeyPEM: String
    /// The node that issued it (from its meta.json), carried along so every node records the same origin.
    public var issuedBy: String?

    /// Creates a payload.
    public init(name: String, fullchainPEM: String, privateKeyPEM: String, issuedBy: String?) {
        self.name = name
        self.fullchainPEM = fullchainPEM
        self.privateKeyPEM = privateKeyPEM
        self.issuedBy = issuedBy
    }

    /// The name only.
    public var description: String { "BundlePayload(\(name), key: <redacted>)" }
}

/// An ACME account as one peer sends it to another: `GET /v1/account`.
public struct AccountPayload: Codable, Sendable, CustomStringConvertible {
    /// The account key, PEM.
    public var keyPEM: String
    /// The registration.
    public var record: AccountRecord

    /// Creates a payload.
    public init(keyPEM: String, record: AccountRecord) {
        self.keyPEM = keyPEM
        self.record = record
    }

    /// Without the key.
    public var description: String { "AccountPayload(\(record.accountURL), key: <redacted>)" }
}

/// The internal CA as a renewer sends it to a standby it lists with `role: standby`: the root and its key.
public struct InternalCAPayload: Codable, Sendable, CustomStringConvertible {
    /// The root certificate, PEM.
    public var rootPEM: String
    /// The root's private key, PEM.
    public var keyPEM: String

    /// Creates a payload.
    public init(rootPEM: String, keyPEM: String) {
        self.rootPEM = rootPEM
        self.keyPEM = keyPEM
    }

    /// Without the key.
    public var description: String { "InternalCAPayload(key: <redacted>)" }
}

/// JSON coding shared by the peer API's server and client (dates as ISO 8601 with fractions dropped). Package
/// visible for the fuzz targets, which decode what a follower decodes.
package enum PeerJSON {
    package static let encoder: JSONEncoder = {
        let encoder = JSONEncoder()
        encoder.dateEncodingStrategy = .iso8601
        encoder.outputFormatting = [.sortedKeys]
        return encoder
    }()

    package static let decoder: JSONDecoder = {
        let decoder = JSONDecoder()
        decoder.dateDecodingStrategy = .iso8601
        return decoder
    }()
}
