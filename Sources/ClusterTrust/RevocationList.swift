import Crypto
import Foundation
import X509

/// The cluster's revoked nodes: `certkeeper cluster revoke-node NAME` adds one, the cluster CA signs the list, and
/// it travels in every peer's catalogue until every node enforces it.
///
/// A node is revoked by name and time: every certificate naming it (``PeerAllowList/nodeNames(of:)``) whose
/// notBefore is at or before ``RevokedNode/revokedAt`` is refused by every peer API, whatever address it comes
/// from. A node given a new certificate after its revocation (`cluster add-node` starts the new one after the
/// revocation time) is a peer again: a lost node is replaced under its own name.
///
/// Each cluster CA keeps its own list, and a list's entries cover only certificates that CA issued: during a CA
/// rotation the old CA's key (perhaps the reason for the rotation) cannot revoke the new CA's nodes. A CA's lists
/// are ordered by ``version``; a node installs one only when it is signed by a cluster CA it trusts and its version
/// is higher than the one it has from that CA, so an old list replayed by a peer changes nothing. Versions follow
/// the clock (``nextVersion(after:now:)``) and may not run more than a day ahead of the receiver's, so a forged
/// list cannot take a version no later list can pass.
public struct RevocationList: Codable, Sendable, Equatable {
    /// The most entries a list may have (a cluster has a few dozen nodes; this bounds what a peer can make us parse).
    public static let maximumEntries = 10_000
    /// How far a list's version may run ahead of the receiver's clock (in seconds since 1970).
    public static let versionLead = 86_400

    /// The version after `current` signed at `now`: one more, and at least the current Unix time, so that a list
    /// made from a restored older backup still outranks what the cluster has.
    public static func nextVersion(after current: Int, now: Date) -> Int {
        max(current + 1, Int(now.timeIntervalSince1970.rounded(.down)))
    }

    /// The cluster's name, from the signing CA's common name.
    public var cluster: String
    /// Increases by one with every change.
    public var version: Int
    /// When this version was signed.
    public var issuedAt: Date
    /// The revoked nodes, by name.
    public var revoked: [RevokedNode]

    /// Creates a list.
    public init(cluster: String, version: Int, issuedAt: Date, revoked: [RevokedNode]) {
        self.cluster = cluster
        self.version = version
        self.issuedAt = issuedAt
        self.revoked = revoked
    }

    /// This list with `node` revoked at `time` (an earlier entry for the same name is replaced), one version on.
    public func revoking(_ node: String, at now: Date, reason: String?) -> RevocationList {
        // Whole seconds, as the list's JSON and X.509 times carry them.
        let time = Date(timeIntervalSince1970: now.timeIntervalSince1970.rounded(.down))
        var next = self
        next.version = Self.nextVersion(after: version, now: time)
        next.issuedAt = time
        next.revoked.removeAll { $0.node == node }
        next.revoked.append(RevokedNode(node: node, revokedAt: time, reason: reason))
        next.revoked.sort { $0.node < $1.node }
        return next
    }

    /// The entry revoking `certificate`, or `nil` when it is not revoked.
    public func revocation(of certificate: Certificate) -> RevokedNode? {
        let names = PeerAllowList.nodeNames(of: certificate)
        return revoked.first { entry in
            names.contains(entry.node) && certificate.notValidBefore <= entry.revokedAt
        }
    }

    /// The entry for `node`, if it is revoked.
    public func entry(for node: String) -> RevokedNode? {
        revoked.first { $0.node == node }
    }

    /// Whether the list keeps the rules: a positive version, at most ``maximumEntries`` valid node names, each once,
    /// and a reason of at most 200 characters.
    func problem(now: Date = Date()) -> String? {
        guard version >= 1 else { return "version \(version) is not positive" }
        let latest = Int(now.timeIntervalSince1970.rounded(.down)) + Self.versionLead
        guard version <= latest else { return "version \(version) runs more than a day ahead of this node's clock" }
        guard revoked.count <= Self.maximumEntries else { return "\(revoked.count) entries, more than \(Self.maximumEntries)" }
        var seen = Set<String>()
        for entry in revoked {
            if let problem = ClusterNames.nameProblem(entry.node) { return "'\(entry.node.prefix(64))' is not a node name: \(problem)" }
            guard seen.insert(entry.node).inserted else { return "node '\(entry.node)' is listed twice" }
            if let reason = entry.reason, reason.count > 200 || reason.contains(where: \.isNewline) {
                return "the reason for '\(entry.node)' is longer than 200 characters or has a line break"
            }
        }
        return nil
    }
}

/// One revoked node.
public struct RevokedNode: Codable, Sendable, Equatable {
    /// The node name.
    public var node: String
    /// Certificates for the node that start at or before this time are refused.
    public var revokedAt: Date
    /// Why, as the operator said it (optional, one line).
    public var reason: String?

    /// Creates an entry.
    public init(node: String, revokedAt: Date, reason: String? = nil) {
        self.node = node
        self.revokedAt = revokedAt
        self.reason = reason
    }
}

/// A ``RevocationList`` with the cluster CA's signature: what is stored at `<state_dir>/cluster/revocations.json`
/// and carried in the catalogue.
///
/// The signed bytes are the list's JSON exactly as the CA encoded it (kept in base64), so no re-encoding on the way
/// can break the signature.
public struct SignedRevocationList: Codable, Sendable, Equatable {
    /// The largest encoded list accepted.
    public static let maximumBytes = 1 << 20

    /// The list's JSON, base64.
    public var list: String
    /// ECDSA P-256 with SHA-256 over the list's JSON, DER, base64.
    public var signature: String
    /// SHA-256 fingerprint of the signing CA certificate (`AB:CD:…`).
    public var signer: String

