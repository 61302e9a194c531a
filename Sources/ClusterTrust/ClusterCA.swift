import Crypto
import Foundation
import SwiftASN1
import X509

/// The cluster's own certificate authority: a P-256 key and a self-signed CA certificate
/// `CN=certkeeper cluster CA <cluster-name>` (basicConstraints CA:true pathlen 0, keyUsage keyCertSign + cRLSign).
///
/// It signs node certificates and nothing else; only the nodes' peer APIs trust it. On disk it is two files in
/// a directory of its own (mode 0700): ``certificateFileName`` (0644) and ``keyFileName`` (0600). Keep that
/// directory on one machine (or offline); nodes only need their identity file.
public struct ClusterCA: Sendable {
    /// The CA certificate's file name in the CA directory.
    public static let certificateFileName = "ca.pem"
    /// The CA key's file name in the CA directory (mode 0600).
    public static let keyFileName = "ca.key"
    /// The prefix of the CA certificate's common name; the cluster name follows it.
    public static let commonNamePrefix = "certkeeper cluster CA "
    /// Ten years.
    public static let defaultValidity: TimeInterval = 3650 * 86400

    /// The cluster name from the CA certificate's common name.
    public let clusterName: String
    /// The self-signed CA certificate.
    public let certificate: Certificate
    /// The CA certificate in DER.
    public let certificateDER: [UInt8]
    private let privateKey: P256.Signing.PrivateKey

    private init(clusterName: String, certificate: Certificate, certificateDER: [UInt8], privateKey: P256.Signing.PrivateKey) {
        self.clusterName = clusterName
        self.certificate = certificate
        self.certificateDER = certificateDER
        self.privateKey = privateKey
    }

    /// The key that signs node certificates and revocation lists.
    var signingKey: P256.Signing.PrivateKey { privateKey }

    /// The CA certificate in PEM.
    public var certificatePEM: String { PEMFile.encode(certificateDER, label: "CERTIFICATE") }

    /// The SHA-256 fingerprint of the CA certificate, as `openssl x509 -fingerprint -sha256` prints it
    /// (`AB:CD:…`). Operators compare it across nodes.
    public var fingerprint: String { Fingerprint.sha256(certificateDER) }

    /// Creates a new CA in memory.
    /// - Parameters:
    ///   - clusterName: The cluster's name (node name rules); it goes into the CA's common name.
    ///   - now: The start of validity (backdated one hour for clock skew between nodes).
    ///   - validity: Seconds from `now` to the end of validity; ten years by default.
    /// - Returns: The CA with its fresh key.
    /// - Throws: ``ClusterTrustError`` with code `invalidName`, `invalidValidity` or `crypto`.
    public static func generate(clusterName: String, now: Date = Date(), validity: TimeInterval = defaultValidity) throws(ClusterTrustError) -> ClusterCA {
        try ClusterNames.checkName(clusterName, field: "cluster name")
        guard validity > 0 else {
            throw ClusterTrustError(code: .invalidValidity, subject: "CA validity", detail: "must be positive")
        }
        let key = P256.Signing.PrivateKey()
        do {
            let publicKey = Certificate.PublicKey(key.publicKey)
            let name = try DistinguishedName { CommonName(commonNamePrefix + clusterName) }
            let extensions = try Certificate.Extensions {
                Critical(BasicConstraints.isCertificateAuthority(maxPathLength: 0))
                Critical(KeyUsage(keyCertSign: true, cRLSign: true))
                SubjectKeyIdentifier(hash: publicKey)
            }
            let certificate = try Certificate(
                version: .v3, serialNumber: Certificate.SerialNumber(), publicKey: publicKey,
                notValidBefore: now.addingTimeInterval(-3600), notValidAfter: now.addingTimeInterval(validity),
                issuer: name, subject: name, signatureAlgorithm: .ecdsaWithSHA256, extensions: extensions,
                issuerPrivateKey: Certificate.PrivateKey(key)
            )
            return ClusterCA(clusterName: clusterName, certificate: certificate, certificateDER: try certificate.derBytes(), privateKey: key)
        } catch {
            throw ClusterTrustError(code: .crypto, subject: "cluster CA", detail: "cannot build the CA certificate: \(error)")
        }
    }

