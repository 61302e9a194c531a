import ACMEProtocol
import Crypto
import _CryptoExtras
import Foundation
import NameRules
import SwiftASN1
import X509
#if canImport(Glibc)
import Glibc
#endif

/// Why a ``CertificateBundle`` was refused. Each case says which part and why, and prints as one line.
public enum VerificationError: Error, CustomStringConvertible, Sendable, Equatable {
    /// The leaf or a chain certificate is not valid PEM/DER (`reason` says which one and why).
    case unparseableCertificate(reason: String)
    /// The private key is missing, encrypted, truncated, or of an unsupported type.
    case unparseablePrivateKey(reason: String)
    /// No intermediates were given and the leaf is not self-signed (`issuer` is the leaf's issuer DN).
    case emptyChain(issuer: String)
    /// The private key does not belong to the leaf (short fingerprints of both public keys).
    case keyMismatch(certificateKey: String, privateKey: String)
    /// Certificate `index` of the full chain (0 = leaf) is not issued by certificate `index + 1`.
    case chainBroken(index: Int, reason: String)
    /// Expected names that no SAN of the leaf covers.
    case namesNotCovered(missing: [String], certificateNames: [String])
    /// The leaf's validity starts after `now` plus the allowed clock skew.
    case notYetValid(notBefore: Date, now: Date)
    /// The leaf's validity ended before `now`.
    case expired(notAfter: Date, now: Date)

    /// One line naming the part and the reason.
    public var description: String {
        let text: String
        switch self {
        case .unparseableCertificate(let reason):
            text = "unparseable certificate: \(reason)"
        case .unparseablePrivateKey(let reason):
            text = "unparseable private key: \(reason)"
        case .emptyChain(let issuer):
            text = "no intermediate certificates given and the leaf is not self-signed (issuer \(issuer))"
        case .keyMismatch(let certificateKey, let privateKey):
            text = "private key does not match the certificate (certificate key \(certificateKey), private key \(privateKey))"
        case .chainBroken(let index, let reason):
            text = "chain broken at certificate \(index) (0 = leaf): \(reason)"
        case .namesNotCovered(let missing, let names):
            text = "certificate does not cover \(missing.joined(separator: ", ")) (its names: \(names.isEmpty ? "none" : names.joined(separator: ", ")))"
        case .notYetValid(let notBefore, let now):
            text = "certificate not valid before \(ISO8601.string(notBefore)) (now \(ISO8601.string(now)))"
        case .expired(let notAfter, let now):
            text = "certificate expired at \(ISO8601.string(notAfter)) (now \(ISO8601.string(now)))"
        }
        return text.replacingNewlines()
    }
}

/// A bundle that passed ``BundleVerifier/verify(_:expectedDomains:now:)``, with the facts derived from it.
///
/// Only the verifier creates values of this type, so ``CertificateStore/install(_:name:issuedBy:now:)``
/// can only ever write a consistent leaf, chain and key.
public struct VerifiedBundle: Sendable {
    /// The PEM texts as given.
    public let bundle: CertificateBundle
    /// The parsed leaf.
    public let leaf: Certificate
    /// The parsed intermediates, in order.
    public let chain: [Certificate]
    /// The parsed private key.
    public let privateKey: Certificate.PrivateKey
    /// The leaf's DER bytes.
    public let leafDER: [UInt8]
    /// dNSName SANs, then iPAddress SANs as text.
    public let domains: [String]
    /// Serial number, lowercase hex, leading zero bytes stripped.
    public let serialHex: String
    /// Lowercase hex SHA-256 of ``leafDER``.
    public let sha256Hex: String
    /// Key type such as `ec256` or `rsa2048`.
    public let keyType: String
    /// RFC 9773 certID, `nil` without an authority key identifier.
    public let ariCertID: String?

