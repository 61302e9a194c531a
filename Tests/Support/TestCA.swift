import Crypto
import Foundation
import SwiftASN1
import X509

#if canImport(Glibc)
import Glibc
#endif

/// A certificate authority built in memory for tests: a P-256 key and its certificate, plus the chain of issuers
/// above it (empty for a root).
///
/// ```swift
/// let root = try TestCA.make(commonName: "Test Root")
/// let intermediate = try root.issueIntermediate(commonName: "Test Intermediate")
/// let leaf = try intermediate.issueLeaf(dnsNames: ["example.org"])
/// ```
public struct TestCA: Sendable {
    /// This CA's certificate.
    public let certificate: Certificate
    /// This CA's private key.
    public let privateKey: P256.Signing.PrivateKey
    /// The issuers above this CA, nearest first, ending with the root; empty when this CA is the root.
    public let issuers: [Certificate]

    /// The root certificate of this CA's hierarchy (itself when it is a root).
    public var rootCertificate: Certificate { issuers.last ?? certificate }

    /// This CA's certificate as PEM.
    public var certificatePEM: String { Self.pem(certificate) }
    /// This CA's private key as PKCS#8 PEM.
    public var privateKeyPEM: String { privateKey.pemRepresentation }
    /// The root of the hierarchy as PEM: the file a client should trust.
    public var rootCertificatePEM: String { Self.pem(rootCertificate) }

    /// Creates a self-signed root CA with a fresh P-256 key.
    /// - Parameters:
    ///   - commonName: The subject CN.
    ///   - notBefore: Start of validity; defaults to one hour ago so clock skew does not matter.
    ///   - notAfter: End of validity; defaults to ten years from now.
    /// - Throws: ``TestSupportError/certificate(what:reason:)``.
    public static func make(
        commonName: String = "certkeeper Test Root",
        notBefore: Date = Date().addingTimeInterval(-3600),
        notAfter: Date = Date().addingTimeInterval(10 * 365 * 86400)
    ) throws -> TestCA {
        let key = P256.Signing.PrivateKey()
        let publicKey = Certificate.PublicKey(key.publicKey)
        return try wrap("root CA \(commonName)") {
            let name = try DistinguishedName { CommonName(commonName) }
            let extensions = try Certificate.Extensions {
                Critical(BasicConstraints.isCertificateAuthority(maxPathLength: nil))
                Critical(KeyUsage(digitalSignature: true, keyCertSign: true, cRLSign: true))
                SubjectKeyIdentifier(hash: publicKey)
            }
            let certificate = try Certificate(
                version: .v3, serialNumber: Certificate.SerialNumber(), publicKey: publicKey,
                notValidBefore: notBefore, notValidAfter: notAfter, issuer: name, subject: name,
                signatureAlgorithm: .ecdsaWithSHA256, extensions: extensions,
                issuerPrivateKey: Certificate.PrivateKey(key)
            )
            return TestCA(certificate: certificate, privateKey: key, issuers: [])
        }
    }

    /// Issues a subordinate CA signed by this one.
    /// - Parameters:
    ///   - commonName: The subject CN of the intermediate.
    ///   - notBefore: Start of validity; defaults to one hour ago.
    ///   - notAfter: End of validity; defaults to five years from now.
    /// - Throws: ``TestSupportError/certificate(what:reason:)``.
    public func issueIntermediate(
        commonName: String = "certkeeper Test Intermediate",
        notBefore: Date = Date().addingTimeInterval(-3600),
        notAfter: Date = Date().addingTimeInterval(5 * 365 * 86400)
    ) throws -> TestCA {
        let key = P256.Signing.PrivateKey()
        let publicKey = Certificate.PublicKey(key.publicKey)
        return try Self.wrap("intermediate CA \(commonName)") {
            let extensions = try Certificate.Extensions {
                Critical(BasicConstraints.isCertificateAuthority(maxPathLength: 0))
                Critical(KeyUsage(digitalSignature: true, keyCertSign: true, cRLSign: true))
                SubjectKeyIdentifier(hash: publicKey)
                try authorityKeyIdentifier()
            }
            let certificate = try Certificate(
                version: .v3, serialNumber: Certificate.SerialNumber(), publicKey: publicKey,
                notValidBefore: notBefore, notValidAfter: notAfter, issuer: self.certificate.subject,
                subject: try DistinguishedName { CommonName(commonName) },
                signatureAlgorithm: .ecdsaWithSHA256, extensions: extensions,
                issuerPrivateKey: Certificate.PrivateKey(privateKey)
            )
            return TestCA(certificate: certificate, privateKey: key, issuers: [self.certificate] + issuers)
        }
    }