    /// Creates a new CA and writes it to `directory`, refusing to touch an existing CA.
    /// - Parameters:
    ///   - clusterName: The cluster's name.
    ///   - directory: The CA directory; created (0700) with its parents if missing.
    ///   - now: The start of validity.
    /// - Returns: The new CA.
    /// - Throws: ``ClusterTrustError``: `caExists` when `ca.pem` or `ca.key` is already there, `invalidName`, `io`.
    public static func create(clusterName: String, directory: String, now: Date = Date()) throws(ClusterTrustError) -> ClusterCA {
        let ca = try generate(clusterName: clusterName, now: now)
        try ca.write(to: directory)
        return ca
    }

    /// Writes `ca.key` (0600) then `ca.pem` (0644) into `directory`, never replacing either.
    /// - Parameter directory: The CA directory; created (0700) with its parents if missing.
    /// - Throws: ``ClusterTrustError`` with code `caExists` (nothing written) or `io`.
    public func write(to directory: String) throws(ClusterTrustError) {
        let keyPath = Self.keyPath(directory), certificatePath = Self.certificatePath(directory)
        for path in [keyPath, certificatePath] where ClusterFiles.exists(path) {
            throw ClusterTrustError(code: .caExists, subject: path, detail: "a cluster CA already exists here; refusing to overwrite it")
        }
        try ClusterFiles.makeDirectory(directory, mode: 0o700)
        try ClusterFiles.createNew(keyPath, contents: privateKey.pemRepresentation, mode: 0o600, existsCode: .caExists)
        do {
            try ClusterFiles.createNew(certificatePath, contents: certificatePEM, mode: 0o644, existsCode: .caExists)
        } catch {
            // Our key without its certificate would block the next attempt: take it back.
            unlink(keyPath)
            throw error
        }
    }

    /// Reads and checks the CA in `directory`.
    /// - Parameter directory: The CA directory.
    /// - Returns: The CA, ready to issue node certificates.
    /// - Throws: ``ClusterTrustError``: `caMissing`, `malformed`, `keyMismatch`, `notSignedByCA` (not a CA
    ///   certificate), `insecurePermissions` (key readable by group or others), `io`.
    public static func load(directory: String) throws(ClusterTrustError) -> ClusterCA {
        let keyPath = Self.keyPath(directory), certificatePath = Self.certificatePath(directory)
        guard let certificateText = try ClusterFiles.read(certificatePath) else {
            throw ClusterTrustError(code: .caMissing, subject: certificatePath, detail: "no cluster CA here (run 'certkeeper cluster init' first)")
        }
        guard let keyText = try ClusterFiles.read(keyPath) else {
            throw ClusterTrustError(code: .caMissing, subject: keyPath, detail: "the CA key is missing")
        }
        if let mode = try ClusterFiles.mode(keyPath), mode & 0o077 != 0 {
            throw ClusterTrustError(
                code: .insecurePermissions, subject: keyPath,
                detail: "the CA key is accessible by group or others (mode \(String(mode, radix: 8))); run chmod 600"
            )
        }
        let blocks = try PEMFile.blocks(certificateText, source: certificatePath).filter { $0.label == "CERTIFICATE" }
        guard blocks.count == 1 else {
            throw ClusterTrustError(code: .malformed, subject: certificatePath, detail: "expected one CERTIFICATE block, found \(blocks.count)")
        }
        let certificate = try CertificateParsing.certificate(blocks[0].der, source: certificatePath)
        let key = try CertificateParsing.privateKey(keyText, source: keyPath)
        guard Certificate.PublicKey(key.publicKey) == certificate.publicKey else {
            throw ClusterTrustError(code: .keyMismatch, subject: keyPath, detail: "the CA key does not match \(certificatePath)")
        }
        try CertificateParsing.checkIsClusterCA(certificate, source: certificatePath)
        return ClusterCA(
            clusterName: CertificateParsing.clusterName(ofCA: certificate) ?? "",
            certificate: certificate, certificateDER: blocks[0].der, privateKey: key
        )
    }

