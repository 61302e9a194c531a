import Foundation
import NIOConcurrencyHelpers
import NIOSSL
import X509

/// Extra cluster CAs a node trusts besides its identity's own: `<state_dir>/cluster/trusted-cas.pem`.
///
/// This is the rotation window of the cluster CA: while it lists the old CA (or the new one, before this node has
/// its new identity), nodes with identities from either CA talk to each other. `cluster trust-ca` adds a CA,
/// `cluster untrust-ca` removes one, and `cluster join --force` with an identity from another CA moves the old CA
/// here by itself.
public enum TrustedCAFile {
    /// The file's name in the cluster directory.
    public static let fileName = "trusted-cas.pem"

    /// `<directory>/trusted-cas.pem`.
    public static func path(clusterDirectory: String) -> String { clusterDirectory + "/" + fileName }

    /// The CA certificates in the file (none when it does not exist), each checked to be a self-signed CA.
    /// - Throws: ``ClusterTrustError`` (`malformed`, `notSignedByCA`, `io`) naming the file.
    public static func read(_ path: String) throws(ClusterTrustError) -> [Certificate] {
        guard let text = try ClusterFiles.read(path) else { return [] }
        var certificates: [Certificate] = []
        for block in try PEMFile.blocks(text, source: path) {
            guard block.label == "CERTIFICATE" else {
                throw ClusterTrustError(code: .malformed, subject: path, detail: "holds a \(block.label) block; only CA certificates belong here")
            }
            let certificate = try CertificateParsing.certificate(block.der, source: path)
            try CertificateParsing.checkIsClusterCA(certificate, source: path)
            certificates.append(certificate)
        }
        return certificates
    }

    /// Writes `certificates` (or removes the file when there are none), atomically, mode 0644.
    public static func write(_ certificates: [Certificate], to path: String) throws(ClusterTrustError) {
        if certificates.isEmpty {
            if unlink(path) != 0 && errno != ENOENT { throw ClusterFiles.ioError(path, "cannot remove") }
            return
        }
        var text = "# Cluster CAs this node trusts besides its identity's CA (the CA rotation window).\n"
        for certificate in certificates {
            guard let der = try? certificate.derBytes() else { continue }
            text += "# \(CertificateParsing.commonName(certificate) ?? "?") SHA-256 \(Fingerprint.sha256(der))\n"
            text += PEMFile.encode(der, label: "CERTIFICATE")
        }
        try ClusterFiles.makeDirectory(ClusterFiles.directory(of: path), mode: 0o700)
        try ClusterFiles.replace(path, contents: text, mode: 0o644)
    }

    /// Adds `certificate` to the file at `path` unless it is there already.
    /// - Returns: Whether it was added.
    @discardableResult
    public static func add(_ certificate: Certificate, to path: String) throws(ClusterTrustError) -> Bool {
        var trusted = try read(path)
        guard !trusted.contains(where: { fingerprint($0) == fingerprint(certificate) }) else { return false }
        trusted.append(certificate)
        try write(trusted, to: path)
        return true
    }

    /// Removes the CA with this SHA-256 fingerprint (colons and case ignored) from the file at `path`.
    /// - Returns: Whether one was removed.
    public static func remove(fingerprint wanted: String, from path: String) throws(ClusterTrustError) -> Bool {
        let normalised = wanted.uppercased().filter { $0 != ":" }
        let trusted = try read(path)
        let kept = trusted.filter { fingerprint($0).filter { $0 != ":" } != normalised }
        guard kept.count != trusted.count else { return false }
        try write(kept, to: path)
        return true
    }

    /// One CA certificate from a PEM file (e.g. the new CA's `ca.pem`), checked to be a self-signed cluster CA.
    public static func readOne(_ path: String) throws(ClusterTrustError) -> Certificate {
        guard let text = try ClusterFiles.read(path) else {
            throw ClusterTrustError(code: .caMissing, subject: path, detail: "no such file")
        }
        let blocks = try PEMFile.blocks(text, source: path).filter { $0.label == "CERTIFICATE" }
        guard blocks.count == 1 else {
            throw ClusterTrustError(code: .malformed, subject: path, detail: "expected one CA certificate, found \(blocks.count) certificate(s)")
        }
        let certificate = try CertificateParsing.certificate(blocks[0].der, source: path)
        try CertificateParsing.checkIsClusterCA(certificate, source: path)
        return certificate
    }

