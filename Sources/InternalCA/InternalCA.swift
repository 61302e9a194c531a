import NameRules
import Crypto
import _CryptoExtras
import Foundation
import SwiftASN1
import X509
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// The public half of the internal CA: the self-signed root certificate clients are told to trust.
public struct InternalRoot: Sendable {
    /// The parsed root certificate.
    public let certificate: Certificate
    /// The root in DER.
    public let der: [UInt8]

    /// Wraps a root certificate.
    /// - Parameters:
    ///   - certificate: The root certificate.
    ///   - der: Its DER encoding.
    public init(certificate: Certificate, der: [UInt8]) {
        self.certificate = certificate
        self.der = der
    }

    /// The root in PEM, ending with a newline.
    public var pem: String { PEM.encode(der, label: "CERTIFICATE") }

    /// The SHA-256 fingerprint as `openssl x509 -fingerprint -sha256` prints it (`AB:CD:...`).
    public var fingerprint: String {
        SHA256.hash(data: der).map { Self.hex($0, uppercase: true) }.joined(separator: ":")
    }

    /// The SHA-256 fingerprint as lowercase hex without separators, for file names.
    public var fingerprintHex: String {
        SHA256.hash(data: der).map { Self.hex($0, uppercase: false) }.joined()
    }

    private static func hex(_ byte: UInt8, uppercase: Bool) -> String {
        let text = String(byte, radix: 16, uppercase: uppercase)
        return text.count == 1 ? "0" + text : text
    }
}

/// What a leaf certificate from the internal CA should say.
public struct LeafRequest: Sendable {
    /// DNS names (one label such as `localhost` allowed, `*.` wildcards allowed) and IP address literals
    /// (`127.0.0.1`, `::1`). The first becomes the subject's common name when it fits (64 characters).
    public var names: [String]
    /// The leaf's public key (any type swift-certificates supports).
    public var publicKey: Certificate.PublicKey
    /// Seconds from issuance to the end of validity (the start is backdated by ``InternalCA/backdate``).
    public var lifetime: TimeInterval

    /// Creates a request.
    public init(names: [String], publicKey: Certificate.PublicKey, lifetime: TimeInterval) {
        self.names = names
        self.publicKey = publicKey
        self.lifetime = lifetime
    }
}

/// A leaf signed by the internal CA, ready to become a ``CertStore/CertificateBundle`` with its private key.
public struct IssuedLeaf: Sendable {
    /// The parsed leaf.
    public let certificate: Certificate
    /// The leaf in PEM.
    public let certificatePEM: String
    /// What goes after the leaf in `fullchain.pem`: the root. Clients that trust the root ignore the copy; it
    /// makes `chain.pem` non-empty and lets every chain check of the store run unchanged.
    public let chainPEM: String
}

/// certkeeper's own certificate authority, like Caddy's `tls internal`: a P-256 root that signs short-lived
/// leaf certificates directly, with no network and no challenge.
///
/// There is no intermediate: both keys would sit in the same directory of the same machine, so an intermediate
/// would add a certificate to every handshake and protect nothing. Pure: time and serial-number randomness are
/// parameters; only key generation uses the system's generator.
public struct InternalCA: Sendable {
    /// How far a leaf's `notBefore` is set back from the issuance time, for clients whose clocks are behind.
    public static let backdate: TimeInterval = 300
    /// How far the root's `notBefore` is set back from its creation time.
    public static let rootBackdate: TimeInterval = 3600

    /// The root certificate.
    public let root: InternalRoot
    private let key: P256.Signing.PrivateKey

    /// Pairs a root with its key after checking that they belong together and that the root is a CA.
    /// - Parameters:
    ///   - root: The root certificate.
    ///   - key: The root's private key.
    ///   - source: Names the material in errors (a directory, or "new root").
    /// - Throws: ``InternalCAError`` with code `keyMismatch` or `malformed`.
    public init(root: InternalRoot, key: P256.Signing.PrivateKey, source: String) throws(InternalCAError) {
        guard Certificate.PublicKey(key.publicKey) == root.certificate.publicKey else {
            throw InternalCAError(code: .keyMismatch, subject: source, detail: "the root key does not match the root certificate")
        }
        let constraints = try? root.certificate.extensions.basicConstraints
        guard case .isCertificateAuthority = constraints else {
            throw InternalCAError(code: .malformed, subject: source, detail: "the root certificate is not a CA certificate")
        }
        guard root.certificate.issuer == root.certificate.subject,
              root.certificate.publicKey.isValidSignature(root.certificate.signature, for: root.certificate)
        else {
            throw InternalCAError(code: .malformed, subject: source, detail: "the root certificate is not self-signed")
        }
        self.root = root
        self.key = key
    }

