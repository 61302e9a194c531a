import Crypto
import Foundation
import NIOSSL
import X509

/// One node's cluster identity: its certificate and private key, and the cluster CA certificate it trusts.
///
/// On disk it is one PEM file (mode 0600), so an operator copies a single file to each node:
/// ```
/// # certkeeper cluster identity ...      (comment lines, ignored when loading)
/// -----BEGIN CERTIFICATE-----            the node certificate
/// -----BEGIN CERTIFICATE-----            the cluster CA certificate
/// -----BEGIN PRIVATE KEY-----            the node's P-256 key (PKCS#8)
/// ```
/// The installed copy lives at `<state_dir>/cluster/identity.pem` (``ClusterPaths/identityPath(stateDirectory:)``).
///
/// Every value of this type has passed the checks of ``load(path:now:requireOwnerOnly:)``; its description and mirror never
/// contain the private key.
public struct ClusterIdentity: Sendable, CustomStringConvertible, CustomReflectable {
    /// Two years.
    public static let defaultValidity: TimeInterval = 730 * 86400

    /// The node name (the node certificate's common name).
    public let nodeName: String
    /// The cluster name from the CA certificate's common name (empty if the CA was not made by certkeeper).
    public let clusterName: String
    /// The node certificate.
    public let certificate: Certificate
    /// The cluster CA certificate: the only trust root of the peer API.
    public let caCertificate: Certificate
    /// The addresses in the node certificate's subject alternative names (DNS names and IP literals).
    public let addresses: [String]

    private let certificateDER: [UInt8]
    private let caCertificateDER: [UInt8]
    private let privateKey: P256.Signing.PrivateKey
    private let tlsCertificate: NIOSSLCertificate
    private let tlsCACertificate: NIOSSLCertificate
    private let tlsPrivateKey: NIOSSLPrivateKey

    /// The node certificate in PEM.
    public var certificatePEM: String { PEMFile.encode(certificateDER, label: "CERTIFICATE") }
    /// The cluster CA certificate in PEM.
    public var caCertificatePEM: String { PEMFile.encode(caCertificateDER, label: "CERTIFICATE") }
    /// SHA-256 fingerprint of the cluster CA certificate (`AB:CD:…`).
    public var caFingerprint: String { Fingerprint.sha256(caCertificateDER) }
    /// SHA-256 fingerprint of the node certificate.
    public var fingerprint: String { Fingerprint.sha256(certificateDER) }
    /// End of the node certificate's validity.
    public var notAfter: Date { certificate.notValidAfter }

    /// `cluster identity <node> (cluster <name>, CA <fingerprint>, expires <date>)`; never the key.
    public var description: String {
        "cluster identity \(nodeName) (cluster \(clusterName), CA \(caFingerprint), expires \(Fingerprint.date(notAfter)))"
    }

    /// A mirror without the private key.
    public var customMirror: Mirror {
        Mirror(self, children: ["nodeName": nodeName, "clusterName": clusterName, "addresses": addresses, "notAfter": notAfter])
    }

    /// The whole identity file: explanatory comments, node certificate, CA certificate, private key.
    /// Secret: write it only with mode 0600 (``write(to:replacing:)`` does).
    public var pemRepresentation: String {
        """
        # certkeeper cluster identity for node \(nodeName), cluster \(clusterName)
        # cluster CA SHA-256 \(caFingerprint)
        # node certificate expires \(Fingerprint.date(notAfter)); addresses \(addresses.joined(separator: " "))
        # SECRET: holds this node's private key. Install it on \(nodeName) with
        #   certkeeper cluster join <this file>
        # then delete this copy.

        """ + certificatePEM + caCertificatePEM + privateKey.pemRepresentation + "\n"
    }

    // MARK: Loading