    /// The meta record describing this bundle as version `version` of `name`.
    /// - Parameters:
    ///   - name: The certificate name.
    ///   - version: The archive version number.
    ///   - issuedBy: The node that issued or installed it.
    ///   - installedAt: When it was installed (truncated to whole seconds).
    public func meta(name: String, version: Int, issuedBy: String, installedAt: Date) -> CertificateMeta {
        CertificateMeta(
            name: name, version: version, domains: domains, serial: serialHex,
            notBefore: leaf.notValidBefore, notAfter: leaf.notValidAfter, sha256: sha256Hex,
            issuer: leaf.issuer.description, keyType: keyType, issuedBy: issuedBy,
            installedAt: Date(timeIntervalSince1970: installedAt.timeIntervalSince1970.rounded(.down)),
            ariCertID: ariCertID
        )
    }
}

/// Checks that a bundle is internally consistent and fit to serve: it parses, the key matches the leaf,
/// each certificate is signed by the next, the leaf covers the expected names and is valid now.
///
/// It does not require the chain to end in a trusted root (callers check trust separately where needed),
/// and it checks validity dates on the leaf only: ACME CAs have served chains with an expired cross-signed
/// root (DST Root CA X3 until 2024) that clients ignore.
public struct BundleVerifier: Sendable {
    /// How far in the future the leaf's `notBefore` may be (issuer and local clocks differ).
    public var clockSkew: TimeInterval

    /// Creates a verifier.
    /// - Parameter clockSkew: Tolerance on `notBefore`, in seconds (not applied to `notAfter`).
    public init(clockSkew: TimeInterval = 300) {
        self.clockSkew = clockSkew
    }

    /// Verifies a bundle.
    /// - Parameters:
    ///   - bundle: The PEM texts.
    ///   - expectedDomains: Every one must be covered by a SAN: exact match (case-insensitive, trailing dot
    ///     ignored), or a SAN `*.example.com` covering exactly one extra non-empty label (`a.example.com`). A
    ///     configured `*.example.com` needs the literal SAN `*.example.com`. An IP address needs an equal
    ///     iPAddress SAN.
    ///   - now: The time at which the leaf must be valid.
    /// - Returns: The verified bundle and the facts derived from it.
    /// - Throws: ``VerificationError`` for the first problem found, checked in the order parse, key, chain, names, dates.
    public func verify(_ bundle: CertificateBundle, expectedDomains: [String], now: Date) throws(VerificationError) -> VerifiedBundle {
        let leafBlocks = try Self.certificateBlocks(bundle.certificatePEM, part: "leaf")
        guard leafBlocks.count == 1 else {
            throw .unparseableCertificate(reason: "leaf: want exactly one CERTIFICATE block, found \(leafBlocks.count)")
        }
        let (leaf, leafDER) = try Self.parseCertificate(leafBlocks[0], part: "leaf")
        var chain: [Certificate] = []
        for (offset, block) in try Self.certificateBlocks(bundle.chainPEM, part: "chain").enumerated() {
            chain.append(try Self.parseCertificate(block, part: "chain certificate \(offset + 1)").certificate)
        }
        let privateKey = try Self.parsePrivateKey(bundle.privateKeyPEM)

        let privatePublic = privateKey.publicKey
        guard privatePublic.subjectPublicKeyInfoBytes == leaf.publicKey.subjectPublicKeyInfoBytes else {
            throw .keyMismatch(
                certificateKey: KeyFacts.summary(leaf.publicKey), privateKey: KeyFacts.summary(privatePublic))
        }

        try Self.checkChain(leaf: leaf, chain: chain)

        let names = SubjectNames(leaf)
        let missing = expectedDomains.filter { !names.covers($0) }
        guard missing.isEmpty else {
            throw .namesNotCovered(missing: missing, certificateNames: names.all)
        }

        if leaf.notValidBefore > now.addingTimeInterval(clockSkew) {
            throw .notYetValid(notBefore: leaf.notValidBefore, now: now)
        }
        if now > leaf.notValidAfter {
            throw .expired(notAfter: leaf.notValidAfter, now: now)
        }

        return VerifiedBundle(
            bundle: bundle, leaf: leaf, chain: chain, privateKey: privateKey, leafDER: leafDER,
            domains: names.all, serialHex: CertificateFacts.serialHex(leaf.serialNumber),
            sha256Hex: Hex.encode(SHA256.hash(data: leafDER)), keyType: KeyFacts.type(leaf.publicKey),
            ariCertID: ARICertificateID.make(for: leaf)
        )
    }