    /// The root key in PEM (PKCS#8). Secret: write it with mode 0600 and never log it.
    public var keyPEM: String { key.pemRepresentation.hasSuffix("\n") ? key.pemRepresentation : key.pemRepresentation + "\n" }

    /// Creates a new root with a fresh P-256 key.
    ///
    /// The root: subject `CN=<name> <first 4 bytes of its key identifier in hex>` (so two roots with the same name
    /// can be told apart in a trust store), basicConstraints CA with path length 0, keyUsage keyCertSign + cRLSign,
    /// a subject key identifier, a random 128-bit serial, valid from one hour before `now` for `lifetime` seconds.
    /// - Parameters:
    ///   - name: The configured `internal_ca.name`.
    ///   - lifetime: Seconds of validity from `now`.
    ///   - now: The creation time.
    ///   - generator: The source of the serial number.
    /// - Throws: ``InternalCAError`` with code `invalidRequest` or `crypto`.
    public static func generate(
        name: String, lifetime: TimeInterval, now: Date, generator: inout some RandomNumberGenerator
    ) throws(InternalCAError) -> InternalCA {
        guard lifetime > 0 else {
            throw InternalCAError(code: .invalidRequest, subject: "internal CA root", detail: "the lifetime must be positive")
        }
        let key = P256.Signing.PrivateKey()
        let publicKey = Certificate.PublicKey(key.publicKey)
        let keyIdentifier = SubjectKeyIdentifier(hash: publicKey)
        let suffix = keyIdentifier.keyIdentifier.prefix(4).map { String(format: "%02x", $0) }.joined()
        let serial = randomSerial(&generator)
        do {
            let subject = try DistinguishedName { CommonName("\(name) \(suffix)") }
            let extensions = try Certificate.Extensions {
                Critical(BasicConstraints.isCertificateAuthority(maxPathLength: 0))
                Critical(KeyUsage(keyCertSign: true, cRLSign: true))
                keyIdentifier
            }
            let certificate = try Certificate(
                version: .v3, serialNumber: serial, publicKey: publicKey,
                notValidBefore: now.addingTimeInterval(-rootBackdate), notValidAfter: now.addingTimeInterval(lifetime),
                issuer: subject, subject: subject, signatureAlgorithm: .ecdsaWithSHA256, extensions: extensions,
                issuerPrivateKey: Certificate.PrivateKey(key))
            return try InternalCA(root: InternalRoot(certificate: certificate, der: try certificate.derBytes()), key: key, source: "new root")
        } catch let error as InternalCAError {
            throw error
        } catch {
            throw InternalCAError(code: .crypto, subject: "internal CA root", detail: "cannot build the root certificate: \(error)")
        }
    }