    /// Reads and checks an identity file.
    ///
    /// Checks: one node certificate, one CA certificate and one P-256 key; the key matches the node certificate;
    /// the CA certificate is a self-signed CA and signed the node certificate; both are valid at `now`; the node
    /// certificate has EKU serverAuth and clientAuth (and keyUsage digitalSignature when keyUsage is present);
    /// the common name is a valid node name; the file is not accessible by group or others.
    /// - Parameters:
    ///   - path: The identity file (e.g. `<state_dir>/cluster/identity.pem`).
    ///   - now: The time to check validity against.
    ///   - requireOwnerOnly: Whether a file accessible by group or others is refused (`true` for an installed
    ///     identity; `false` for a copy about to be installed by `cluster join`).
    /// - Returns: The identity.
    /// - Throws: ``ClusterTrustError`` naming `path`: `identityMissing`, `insecurePermissions`, `malformed`,
    ///   `keyMismatch`, `notSignedByCA`, `expired`, `missingUsage`, `invalidName`, `io`.
    public static func load(path: String, now: Date = Date(), requireOwnerOnly: Bool = true) throws(ClusterTrustError) -> ClusterIdentity {
        guard let text = try ClusterFiles.read(path) else {
            let hint = requireOwnerOnly ? "no cluster identity here (install one with 'certkeeper cluster join FILE')" : "no such file"
            throw ClusterTrustError(code: .identityMissing, subject: path, detail: hint)
        }
        if requireOwnerOnly, let mode = try ClusterFiles.mode(path), mode & 0o077 != 0 {
            throw ClusterTrustError(
                code: .insecurePermissions, subject: path,
                detail: "holds a private key but is accessible by group or others (mode \(String(mode, radix: 8))); run chmod 600"
            )
        }
        return try parse(text, source: path, now: now)
    }

    /// The CA certificate in an identity file, without checking dates, the key or the node certificate: enough to
    /// keep trusting the CA of an identity that is being replaced (perhaps because it expired). `nil` when the file
    /// cannot be read or holds no valid CA certificate second.
    public static func caCertificate(inFile path: String) -> Certificate? {
        guard let text = try? ClusterFiles.read(path), let blocks = try? PEMFile.blocks(text, source: path) else { return nil }
        let certificates = blocks.filter { $0.label == "CERTIFICATE" }
        guard certificates.count == 2, let ca = try? CertificateParsing.certificate(certificates[1].der, source: path),
              (try? CertificateParsing.checkIsClusterCA(ca, source: path)) != nil
        else { return nil }
        return ca
    }

    /// Checks an identity given as text, exactly as ``load(path:now:requireOwnerOnly:)`` does apart from file permissions.
    /// - Parameters:
    ///   - pem: The identity file's content.
    ///   - source: What to name in errors (usually the path).
    ///   - now: The time to check validity against.
    /// - Returns: The identity.
    /// - Throws: ``ClusterTrustError`` naming `source`.
    public static func parse(_ pem: String, source: String, now: Date = Date()) throws(ClusterTrustError) -> ClusterIdentity {
        let blocks = try PEMFile.blocks(pem, source: source)
        let certificates = blocks.filter { $0.label == "CERTIFICATE" }
        let keys = blocks.filter { $0.label == "PRIVATE KEY" || $0.label == "EC PRIVATE KEY" }
        guard certificates.count == 2, keys.count == 1, blocks.count == 3 else {
            throw ClusterTrustError(
                code: .malformed, subject: source,
                detail: "expected the node certificate, the CA certificate and one private key; found \(certificates.count) certificate(s), \(keys.count) key(s), \(blocks.count) PEM block(s)"
            )
        }
        let key = try CertificateParsing.privateKey(PEMFile.encode(keys[0].der, label: keys[0].label), source: source)
        return try assemble(certificateDER: certificates[0].der, privateKey: key, caCertificateDER: certificates[1].der, source: source, now: now)
    }