    // MARK: - Parsing

    private static func certificateBlocks(_ text: String, part: String) throws(VerificationError) -> [PEMBlock] {
        let blocks: [PEMBlock]
        do {
            blocks = try PEMBlocks.split(text)
        } catch {
            throw .unparseableCertificate(reason: "\(part): \(error.description)")
        }
        if let other = blocks.first(where: { $0.label != "CERTIFICATE" }) {
            throw .unparseableCertificate(reason: "\(part): found a \(other.label) block, want CERTIFICATE")
        }
        return blocks
    }

    private static func parseCertificate(_ block: PEMBlock, part: String) throws(VerificationError) -> (certificate: Certificate, der: [UInt8]) {
        do {
            let document = try PEMDocument(pemString: block.text)
            return (try Certificate(derEncoded: document.derBytes), document.derBytes)
        } catch {
            throw .unparseableCertificate(reason: "\(part): \(error)")
        }
    }

    private static let privateKeyLabels: Set<String> = ["EC PRIVATE KEY", "PRIVATE KEY", "RSA PRIVATE KEY"]

    private static func parsePrivateKey(_ text: String) throws(VerificationError) -> Certificate.PrivateKey {
        let blocks: [PEMBlock]
        do {
            blocks = try PEMBlocks.split(text)
        } catch {
            throw .unparseablePrivateKey(reason: error.description)
        }
        if blocks.contains(where: { $0.label == "ENCRYPTED PRIVATE KEY" }) {
            throw .unparseablePrivateKey(reason: "encrypted private keys are not supported")
        }
        // `openssl ecparam -genkey` writes an EC PARAMETERS block before the key: skip it.
        let keys = blocks.filter { privateKeyLabels.contains($0.label) }
        guard keys.count == 1 else {
            let found = blocks.map(\.label).joined(separator: ", ")
            throw .unparseablePrivateKey(
                reason: "want exactly one EC PRIVATE KEY, PRIVATE KEY or RSA PRIVATE KEY block, found \(keys.count) (blocks: \(found.isEmpty ? "none" : found))")
        }
        do {
            return try Certificate.PrivateKey(pemEncoded: keys[0].text)
        } catch {
            throw .unparseablePrivateKey(reason: "\(keys[0].label): \(error)")
        }
    }

    // MARK: - Chain

    private static func checkChain(leaf: Certificate, chain: [Certificate]) throws(VerificationError) {
        guard !chain.isEmpty else {
            guard leaf.issuer == leaf.subject else {
                throw .emptyChain(issuer: leaf.issuer.description)
            }
            guard leaf.publicKey.isValidSignature(leaf.signature, for: leaf) else {
                throw .chainBroken(index: 0, reason: "self-signed leaf \(leaf.subject) does not verify with its own key")
            }
            return
        }
        let all = [leaf] + chain
        for index in 0..<(all.count - 1) {
            let subject = all[index], issuer = all[index + 1]
            guard subject.issuer == issuer.subject else {
                throw .chainBroken(
                    index: index,
                    reason: "issuer \(subject.issuer) of \(subject.subject) is not the subject of the next certificate (\(issuer.subject))")
            }
            guard issuer.publicKey.isValidSignature(subject.signature, for: subject) else {
                throw .chainBroken(
                    index: index, reason: "signature of \(subject.subject) does not verify with the key of \(issuer.subject)")
            }
        }
    }
}

/// The names a leaf covers, and the matching rules for expected names.
struct SubjectNames {
    /// dNSName SANs as written in the certificate.
    var dnsNames: [String] = []
    /// iPAddress SANs, raw bytes (4 or 16).
    var ipAddresses: [[UInt8]] = []