    /// Signs a leaf certificate.
    ///
    /// The leaf: subject `CN=<first name>` when it fits (else an empty subject and a critical SAN); SANs with
    /// every DNS name as dNSName and every IP literal as iPAddress; basicConstraints not a CA; keyUsage
    /// digitalSignature (plus keyEncipherment for RSA keys); extendedKeyUsage serverAuth; subject and authority
    /// key identifiers; a random 128-bit serial; valid from ``backdate`` before `now` for `lifetime` seconds, cut
    /// at the root's own expiry.
    /// - Parameters:
    ///   - request: The names, the public key and the lifetime.
    ///   - now: The issuance time.
    ///   - generator: The source of the serial number.
    /// - Returns: The leaf and the chain to serve after it.
    /// - Throws: ``InternalCAError`` with code `invalidRequest`, `rootExpired` or `crypto`.
    public func issue(_ request: LeafRequest, now: Date, generator: inout some RandomNumberGenerator) throws(InternalCAError) -> IssuedLeaf {
        let subjectText = request.names.first ?? "leaf"
        guard !request.names.isEmpty else {
            throw InternalCAError(code: .invalidRequest, subject: "leaf request", detail: "a certificate needs at least one name")
        }
        guard request.lifetime > 0 else {
            throw InternalCAError(code: .invalidRequest, subject: "leaf for \(subjectText)", detail: "the lifetime must be positive")
        }
        guard now < root.certificate.notValidAfter else {
            throw InternalCAError(
                code: .rootExpired, subject: "internal CA root",
                detail: "expired on \(root.certificate.notValidAfter.formatted(.iso8601)); move the internal-ca directory away to create a new root, and trust the new one")
        }
        var alternativeNames: [GeneralName] = []
        for name in request.names {
            let general = LeafNames.generalName(name)
            if !alternativeNames.contains(general) { alternativeNames.append(general) }
        }
        let commonNameFits = subjectText.utf8.count <= 64
        let notAfter = min(now.addingTimeInterval(request.lifetime), root.certificate.notValidAfter)
        let serial = Self.randomSerial(&generator)
        do {
            let rootKeyIdentifier = try root.certificate.extensions.subjectKeyIdentifier?.keyIdentifier
                ?? SubjectKeyIdentifier(hash: root.certificate.publicKey).keyIdentifier
            let isRSA = _RSA.Signing.PublicKey(request.publicKey) != nil
            let extensions = try Certificate.Extensions {
                Critical(BasicConstraints.notCertificateAuthority)
                Critical(KeyUsage(digitalSignature: true, keyEncipherment: isRSA))
                try ExtendedKeyUsage([.serverAuth])
                SubjectKeyIdentifier(hash: request.publicKey)
                AuthorityKeyIdentifier(keyIdentifier: rootKeyIdentifier)
                if commonNameFits {
                    SubjectAlternativeNames(alternativeNames)
                } else {
                    Critical(SubjectAlternativeNames(alternativeNames))
                }
            }
            let subject = commonNameFits ? try DistinguishedName { CommonName(subjectText) } : DistinguishedName()
            let certificate = try Certificate(
                version: .v3, serialNumber: serial, publicKey: request.publicKey,
                notValidBefore: now.addingTimeInterval(-Self.backdate), notValidAfter: notAfter,
                issuer: root.certificate.subject, subject: subject, signatureAlgorithm: .ecdsaWithSHA256,
                extensions: extensions, issuerPrivateKey: Certificate.PrivateKey(key))
            return IssuedLeaf(
                certificate: certificate, certificatePEM: PEM.encode(try certificate.derBytes(), label: "CERTIFICATE"),
                chainPEM: root.pem)
        } catch {
            throw InternalCAError(code: .crypto, subject: "leaf for \(subjectText)", detail: "cannot build the certificate: \(error)")
        }
    }

    /// A positive serial of 128 random bits (CA/Browser Forum rules ask for at least 64).
    static func randomSerial(_ generator: inout some RandomNumberGenerator) -> Certificate.SerialNumber {
        var bytes: [UInt8] = []
        for _ in 0..<2 {
            let word = generator.next() as UInt64
            bytes += (0..<8).map { UInt8(truncatingIfNeeded: word >> (56 - 8 * $0)) }
        }
        if bytes.allSatisfy({ $0 == 0 }) { bytes[15] = 1 }
        return Certificate.SerialNumber(bytes: bytes)
    }
}

/// The SAN form of a configured name.
enum LeafNames {
    /// An iPAddress for an IPv4 or IPv6 literal, a dNSName for anything else.
    static func generalName(_ name: String) -> GeneralName {
        if let bytes = IPLiteral.bytes(name) { return .ipAddress(ASN1OctetString(contentBytes: bytes[...])) }
        return .dnsName(name.lowercased())
    }
}

/// PEM text for DER bytes, 64 characters a line.
enum PEM {
    static func encode(_ der: [UInt8], label: String) -> String {
        let base64 = Data(der).base64EncodedString()
        var lines = ["-----BEGIN \(label)-----"]
        var index = base64.startIndex
        while index < base64.endIndex {
            let end = base64.index(index, offsetBy: 64, limitedBy: base64.endIndex) ?? base64.endIndex
            lines.append(String(base64[index..<end]))
            index = end
        }
        lines.append("-----END \(label)-----")
        return lines.joined(separator: "\n") + "\n"
    }
}

extension Certificate {
    func derBytes() throws -> [UInt8] {
        var serializer = DER.Serializer()
        try serializer.serialize(self)
        return serializer.serializedBytes
    }
}