    /// The SHA-256 fingerprint of a certificate (`AB:CD:…`), as `cluster show` prints it.
    public static func fingerprint(_ certificate: Certificate) -> String {
        Fingerprint.sha256((try? certificate.derBytes()) ?? [])
    }
}

/// Who this node is and whom it trusts on the peer API, swappable while the daemon runs: the identity, the trusted
/// cluster CAs (the identity's and ``TrustedCAFile``'s) and the verified revocation lists, one per trusted CA.
///
/// Every new peer connection takes the current TLS context (server) or configuration (client); every request on
/// an open connection is checked again against the current anchors and revocations
/// (``refusal(of:)``), so revoking a node or ending a CA's rotation window takes effect on connections that were
/// already open.
///
/// Thread safety: all state sits behind one lock; reads return immutable snapshots. Offers and reloads are
/// serialised by a second lock (always taken before the first).
public final class ClusterCredentials: Sendable {
    /// One CA's installed revocation list.
    public struct InstalledRevocations: Sendable, Equatable {
        /// As signed (what the catalogue passes on).
        public let signed: SignedRevocationList
        /// Its verified content.
        public let list: RevocationList
        /// The CA that signed it (its entries cover only this CA's certificates).
        public let signer: Certificate
    }

    /// One consistent state.
    public struct Snapshot: Sendable {
        /// This node's identity.
        public let identity: ClusterIdentity
        /// The trusted cluster CAs: the identity's first, then the extra ones.
        public let anchors: [Certificate]
        /// The installed revocation lists, one per trusted CA that has one, by the signer's fingerprint order.
        public let revocations: [InstalledRevocations]
        /// The peer API's server context.
        public let serverContext: NIOSSLContext
        /// The client side of mutual TLS.
        public let clientTLS: TLSConfiguration
        /// Increases with every change (connections re-check their client when it moves).
        public let generation: Int

        /// The signed lists, as the catalogue carries them.
        public var signedRevocations: [SignedRevocationList] { revocations.map(\.signed) }

        /// The installed list of the CA with this fingerprint.
        public func revocations(signedBy fingerprint: String) -> InstalledRevocations? {
            revocations.first { $0.signed.signer == fingerprint }
        }

        /// Every revoked node name, with the list that says so.
        public var revokedNodes: [(node: RevokedNode, list: InstalledRevocations)] {
            revocations.flatMap { installed in installed.list.revoked.map { ($0, installed) } }
        }
    }

    /// What ``offer(_:source:)`` did with a list from a peer.
    public enum Offer: Sendable, Equatable {
        /// Installed; the nodes it revokes that its CA's previous list did not; the reason it could not be saved
        /// (it is enforced until the daemon stops either way).
        case installed(version: Int, newlyRevoked: [String], notSaved: String? = nil)
        /// This node has this version or a newer one from the same CA.
        case notNewer
        /// Not signed by a trusted CA, or malformed: the reason.
        case refused(String)
    }

    /// Where the files live.
    public let identityPath: String
    /// `<state_dir>/cluster`: the trusted-CA file and the revocation lists.
    public let clusterDirectory: String
    private let state: NIOLockedValueBox<Snapshot>
    /// Serialises offers and reloads (each reads, decides and writes the file).
    private let writer = NIOLock()