    init(_ certificate: Certificate) {
        guard let sans = try? certificate.extensions.subjectAlternativeNames else { return }
        for name in sans {
            switch name {
            case .dnsName(let dns): dnsNames.append(dns)
            case .ipAddress(let octets): ipAddresses.append(Array(octets.bytes))
            default: break
            }
        }
    }

    /// DNS names then IP addresses as text.
    var all: [String] { dnsNames + ipAddresses.map(IPAddressText.format) }

    /// Whether some SAN covers `expected` (see ``BundleVerifier/verify(_:expectedDomains:now:)``).
    func covers(_ expected: String) -> Bool {
        if let ip = IPAddressText.parse(expected) {
            return ipAddresses.contains(ip)
        }
        let wanted = Self.normalise(expected)
        let sans = dnsNames.map(Self.normalise)
        if sans.contains(wanted) { return true }
        // A configured wildcard needs the literal wildcard SAN (handled above); a SAN wildcard
        // covers exactly one extra, non-empty, non-wildcard label.
        guard !wanted.hasPrefix("*."), let dot = wanted.firstIndex(of: "."), dot != wanted.startIndex else { return false }
        let parent = wanted[wanted.index(after: dot)...]
        return !parent.isEmpty && sans.contains("*." + parent)
    }

    private static func normalise(_ name: String) -> String {
        let lower = name.lowercased()
        return lower.hasSuffix(".") ? String(lower.dropLast()) : lower
    }
}

/// Text forms of IP addresses for iPAddress SANs (through ``NameRules/IPLiteral``).
enum IPAddressText {
    static func parse(_ text: String) -> [UInt8]? {
        IPLiteral.bytes(text)
    }

    /// The address's text, or hex for a SAN of another length.
    static func format(_ bytes: [UInt8]) -> String {
        IPLiteral.text(bytes) ?? Hex.encode(bytes)
    }
}

/// Facts derived from a certificate for `meta.json` and ARI.
enum CertificateFacts {
    /// Serial as lowercase hex, leading zero bytes (including DER's sign byte) stripped; "00" for zero.
    static func serialHex(_ serial: Certificate.SerialNumber) -> String {
        let magnitude = serial.bytes.drop(while: { $0 == 0 })
        return magnitude.isEmpty ? "00" : Hex.encode(magnitude)
    }
}

/// Key descriptions for meta and error messages.
enum KeyFacts {
    /// `ec256`, `ec384`, `ec521`, `rsa<bits>`, `ed25519`, or `unknown`.
    static func type(_ key: Certificate.PublicKey) -> String {
        if P256.Signing.PublicKey(key) != nil { return "ec256" }
        if P384.Signing.PublicKey(key) != nil { return "ec384" }
        if P521.Signing.PublicKey(key) != nil { return "ec521" }
        if let rsa = _RSA.Signing.PublicKey(key) { return "rsa\(rsa.keySizeInBits)" }
        if Curve25519.Signing.PublicKey(key) != nil { return "ed25519" }
        return "unknown"
    }

    /// Type plus the first 8 bytes of the SHA-256 of the SubjectPublicKeyInfo, e.g. `ec256 sha256:1a2b…`.
    static func summary(_ key: Certificate.PublicKey) -> String {
        let digest = Array(SHA256.hash(data: Array(key.subjectPublicKeyInfoBytes)))
        return "\(type(key)) spki-sha256:\(Hex.encode(digest.prefix(8)))"
    }
}

enum Hex {
    static func encode<Bytes: Sequence>(_ bytes: Bytes) -> String where Bytes.Element == UInt8 {
        let digits = Array("0123456789abcdef".utf8)
        var out: [UInt8] = []
        for byte in bytes {
            out.append(digits[Int(byte >> 4)])
            out.append(digits[Int(byte & 0x0f)])
        }
        return String(decoding: out, as: UTF8.self)
    }
}
