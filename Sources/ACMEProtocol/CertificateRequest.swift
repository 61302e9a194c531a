import Crypto
import _CryptoExtras
import Foundation
import SwiftASN1
import X509

/// Certificate key types certkeeper can order (the config's `key_type`).
public enum CertificateKeyType: String, Sendable, CaseIterable {
    case ec256, ec384, rsa2048, rsa3072, rsa4096
}

/// A freshly generated certificate private key with its PEM form. Its description never shows the key.
public struct GeneratedCertificateKey: Sendable, CustomStringConvertible {
    public var description: String { "GeneratedCertificateKey(\(type.rawValue), <redacted>)" }

    public let type: CertificateKeyType
    public let privateKey: Certificate.PrivateKey
    /// PKCS#8 for EC keys, PKCS#1 for RSA keys (what certbot writes), for `privkey.pem`; ends with a newline.
    public let pem: String

    init(type: CertificateKeyType, privateKey: Certificate.PrivateKey, pem: String) {
        self.type = type
        self.privateKey = privateKey
        self.pem = pem.hasSuffix("\n") ? pem : pem + "\n"
    }

    /// Generates a key of `type`. RSA keys take noticeably longer (hundreds of ms for 4096 bits).
    public static func generate(_ type: CertificateKeyType) throws(ACMEProtocolError) -> GeneratedCertificateKey {
        do {
            switch type {
            case .ec256:
                let key = P256.Signing.PrivateKey()
                return GeneratedCertificateKey(type: type, privateKey: Certificate.PrivateKey(key), pem: key.pemRepresentation)
            case .ec384:
                let key = P384.Signing.PrivateKey()
                return GeneratedCertificateKey(type: type, privateKey: Certificate.PrivateKey(key), pem: key.pemRepresentation)
            case .rsa2048, .rsa3072, .rsa4096:
                let bits = type == .rsa2048 ? 2048 : type == .rsa3072 ? 3072 : 4096
                let key = try _RSA.Signing.PrivateKey(keySize: .init(bitCount: bits))
                return GeneratedCertificateKey(type: type, privateKey: Certificate.PrivateKey(key), pem: key.pemRepresentation)
            }
        } catch {
            throw .unsupportedKey("cannot generate \(type.rawValue) key: \(error)")
        }
    }
}

/// Builds the PKCS#10 request sent to `finalize`.
public enum CSRBuilder {
    /// A DER CSR for `domains`, signed by `key`: every domain as a SAN dNSName, the first as CN when it fits
    /// the 64-character CN limit (CAs ignore the CN otherwise).
    public static func makeCSR(domains: [String], key: GeneratedCertificateKey) throws(ACMEProtocolError) -> [UInt8] {
        guard !domains.isEmpty else { throw .invalidCertificate("a CSR needs at least one domain") }
        do {
            let subject: DistinguishedName
            if let first = domains.first, first.utf8.count <= 64 {
                subject = try DistinguishedName { CommonName(first) }
            } else {
                subject = DistinguishedName()
            }
            let extensions = try Certificate.Extensions {
                SubjectAlternativeNames(domains.map { GeneralName.dnsName($0) })
            }
            let attributes = CertificateSigningRequest.Attributes([
                try CertificateSigningRequest.Attribute(ExtensionRequest(extensions: extensions)),
            ])
            let csr = try CertificateSigningRequest(
                version: .v1,
                subject: subject,
                privateKey: key.privateKey,
                attributes: attributes,
                signatureAlgorithm: Self.signatureAlgorithm(for: key.type)
            )
            var serializer = DER.Serializer()
            try serializer.serialize(csr)
            return serializer.serializedBytes
        } catch {
            throw .invalidCertificate("cannot build CSR: \(error)")
        }
    }

    static func signatureAlgorithm(for type: CertificateKeyType) -> Certificate.SignatureAlgorithm {
        switch type {
        case .ec256: .ecdsaWithSHA256
        case .ec384: .ecdsaWithSHA384
        case .rsa2048, .rsa3072, .rsa4096: .sha256WithRSAEncryption
        }
    }
}

/// ARI's certificate identifier (RFC 9773 §4.1).
public enum ARICertificateID {
    /// base64url(AKI keyIdentifier) "." base64url(DER serial number content), or `nil` when the certificate has no AKI.
    public static func make(for certificate: Certificate) -> String? {
        guard let aki = try? certificate.extensions.authorityKeyIdentifier, let keyID = aki.keyIdentifier, !keyID.isEmpty else {
            return nil
        }
        return Base64URL.encode(Array(keyID)) + "." + Base64URL.encode(serialDERContent(certificate.serialNumber))
    }

    /// The content octets of the serial's DER INTEGER: minimal big-endian bytes, with a 0x00 sign byte when the
    /// top bit is set (RFC 9773's example serial 0x87654321 encodes as `00 87 65 43 21`). `SerialNumber.bytes`
    /// is not relied on to carry the sign byte.
    public static func serialDERContent(_ serial: Certificate.SerialNumber) -> [UInt8] {
        let magnitude = Array(serial.bytes.drop(while: { $0 == 0 }))
        guard let first = magnitude.first else { return [0] }
        return first & 0x80 != 0 ? [0] + magnitude : magnitude
    }

    /// Builds the renewalInfo URL for `certID`: the directory's `renewalInfo` with a single `/` joining them.
    public static func url(renewalInfoBase: String, certID: String) -> String {
        (renewalInfoBase.hasSuffix("/") ? String(renewalInfoBase.dropLast()) : renewalInfoBase) + "/" + certID
    }
}

/// Splitting the `application/pem-certificate-chain` a CA returns.
public enum PEMChain {
    /// The certificates in `pem`, in order. Throws when there is none or one does not parse.
    public static func parse(_ pem: String) throws(ACMEProtocolError) -> [Certificate] {
        let documents: [PEMDocument]
        do {
            documents = try PEMDocument.parseMultiple(pemString: pem)
        } catch {
            throw .invalidCertificate("certificate chain is not PEM: \(error)")
        }
        let certificates = documents.filter { $0.discriminator == "CERTIFICATE" }
        guard !certificates.isEmpty else { throw .invalidCertificate("certificate chain holds no CERTIFICATE block") }
        do {
            return try certificates.map { try Certificate(pemDocument: $0) }
        } catch {
            throw .invalidCertificate("certificate in chain does not parse: \(error)")
        }
    }

    /// Re-encodes certificates as PEM, one block after another.
    public static func encode(_ certificates: [Certificate]) throws(ACMEProtocolError) -> String {
        do {
            return try certificates.map { try $0.serializeAsPEM().pemString + "\n" }.joined()
        } catch {
            throw .invalidCertificate("cannot encode certificate: \(error)")
        }
    }
}

extension PEMChain {
    /// The DER of the first certificate in `pem` (what `revokeCert` sends).
    public static func firstCertificateDER(_ pem: String) throws(ACMEProtocolError) -> [UInt8] {
        guard let first = try parse(pem).first else { throw .invalidCertificate("no certificate") }
        do {
            var serializer = DER.Serializer()
            try serializer.serialize(first)
            return serializer.serializedBytes
        } catch {
            throw .invalidCertificate("cannot encode certificate: \(error)")
        }
    }
}