    /// Loads the identity, the trusted CAs and the revocation lists.
    /// - Parameters:
    ///   - identityPath: This node's identity file.
    ///   - clusterDirectory: The directory of `trusted-cas.pem` and `revocations.json`.
    ///   - now: The time to check the identity's validity against.
    /// - Throws: ``ClusterTrustError`` naming the file at fault (a list from a trusted CA that does not verify is an
    ///   error too: a node must not start while it cannot tell whom it revoked).
    public init(identityPath: String, clusterDirectory: String, now: Date = Date()) throws(ClusterTrustError) {
        self.identityPath = identityPath
        self.clusterDirectory = clusterDirectory
        let identity = try ClusterIdentity.load(path: identityPath, now: now)
        state = NIOLockedValueBox(try Self.snapshot(identity: identity, clusterDirectory: clusterDirectory, generation: 1, keeping: nil, now: now))
    }

    /// Fixed credentials from an identity alone (tests, one-shot commands): no extra CAs, no revocations.
    public init(identity: ClusterIdentity, clusterDirectory: String? = nil) throws(ClusterTrustError) {
        identityPath = ""
        self.clusterDirectory = clusterDirectory ?? ""
        state = NIOLockedValueBox(try Self.snapshot(
            identity: identity, clusterDirectory: clusterDirectory, generation: 1, keeping: nil, now: Date()))
    }

    /// The current state.
    public var current: Snapshot { state.withLockedValue { $0 } }

    /// Why a client certificate that passed the handshake (under some earlier state) must be refused now: it is not
    /// signed by a CA trusted now (check `trust`), or the list of the CA that issued it revokes its node (check
    /// `revoked`). `nil` when it may be served.
    public func refusal(of certificate: Certificate) -> PeerAllowList.Decision? {
        let snapshot = current
        guard let issuer = snapshot.anchors.first(where: { Self.signed(certificate, by: $0) }) else {
            return .refused(check: "trust", reason: "its certificate is not signed by a cluster CA this node trusts now")
        }
        let issuerFingerprint = TrustedCAFile.fingerprint(issuer)
        if let entry = snapshot.revocations(signedBy: issuerFingerprint)?.list.revocation(of: certificate) {
            return .refused(check: "revoked", reason: "node '\(entry.node)' was revoked on \(Fingerprint.date(entry.revokedAt)) (cluster revoke-node)")
        }
        return nil
    }

    /// Installs a revocation list a peer sent when it is newer than this node's list from the same CA and signed by
    /// a trusted CA.
    public func offer(_ signed: SignedRevocationList, source: String, now: Date = Date()) -> Offer {
        writer.lock()
        defer { writer.unlock() }
        let snapshot = current
        let installed = snapshot.revocations(signedBy: signed.signer)
        if installed?.signed == signed { return .notNewer }
        let list: RevocationList
        do {
            list = try signed.verified(by: snapshot.anchors, source: source, now: now)
        } catch {
            return .refused(error.description)
        }
        if let installed, installed.list.version >= list.version { return .notNewer }
        guard let signer = snapshot.anchors.first(where: { TrustedCAFile.fingerprint($0) == signed.signer }) else {
            return .refused("no trusted CA has fingerprint \(signed.signer.prefix(95))")
        }
        var lists = snapshot.revocations.filter { $0.signed.signer != signed.signer }
        lists.append(InstalledRevocations(signed: signed, list: list, signer: signer))
        lists.sort { $0.signed.signer < $1.signed.signer }
        var notSaved: String?
        if clusterDirectory.isEmpty {
            notSaved = "no cluster directory to keep it in"
        } else {
            do {
                try RevocationFile.write(lists.map(\.signed), to: RevocationFile.path(clusterDirectory: clusterDirectory))
            } catch {
                notSaved = error.description
            }
        }
        state.withLockedValue { current in
            current = Snapshot(
                identity: current.identity, anchors: current.anchors, revocations: lists,
                serverContext: current.serverContext, clientTLS: current.clientTLS, generation: current.generation + 1)
        }
        let before = Set(installed?.list.revoked.map(\.node) ?? [])
        return .installed(version: list.version, newlyRevoked: list.revoked.map(\.node).filter { !before.contains($0) }, notSaved: notSaved)
    }