    /// Issues an end-entity TLS server certificate with SANs, AKI/SKI and EKU serverAuth.
    /// - Parameters:
    ///   - dnsNames: DNS SANs; the first one (or the first IP) becomes the CN.
    ///   - ipAddresses: IP SANs as text (`"127.0.0.1"`, `"::1"`).
    ///   - notBefore: Start of validity; defaults to one hour ago.
    ///   - notAfter: End of validity; defaults to 90 days from now.
    ///   - key: The leaf's key; a fresh P-256 key by default.
    ///   - serialNumber: The serial; random 20 bytes by default.
    /// - Throws: ``TestSupportError/certificate(what:reason:)`` (for example for an unparsable IP address).
    public func issueLeaf(
        dnsNames: [String],
        ipAddresses: [String] = [],
        notBefore: Date = Date().addingTimeInterval(-3600),
        notAfter: Date = Date().addingTimeInterval(90 * 86400),
        key: P256.Signing.PrivateKey = P256.Signing.PrivateKey(),
        serialNumber: Certificate.SerialNumber = Certificate.SerialNumber()
    ) throws -> TestCertificate {
        let certificate = try issueCertificate(
            publicKey: Certificate.PublicKey(key.publicKey), dnsNames: dnsNames, ipAddresses: ipAddresses,
            notBefore: notBefore, notAfter: notAfter, serialNumber: serialNumber
        )
        return TestCertificate(certificate: certificate, privateKey: key, issuers: [self.certificate] + issuers)
    }

    /// Issues an end-entity TLS server certificate for a public key whose private key this CA never sees
    /// (as a CA does for a CSR).
    /// - Parameters: see ``issueLeaf(dnsNames:ipAddresses:notBefore:notAfter:key:serialNumber:)``.
    /// - Throws: ``TestSupportError/certificate(what:reason:)``.
    public func issueCertificate(
        publicKey: Certificate.PublicKey,
        dnsNames: [String],
        ipAddresses: [String] = [],
        notBefore: Date = Date().addingTimeInterval(-3600),
        notAfter: Date = Date().addingTimeInterval(90 * 86400),
        serialNumber: Certificate.SerialNumber = Certificate.SerialNumber()
    ) throws -> Certificate {
        let what = "leaf certificate for \((dnsNames + ipAddresses).joined(separator: ","))"
        var names: [GeneralName] = dnsNames.map { .dnsName($0) }
        for ip in ipAddresses {
            guard let bytes = Self.ipAddressBytes(ip) else {
                throw TestSupportError.certificate(what: what, reason: "'\(ip)' is not an IP address")
            }
            names.append(.ipAddress(ASN1OctetString(contentBytes: bytes[...])))
        }
        guard let commonName = dnsNames.first ?? ipAddresses.first else {
            throw TestSupportError.certificate(what: what, reason: "no DNS name and no IP address given")
        }
        return try Self.wrap(what) {
            let extensions = try Certificate.Extensions {
                Critical(BasicConstraints.notCertificateAuthority)
                Critical(KeyUsage(digitalSignature: true))
                try ExtendedKeyUsage([.serverAuth])
                SubjectKeyIdentifier(hash: publicKey)
                try authorityKeyIdentifier()
                SubjectAlternativeNames(names)
            }
            return try Certificate(
                version: .v3, serialNumber: serialNumber, publicKey: publicKey,
                notValidBefore: notBefore, notValidAfter: notAfter, issuer: certificate.subject,
                subject: try DistinguishedName { CommonName(commonName) },
                signatureAlgorithm: .ecdsaWithSHA256, extensions: extensions,
                issuerPrivateKey: Certificate.PrivateKey(privateKey)
            )
        }
    }

    /// Writes `ca.pem` (this CA's certificate), `ca.key.pem` (its key) and `root.pem` (the hierarchy's root)
    /// into `directory`.
    /// - Returns: The paths written, keyed by file name.
    /// - Throws: ``TestSupportError/fileSystem(operation:path:reason:)``.
    @discardableResult
    public func writePEMFiles(to directory: String) throws -> [String: String] {
        try Self.writeFiles(
            ["ca.pem": certificatePEM, "ca.key.pem": privateKeyPEM, "root.pem": rootCertificatePEM],
            to: directory
        )
    }

    /// The AKI extension naming this CA's key (its SKI, or a fresh hash of its public key when it has none).
    private func authorityKeyIdentifier() throws -> AuthorityKeyIdentifier {
        let ski = try certificate.extensions.subjectKeyIdentifier
            ?? SubjectKeyIdentifier(hash: certificate.publicKey)
        return AuthorityKeyIdentifier(keyIdentifier: ski.keyIdentifier)
    }