    /// Creates the signed form (use ``ClusterCA/sign(_:)``).
    public init(list: String, signature: String, signer: String) {
        self.list = list
        self.signature = signature
        self.signer = signer
    }

    /// The list without checking its signature: only for choices that a forged list cannot turn against the cluster
    /// (`add-node` starting a replacement's certificate after its revocation). `nil` when it does not decode.
    public func unverifiedContent() -> RevocationList? {
        guard list.utf8.count <= Self.maximumBytes * 4 / 3 + 4, let bytes = Data(base64Encoded: list) else { return nil }
        return try? RevocationCoding.decoder.decode(RevocationList.self, from: bytes)
    }

    /// The list, after checking the signature against one of `anchors` (the cluster CAs this node trusts).
    /// - Throws: ``ClusterTrustError`` with code `notSignedByCA` (no trusted signer, or a bad signature) or
    ///   `malformed` (the list does not decode or breaks its rules).
    public func verified(by anchors: [Certificate], source: String, now: Date = Date()) throws(ClusterTrustError) -> RevocationList {
        guard list.utf8.count <= Self.maximumBytes * 4 / 3 + 4, let bytes = Data(base64Encoded: list),
              let signatureBytes = Data(base64Encoded: signature)
        else {
            throw ClusterTrustError(code: .malformed, subject: source, detail: "the revocation list or its signature is not base64 (or over 1 MiB)")
        }
        guard let anchor = anchors.first(where: { Fingerprint.sha256((try? $0.derBytes()) ?? []) == signer }) else {
            throw ClusterTrustError(code: .notSignedByCA, subject: source, detail: "the revocation list is signed by a CA this node does not trust (\(signer.prefix(95)))")
        }
        guard let key = P256.Signing.PublicKey(anchor.publicKey),
              let ecdsa = try? P256.Signing.ECDSASignature(derRepresentation: signatureBytes),
              key.isValidSignature(ecdsa, for: bytes)
        else {
            throw ClusterTrustError(code: .notSignedByCA, subject: source, detail: "the revocation list's signature does not verify")
        }
        let decoded: RevocationList
        do {
            decoded = try RevocationCoding.decoder.decode(RevocationList.self, from: bytes)
        } catch {
            throw ClusterTrustError(code: .malformed, subject: source, detail: "the revocation list does not decode: \(String("\(error)".prefix(200)))")
        }
        if let problem = decoded.problem(now: now) {
            throw ClusterTrustError(code: .malformed, subject: source, detail: "the revocation list is invalid: \(problem)")
        }
        return decoded
    }
}

extension ClusterCA {
    /// Signs `list` with this CA's key.
    /// - Parameter now: The signer's clock (a version may not run more than a day ahead of it).
    /// - Throws: ``ClusterTrustError`` with code `malformed` when the list breaks its rules, `crypto` when signing fails.
    public func sign(_ list: RevocationList, now: Date = Date()) throws(ClusterTrustError) -> SignedRevocationList {
        if let problem = list.problem(now: now) {
            throw ClusterTrustError(code: .malformed, subject: "revocation list", detail: problem)
        }
        do {
            let bytes = try RevocationCoding.encoder.encode(list)
            let signature = try signingKey.signature(for: bytes)
            return SignedRevocationList(
                list: bytes.base64EncodedString(), signature: signature.derRepresentation.base64EncodedString(), signer: fingerprint)
        } catch {
            throw ClusterTrustError(code: .crypto, subject: "revocation list", detail: "cannot sign it: \(error)")
        }
    }
}

/// Where the revocation list lives and how it is read and written.
public enum RevocationFile {
    /// The file's name in the cluster directory (`<state_dir>/cluster/revocations.json`).
    public static let fileName = "revocations.json"

    /// `<directory>/revocations.json`.
    public static func path(clusterDirectory: String) -> String { clusterDirectory + "/" + fileName }

    /// The signed lists at `path` (one per CA), not yet verified; empty when there is none.
    /// - Throws: ``ClusterTrustError`` (`malformed`, `io`) naming the path.
    public static func read(_ path: String) throws(ClusterTrustError) -> [SignedRevocationList] {
        guard let text = try ClusterFiles.read(path) else { return [] }
        do {
            return try RevocationCoding.decoder.decode([SignedRevocationList].self, from: Data(text.utf8))
        } catch {
            throw ClusterTrustError(code: .malformed, subject: path, detail: "not a set of signed revocation lists: \(String("\(error)".prefix(200)))")
        }
    }

    /// Writes `signed` (one list per CA) to `path` atomically (mode 0644: it holds no secret).
    public static func write(_ signed: [SignedRevocationList], to path: String) throws(ClusterTrustError) {
        let text: String
        do {
            text = String(decoding: try RevocationCoding.encoder.encode(signed), as: UTF8.self) + "\n"
        } catch {
            throw ClusterTrustError(code: .crypto, subject: path, detail: "cannot encode the revocation list: \(error)")
        }
        try ClusterFiles.makeDirectory(ClusterFiles.directory(of: path), mode: 0o700)
        try ClusterFiles.replace(path, contents: text, mode: 0o644)
    }
}

/// JSON for revocation lists: ISO 8601 dates, sorted keys.
enum RevocationCoding {
    static let encoder: JSONEncoder = {
        let encoder = JSONEncoder()
        encoder.dateEncodingStrategy = .iso8601
        encoder.outputFormatting = [.sortedKeys]
        return encoder
    }()

    static let decoder: JSONDecoder = {
        let decoder = JSONDecoder()
        decoder.dateDecodingStrategy = .iso8601
        return decoder
    }()
}