    /// Issues a node certificate and returns it as a complete identity (node certificate, its new key, this CA).
    ///
    /// The certificate: subject `CN=<nodeName>`; SANs = the node name as a DNS name (when it is a valid host name)
    /// plus every address (IP literals as IP SANs, host names as DNS SANs); EKU serverAuth + clientAuth;
    /// keyUsage digitalSignature; AKI/SKI; valid from one hour before `now` for `validity` seconds, cut at the
    /// CA's own expiry.
    /// - Parameters:
    ///   - nodeName: The node's name (name rules).
    ///   - addresses: Where peers dial this node; at least one.
    ///   - validity: Seconds of validity; two years by default.
    ///   - now: The current time.
    ///   - startsAfter: When the node name was revoked: the certificate starts one second after it (instead of an
    ///     hour before `now`), so that the revocation does not cover it.
    /// - Returns: The node's identity, checked exactly as ``ClusterIdentity/load(path:now:requireOwnerOnly:)`` checks a file.
    /// - Throws: ``ClusterTrustError`` with code `invalidName`, `invalidAddress`, `invalidValidity`, `crypto`.
    public func issueIdentity(
        nodeName: String,
        addresses: [NodeAddress],
        validity: TimeInterval = ClusterIdentity.defaultValidity,
        now: Date = Date(),
        startsAfter revokedAt: Date? = nil
    ) throws(ClusterTrustError) -> ClusterIdentity {
        try ClusterNames.checkName(nodeName, field: "node name")
        guard !addresses.isEmpty else {
            throw ClusterTrustError(code: .invalidAddress, subject: "--address", detail: "give at least one address peers dial \(nodeName) at")
        }
        guard validity > 0 else {
            throw ClusterTrustError(code: .invalidValidity, subject: "node certificate validity", detail: "must be positive")
        }
        guard now < certificate.notValidAfter else {
            throw ClusterTrustError(code: .expired, subject: "cluster CA", detail: "expired on \(Fingerprint.date(certificate.notValidAfter))")
        }
        let notAfter = min(now.addingTimeInterval(validity), certificate.notValidAfter)
        // Whole seconds: X.509 times have no fraction, and a start rounded down could fall inside the revocation.
        let notBefore = revokedAt.map { max(now.addingTimeInterval(-3600), Date(timeIntervalSince1970: $0.timeIntervalSince1970.rounded(.down) + 1)) }
            ?? now.addingTimeInterval(-3600)
        guard notBefore <= now.addingTimeInterval(2) else {
            throw ClusterTrustError(code: .invalidValidity, subject: "node certificate for \(nodeName)", detail: "the node was revoked at \(Fingerprint.date(revokedAt ?? now)), which is in the future on this clock")
        }
        var names: [GeneralName] = []
        if ClusterNames.dnsNameProblem(nodeName) == nil { names.append(.dnsName(nodeName.lowercased())) }
        for address in addresses {
            let name: GeneralName
            switch address {
            case .ip(_, let bytes): name = .ipAddress(ASN1OctetString(contentBytes: bytes[...]))
            case .dns(let host): name = .dnsName(host)
            }
            if !names.contains(name) { names.append(name) }
        }
        let key = P256.Signing.PrivateKey()
        let nodeCertificate: Certificate
        let der: [UInt8]
        do {
            let publicKey = Certificate.PublicKey(key.publicKey)
            let caKeyIdentifier = try certificate.extensions.subjectKeyIdentifier?.keyIdentifier
                ?? SubjectKeyIdentifier(hash: certificate.publicKey).keyIdentifier
            let extensions = try Certificate.Extensions {
                Critical(BasicConstraints.notCertificateAuthority)
                Critical(KeyUsage(digitalSignature: true))
                try ExtendedKeyUsage([.serverAuth, .clientAuth])
                SubjectKeyIdentifier(hash: publicKey)
                AuthorityKeyIdentifier(keyIdentifier: caKeyIdentifier)
                SubjectAlternativeNames(names)
            }
            nodeCertificate = try Certificate(
                version: .v3, serialNumber: Certificate.SerialNumber(), publicKey: publicKey,
                notValidBefore: notBefore, notValidAfter: notAfter,
                issuer: certificate.subject, subject: try DistinguishedName { CommonName(nodeName) },
                signatureAlgorithm: .ecdsaWithSHA256, extensions: extensions,
                issuerPrivateKey: Certificate.PrivateKey(privateKey)
            )
            der = try nodeCertificate.derBytes()
        } catch {
            throw ClusterTrustError(code: .crypto, subject: "node certificate for \(nodeName)", detail: "cannot build it: \(error)")
        }
        return try ClusterIdentity.assemble(
            certificateDER: der, privateKey: key, caCertificateDER: certificateDER,
            source: "new identity for \(nodeName)", now: now
        )
    }