    static func assemble(
        certificateDER: [UInt8], privateKey: P256.Signing.PrivateKey, caCertificateDER: [UInt8], source: String, now: Date
    ) throws(ClusterTrustError) -> ClusterIdentity {
        let certificate = try CertificateParsing.certificate(certificateDER, source: source)
        let caCertificate = try CertificateParsing.certificate(caCertificateDER, source: source)
        guard let nodeName = CertificateParsing.commonName(certificate) else {
            throw ClusterTrustError(code: .malformed, subject: source, detail: "the node certificate has no common name")
        }
        if let problem = ClusterNames.nameProblem(nodeName) {
            throw ClusterTrustError(code: .invalidName, subject: source, detail: "node certificate name '\(String(nodeName.prefix(80)))' is not a valid node name: \(problem)")
        }
        guard Certificate.PublicKey(privateKey.publicKey) == certificate.publicKey else {
            throw ClusterTrustError(code: .keyMismatch, subject: source, detail: "the private key does not match the node certificate for \(nodeName)")
        }
        try CertificateParsing.checkIsClusterCA(caCertificate, source: source)
        guard certificate.issuer == caCertificate.subject,
              caCertificate.publicKey.isValidSignature(certificate.signature, for: certificate)
        else {
            throw ClusterTrustError(
                code: .notSignedByCA, subject: source,
                detail: "the node certificate for \(nodeName) was not issued by '\(CertificateParsing.commonName(caCertificate) ?? "?")' in the same file"
            )
        }
        for (what, checked) in [("node certificate", certificate), ("cluster CA certificate", caCertificate)] {
            if now > checked.notValidAfter {
                throw ClusterTrustError(code: .expired, subject: source, detail: "the \(what) expired on \(Fingerprint.date(checked.notValidAfter))")
            }
            if now < checked.notValidBefore {
                throw ClusterTrustError(code: .expired, subject: source, detail: "the \(what) is not valid before \(Fingerprint.date(checked.notValidBefore))")
            }
        }
        let usages: ExtendedKeyUsage?
        let keyUsage: KeyUsage?
        let alternativeNames: SubjectAlternativeNames?
        do {
            usages = try certificate.extensions.extendedKeyUsage
            keyUsage = try certificate.extensions.keyUsage
            alternativeNames = try certificate.extensions.subjectAlternativeNames
        } catch {
            throw ClusterTrustError(code: .malformed, subject: source, detail: "node certificate extensions do not parse: \(error)")
        }
        let missing = [(ExtendedKeyUsage.Usage.serverAuth, "serverAuth"), (.clientAuth, "clientAuth")]
            .filter { usages?.contains($0.0) != true }.map(\.1)
        guard missing.isEmpty else {
            throw ClusterTrustError(code: .missingUsage, subject: source, detail: "the node certificate lacks extended key usage \(missing.joined(separator: " and "))")
        }
        if let keyUsage, !keyUsage.digitalSignature {
            throw ClusterTrustError(code: .missingUsage, subject: source, detail: "the node certificate lacks key usage digitalSignature")
        }
        var addresses: [String] = []
        for name in alternativeNames ?? SubjectAlternativeNames([]) {
            switch name {
            case .dnsName(let host): addresses.append(host)
            case .ipAddress(let octets):
                if let text = ClusterNames.ipAddressText(Array(octets.bytes)) { addresses.append(text) }
            default: break
            }
        }
        do {
            return ClusterIdentity(
                nodeName: nodeName,
                clusterName: CertificateParsing.clusterName(ofCA: caCertificate) ?? "",
                certificate: certificate, caCertificate: caCertificate, addresses: addresses,
                certificateDER: certificateDER, caCertificateDER: caCertificateDER, privateKey: privateKey,
                tlsCertificate: try NIOSSLCertificate(bytes: certificateDER, format: .der),
                tlsCACertificate: try NIOSSLCertificate(bytes: caCertificateDER, format: .der),
                tlsPrivateKey: try NIOSSLPrivateKey(bytes: Array(privateKey.derRepresentation), format: .der)
            )
        } catch {
            throw ClusterTrustError(code: .crypto, subject: source, detail: "TLS library rejected the identity: \(error)")
        }
    }

    // MARK: Writing

    /// Writes ``pemRepresentation`` to `path` with mode 0600, atomically (temporary file, fsync, rename).
    /// - Parameters:
    ///   - path: The destination; its directory is created (0700) if missing.
    ///   - replacing: Whether an existing file may be replaced (a renewed node certificate); when `false` an
    ///     existing file is an error and stays untouched.
    /// - Throws: ``ClusterTrustError`` with code `identityExists` or `io`.
    public func write(to path: String, replacing: Bool) throws(ClusterTrustError) {
        try ClusterFiles.makeDirectory(ClusterFiles.directory(of: path), mode: 0o700)
        if replacing {
            try ClusterFiles.replace(path, contents: pemRepresentation, mode: 0o600)
        } else {
            try ClusterFiles.createNew(path, contents: pemRepresentation, mode: 0o600, existsCode: .identityExists)
        }
    }