    static func pem(_ certificate: Certificate) -> String {
        ((try? certificate.serializeAsPEM().pemString) ?? "") + "\n"
    }

    static func wrap<T>(_ what: String, _ body: () throws -> T) throws -> T {
        do {
            return try body()
        } catch let error as TestSupportError {
            throw error
        } catch {
            throw TestSupportError.certificate(what: what, reason: "\(error)")
        }
    }

    static func writeFiles(_ files: [String: String], to directory: String) throws -> [String: String] {
        do {
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        } catch {
            throw TestSupportError.fileSystem(operation: "create directory", path: directory, reason: "\(error)")
        }
        var written: [String: String] = [:]
        for (name, contents) in files {
            let path = directory + "/" + name
            do {
                try Data(contents.utf8).write(to: URL(fileURLWithPath: path))
            } catch {
                throw TestSupportError.fileSystem(operation: "write", path: path, reason: "\(error)")
            }
            written[name] = path
        }
        return written
    }

    /// The 4 or 16 network-order bytes of a textual IPv4 or IPv6 address.
    static func ipAddressBytes(_ text: String) -> [UInt8]? {
        var v4 = in_addr()
        if inet_pton(AF_INET, text, &v4) == 1 {
            return withUnsafeBytes(of: &v4) { Array($0) }
        }
        var v6 = in6_addr()
        if inet_pton(AF_INET6, text, &v6) == 1 {
            return withUnsafeBytes(of: &v6) { Array($0) }
        }
        return nil
    }
}

/// An end-entity certificate issued by a ``TestCA``, with its private key and issuer chain.
public struct TestCertificate: Sendable {
    /// The leaf certificate.
    public let certificate: Certificate
    /// The leaf's private key.
    public let privateKey: P256.Signing.PrivateKey
    /// The issuers, nearest first, ending with the root.
    public let issuers: [Certificate]

    /// The leaf as PEM (certbot's `cert.pem`).
    public var certificatePEM: String { TestCA.pem(certificate) }
    /// The issuers without the root, as PEM (certbot's `chain.pem`).
    public var chainPEM: String { issuers.dropLast().map(TestCA.pem).joined() }
    /// The leaf followed by the issuers without the root (certbot's `fullchain.pem`).
    public var fullChainPEM: String { certificatePEM + chainPEM }
    /// The root of the chain as PEM (what a client trusts).
    public var rootPEM: String { issuers.last.map(TestCA.pem) ?? certificatePEM }
    /// The private key as PKCS#8 PEM (certbot's `privkey.pem`).
    public var privateKeyPEM: String { privateKey.pemRepresentation }

    /// Writes `cert.pem`, `chain.pem`, `fullchain.pem`, `privkey.pem` and `root.pem` into `directory`.
    /// - Returns: The paths written, keyed by file name.
    /// - Throws: ``TestSupportError/fileSystem(operation:path:reason:)``.
    @discardableResult
    public func writePEMFiles(to directory: String) throws -> [String: String] {
        try TestCA.writeFiles(
            [
                "cert.pem": certificatePEM, "chain.pem": chainPEM, "fullchain.pem": fullChainPEM,
                "privkey.pem": privateKeyPEM, "root.pem": rootPEM,
            ],
            to: directory
        )
    }
}

/// A ready-made TLS server identity for `localhost` / `127.0.0.1` / `::1`: a fresh root CA and a leaf it signed.
public struct LocalhostServerIdentity: Sendable {
    /// The root that signed ``leaf``; clients trust ``TestCA/rootCertificatePEM``.
    public let ca: TestCA
    /// The server certificate and key.
    public let leaf: TestCertificate

    /// Creates a new root and a leaf for `localhost`, `127.0.0.1` and `::1`, valid for a year.
    /// - Throws: ``TestSupportError/certificate(what:reason:)``.
    public init(commonName: String = "certkeeper Test TLS Root") throws {
        ca = try TestCA.make(commonName: commonName)
        leaf = try ca.issueLeaf(
            dnsNames: ["localhost"], ipAddresses: ["127.0.0.1", "::1"],
            notAfter: Date().addingTimeInterval(365 * 86400)
        )
    }

    /// Writes `cert.pem`, `privkey.pem` (server) and `ca.pem` (the root to trust) into `directory`.
    /// - Returns: The paths written, keyed by file name.
    /// - Throws: ``TestSupportError/fileSystem(operation:path:reason:)``.
    @discardableResult
    public func writePEMFiles(to directory: String) throws -> [String: String] {
        try TestCA.writeFiles(
            ["cert.pem": leaf.certificatePEM, "privkey.pem": leaf.privateKeyPEM, "ca.pem": ca.certificatePEM],
            to: directory
        )
    }
}