    /// Re-reads the identity, the trusted CAs and the revocation lists (after `cluster join`, `trust-ca`,
    /// `untrust-ca`, `revoke-node`). Nothing changes when any of them is invalid.
    /// - Returns: Whether anything changed.
    /// - Throws: ``ClusterTrustError`` naming the file at fault; the running state is kept.
    @discardableResult
    public func reload(now: Date = Date()) throws(ClusterTrustError) -> Bool {
        guard !identityPath.isEmpty else { return false }
        writer.lock()
        defer { writer.unlock() }
        let snapshot = current
        let identity = try ClusterIdentity.load(path: identityPath, now: now)
        guard identity.nodeName == snapshot.identity.nodeName else {
            throw ClusterTrustError(code: .invalidName, subject: identityPath, detail: "is now node '\(identity.nodeName)', not '\(snapshot.identity.nodeName)'; keeping the running identity")
        }
        let next = try Self.snapshot(identity: identity, clusterDirectory: clusterDirectory, generation: snapshot.generation + 1, keeping: snapshot, now: now)
        let changed = next.identity.fingerprint != snapshot.identity.fingerprint
            || next.anchors.map(TrustedCAFile.fingerprint) != snapshot.anchors.map(TrustedCAFile.fingerprint)
            || next.signedRevocations != snapshot.signedRevocations
        if changed { state.withLockedValue { $0 = next } }
        return changed
    }

    private static func snapshot(
        identity: ClusterIdentity, clusterDirectory: String?, generation: Int, keeping previous: Snapshot?, now: Date
    ) throws(ClusterTrustError) -> Snapshot {
        var anchors = [identity.caCertificate]
        var lists: [String: InstalledRevocations] = [:]
        if let clusterDirectory, !clusterDirectory.isEmpty {
            for extra in try TrustedCAFile.read(TrustedCAFile.path(clusterDirectory: clusterDirectory))
            where !anchors.contains(where: { TrustedCAFile.fingerprint($0) == TrustedCAFile.fingerprint(extra) }) {
                anchors.append(extra)
            }
            let byFingerprint = Dictionary(anchors.map { (TrustedCAFile.fingerprint($0), $0) }, uniquingKeysWith: { first, _ in first })
            // A list of a CA no longer trusted (the end of a rotation window) is dropped: it covered that CA's
            // certificates, which are refused anyway. A list of a trusted CA that does not verify is an error.
            for installed in previous?.revocations ?? [] where byFingerprint[installed.signed.signer] != nil {
                lists[installed.signed.signer] = installed
            }
            let path = RevocationFile.path(clusterDirectory: clusterDirectory)
            for signed in try RevocationFile.read(path) {
                guard let signer = byFingerprint[signed.signer] else { continue }
                let verified = try signed.verified(by: anchors, source: path, now: now)
                // A list on disk older than the one running (a restored backup) does not undo a revocation.
                if let running = lists[signed.signer], running.list.version > verified.version { continue }
                lists[signed.signer] = InstalledRevocations(signed: signed, list: verified, signer: signer)
            }
        }
        let roots: [NIOSSLCertificate]
        do {
            roots = try anchors.map { try NIOSSLCertificate(bytes: $0.derBytes(), format: .der) }
        } catch {
            throw ClusterTrustError(code: .crypto, subject: "trusted cluster CAs", detail: "TLS library rejected one: \(error)")
        }
        var server = identity.makeServerTLSConfiguration()
        server.trustRoots = .certificates(roots)
        var client = identity.makeClientTLSConfiguration()
        client.trustRoots = .certificates(roots)
        let context: NIOSSLContext
        do {
            context = try NIOSSLContext(configuration: server)
        } catch {
            throw ClusterTrustError(code: .crypto, subject: "peer API TLS", detail: "cannot build the server context: \(error)")
        }
        return Snapshot(
            identity: identity, anchors: anchors, revocations: lists.values.sorted { $0.signed.signer < $1.signed.signer },
            serverContext: context, clientTLS: client, generation: generation)
    }

    /// Whether `anchor` issued and signed `certificate`.
    static func signed(_ certificate: Certificate, by anchor: Certificate) -> Bool {
        certificate.issuer == anchor.subject && anchor.publicKey.isValidSignature(certificate.signature, for: certificate)
    }
}