    // MARK: TLS

    /// The peer API's server side: TLS 1.3 only, presents the node certificate, **requires** a client
    /// certificate and verifies it against the cluster CA only (no system roots; BoringSSL also requires the
    /// clientAuth EKU). Client addresses are not matched against the certificate (`.noHostnameVerification`):
    /// use ``peerNodeName(_:)`` on the verified peer certificate to know who connected.
    ///
    /// Build one `NIOSSLContext` from it per identity, off the event loop, and share it between connections.
    public func makeServerTLSConfiguration() -> TLSConfiguration {
        var configuration = TLSConfiguration.makeServerConfiguration(
            certificateChain: [.certificate(tlsCertificate)], privateKey: .privateKey(tlsPrivateKey)
        )
        configuration.minimumTLSVersion = .tlsv13
        configuration.trustRoots = .certificates([tlsCACertificate])
        configuration.certificateVerification = .noHostnameVerification
        configuration.sendCANameList = true
        return configuration
    }

    /// The peer API's client side (NIO or async-http-client's `HTTPClient.Configuration(tlsConfiguration:)`):
    /// TLS 1.3 only, presents the node certificate, trusts only the cluster CA, and verifies that the server's
    /// certificate names the address dialled (`.fullVerification`: an IP literal must be an IP SAN, a host name a
    /// DNS SAN). async-http-client sends no SNI for IP literals, which is fine: the IP SAN is checked against
    /// the connected socket address.
    public func makeClientTLSConfiguration() -> TLSConfiguration {
        var configuration = TLSConfiguration.makeClientConfiguration()
        configuration.minimumTLSVersion = .tlsv13
        configuration.certificateChain = [.certificate(tlsCertificate)]
        configuration.privateKey = .privateKey(tlsPrivateKey)
        configuration.trustRoots = .certificates([tlsCACertificate])
        configuration.certificateVerification = .fullVerification
        return configuration
    }

    /// The node name of a peer certificate that TLS has already verified against the cluster CA: its common name,
    /// else its first DNS SAN; `nil` when neither is a valid node name (so the result is safe in logs and paths).
    /// - Parameter certificate: The peer's leaf certificate (e.g. `channel.nioSSL_peerValidatedCertificateChain()`'s
    ///   first element, or `NIOSSLHandler.peerCertificate`).
    public static func peerNodeName(_ certificate: NIOSSLCertificate) -> String? {
        guard let der = try? certificate.toDERBytes(), let parsed = try? Certificate(derEncoded: der) else { return nil }
        if let name = CertificateParsing.commonName(parsed), ClusterNames.nameProblem(name) == nil { return name }
        guard let alternativeNames = try? parsed.extensions.subjectAlternativeNames else { return nil }
        for case .dnsName(let name) in alternativeNames where ClusterNames.nameProblem(name) == nil {
            return name
        }
        return nil
    }
}

/// Where the cluster files live by default.
public enum ClusterPaths {
    /// The identity file's name.
    public static let identityFileName = "identity.pem"

    /// `<state_dir>/cluster-ca`: the default CA directory.
    public static func caDirectory(stateDirectory: String) -> String { join(stateDirectory, "cluster-ca") }

    /// `<state_dir>/cluster`: the directory of this node's installed identity.
    public static func identityDirectory(stateDirectory: String) -> String { join(stateDirectory, "cluster") }

    /// `<state_dir>/cluster/identity.pem`: this node's installed identity.
    public static func identityPath(stateDirectory: String) -> String {
        identityDirectory(stateDirectory: stateDirectory) + "/" + identityFileName
    }

    private static func join(_ directory: String, _ component: String) -> String {
        directory.hasSuffix("/") ? directory + component : directory + "/" + component
    }
}