    static func certificatePath(_ directory: String) -> String { directory + "/" + certificateFileName }
    static func keyPath(_ directory: String) -> String { directory + "/" + keyFileName }
}

/// Fingerprints and dates as operators read them.
enum Fingerprint {
    static func sha256(_ der: [UInt8]) -> String {
        SHA256.hash(data: der).map { byte in
            let hex = String(byte, radix: 16, uppercase: true)
            return hex.count == 1 ? "0" + hex : hex
        }.joined(separator: ":")
    }

    static func date(_ date: Date) -> String {
        date.formatted(.iso8601)
    }
}

/// Parsing helpers shared by the CA and identity loaders; every error names its source.
enum CertificateParsing {
    static func certificate(_ der: [UInt8], source: String) throws(ClusterTrustError) -> Certificate {
        do {
            return try Certificate(derEncoded: der)
        } catch {
            throw ClusterTrustError(code: .malformed, subject: source, detail: "certificate does not parse: \(error)")
        }
    }

    static func privateKey(_ pem: String, source: String) throws(ClusterTrustError) -> P256.Signing.PrivateKey {
        do {
            return try P256.Signing.PrivateKey(pemRepresentation: pem)
        } catch {
            throw ClusterTrustError(code: .malformed, subject: source, detail: "not a P-256 private key in PEM")
        }
    }

    static func commonName(_ certificate: Certificate) -> String? {
        for rdn in certificate.subject {
            for attribute in rdn where attribute.type == .RDNAttributeType.commonName {
                if let name = String(attribute.value) { return name }
            }
        }
        return nil
    }

    static func clusterName(ofCA certificate: Certificate) -> String? {
        guard let name = commonName(certificate), name.hasPrefix(ClusterCA.commonNamePrefix) else { return nil }
        return String(name.dropFirst(ClusterCA.commonNamePrefix.count))
    }

    /// A cluster CA: a CA certificate (basicConstraints CA:true), self-signed.
    static func checkIsClusterCA(_ certificate: Certificate, source: String) throws(ClusterTrustError) {
        let constraints: BasicConstraints?
        do { constraints = try certificate.extensions.basicConstraints } catch {
            throw ClusterTrustError(code: .malformed, subject: source, detail: "basicConstraints does not parse: \(error)")
        }
        guard case .isCertificateAuthority = constraints else {
            throw ClusterTrustError(code: .notSignedByCA, subject: source, detail: "'\(commonName(certificate) ?? "?")' is not a CA certificate")
        }
        guard certificate.issuer == certificate.subject,
              certificate.publicKey.isValidSignature(certificate.signature, for: certificate)
        else {
            throw ClusterTrustError(code: .notSignedByCA, subject: source, detail: "the cluster CA certificate is not self-signed")
        }
    }
}

extension Certificate {
    func derBytes() throws -> [UInt8] {
        var serializer = DER.Serializer()
        try serializer.serialize(self)
        return serializer.serializedBytes
    }
}
