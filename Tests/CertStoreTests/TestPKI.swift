import Crypto
import Foundation
import Glibc
import Logging
import SwiftASN1
import X509
import _CryptoExtras

@testable import CertStore

/// X509 also has a `CertificateStore` (trust roots); name ours unambiguously.
typealias Store = CertStore.CertificateStore

/// 2026-01-01T00:00:00Z: a fixed "now" so every test is reproducible.
let testNow = Date(timeIntervalSince1970: 1_767_225_600)
let day: TimeInterval = 86_400

/// A private key with the PEM text a client would have written for it.
struct TestKey {
    var key: Certificate.PrivateKey
    var pem: String

    static func p256() -> TestKey {
        let key = P256.Signing.PrivateKey()
        return TestKey(key: Certificate.PrivateKey(key), pem: key.pemRepresentation)
    }

    static func p384() -> TestKey {
        let key = P384.Signing.PrivateKey()
        return TestKey(key: Certificate.PrivateKey(key), pem: key.pemRepresentation)
    }

    /// P-256 in SEC1 form (`EC PRIVATE KEY`), optionally preceded by the `EC PARAMETERS` block
    /// `openssl ecparam -genkey` writes.
    static func p256SEC1(withParameters: Bool = false) throws -> TestKey {
        let key = P256.Signing.PrivateKey()
        var serializer = DER.Serializer()
        try serializer.appendConstructedNode(identifier: .sequence) { coder in
            try coder.serialize(1)
            try coder.serialize(ASN1OctetString(contentBytes: ArraySlice(key.rawRepresentation)))
            try coder.serialize(explicitlyTaggedWithTagNumber: 0, tagClass: .contextSpecific) { coder in
                try coder.serialize(ASN1ObjectIdentifier.NamedCurves.secp256r1)
            }
            try coder.serialize(explicitlyTaggedWithTagNumber: 1, tagClass: .contextSpecific) { coder in
                try coder.serialize(ASN1BitString(bytes: ArraySlice(key.publicKey.x963Representation)))
            }
        }
        var pem = PEMDocument(type: "EC PRIVATE KEY", derBytes: serializer.serializedBytes).pemString + "\n"
        if withParameters {
            pem = "-----BEGIN EC PARAMETERS-----\nBggqhkjOPQMBBw==\n-----END EC PARAMETERS-----\n" + pem
        }
        return TestKey(key: Certificate.PrivateKey(key), pem: pem)
    }

    /// RSA 2048 as PKCS#1 (`RSA PRIVATE KEY`) or PKCS#8 (`PRIVATE KEY`).
    static func rsa2048(pkcs8: Bool = false) throws -> TestKey {
        let key = try _RSA.Signing.PrivateKey(keySize: .bits2048)
        return TestKey(key: Certificate.PrivateKey(key), pem: pkcs8 ? key.pkcs8PEMRepresentation : key.pemRepresentation)
    }
}

/// A small certificate authority (root or intermediate) that issues certificates in code.
struct TestCA {
    var name: DistinguishedName
    var key: TestKey
    var certificate: Certificate
    var keyIdentifier: [UInt8]

    /// A self-signed root.
    static func root(commonName: String = "Test Root", key: TestKey = .p256(), keyIdentifier: [UInt8]? = nil) throws -> TestCA {
        let name = try DistinguishedName {
            CountryName("XX")
            OrganizationName("certkeeper tests")
            CommonName(commonName)
        }
        let identifier = keyIdentifier ?? Self.keyIdentifier(for: key.key.publicKey)
        let certificate = try Certificate(
            version: .v3, serialNumber: .init(), publicKey: key.key.publicKey,
            notValidBefore: testNow - 3650 * day, notValidAfter: testNow + 3650 * day,
            issuer: name, subject: name, signatureAlgorithm: signatureAlgorithm(for: key.key),
            extensions: try Certificate.Extensions {
                Critical(BasicConstraints.isCertificateAuthority(maxPathLength: nil))
                Critical(KeyUsage(keyCertSign: true, cRLSign: true))
                SubjectKeyIdentifier(keyIdentifier: ArraySlice(identifier))
            },
            issuerPrivateKey: key.key)
        return TestCA(name: name, key: key, certificate: certificate, keyIdentifier: identifier)
    }

    /// An intermediate CA signed by this one.
    func intermediate(commonName: String = "Test Intermediate", key: TestKey = .p256(), keyIdentifier: [UInt8]? = nil) throws -> TestCA {
        let name = try DistinguishedName {
            CountryName("XX")
            OrganizationName("certkeeper tests")
            CommonName(commonName)
        }
        let identifier = keyIdentifier ?? Self.keyIdentifier(for: key.key.publicKey)
        let certificate = try Certificate(
            version: .v3, serialNumber: .init(), publicKey: key.key.publicKey,
            notValidBefore: testNow - 1000 * day, notValidAfter: testNow + 1000 * day,
            issuer: self.name, subject: name, signatureAlgorithm: Self.signatureAlgorithm(for: self.key.key),
            extensions: try Certificate.Extensions {
                Critical(BasicConstraints.isCertificateAuthority(maxPathLength: 0))
                Critical(KeyUsage(keyCertSign: true, cRLSign: true))
                SubjectKeyIdentifier(keyIdentifier: ArraySlice(identifier))
                AuthorityKeyIdentifier(keyIdentifier: ArraySlice(self.keyIdentifier))
            },
            issuerPrivateKey: self.key.key)
        return TestCA(name: name, key: key, certificate: certificate, keyIdentifier: identifier)
    }

    /// A leaf for `dnsNames` (and `ipAddresses`), valid `notBefore`…`notAfter`.
    func leaf(
        dnsNames: [String], ipAddresses: [[UInt8]] = [], key: TestKey = .p256(),
        notBefore: Date = testNow - day, notAfter: Date = testNow + 89 * day,
        serial: Certificate.SerialNumber = .init(), includeAKI: Bool = true
    ) throws -> Certificate {
        let names = dnsNames.map { GeneralName.dnsName($0) } + ipAddresses.map { GeneralName.ipAddress(ASN1OctetString(contentBytes: ArraySlice($0))) }
        let issuerKeyIdentifier = self.keyIdentifier
        return try Certificate(
            version: .v3, serialNumber: serial, publicKey: key.key.publicKey,
            notValidBefore: notBefore, notValidAfter: notAfter,
            issuer: self.name, subject: try DistinguishedName { CommonName(dnsNames.first ?? "leaf") },
            signatureAlgorithm: Self.signatureAlgorithm(for: self.key.key),
            extensions: try Certificate.Extensions {
                Critical(BasicConstraints.notCertificateAuthority)
                Critical(KeyUsage(digitalSignature: true))
                try ExtendedKeyUsage([.serverAuth])
                SubjectAlternativeNames(names)
                if includeAKI { AuthorityKeyIdentifier(keyIdentifier: ArraySlice(issuerKeyIdentifier)) }
            },
            issuerPrivateKey: self.key.key)
    }

    static func keyIdentifier(for key: Certificate.PublicKey) -> [UInt8] {
        Array(SHA256.hash(data: Array(key.subjectPublicKeyInfoBytes)).prefix(20))
    }

    static func signatureAlgorithm(for key: Certificate.PrivateKey) -> Certificate.SignatureAlgorithm {
        switch KeyFacts.type(key.publicKey) {
        case "ec384": return .ecdsaWithSHA384
        case "ec521": return .ecdsaWithSHA512
        case let type where type.hasPrefix("rsa"): return .sha256WithRSAEncryption
        default: return .ecdsaWithSHA256
        }
    }
}

/// A self-signed leaf (no chain), for tests of the empty-chain rule.
func selfSignedLeaf(dnsNames: [String], key: TestKey = .p256()) throws -> Certificate {
    let name = try DistinguishedName { CommonName(dnsNames.first ?? "self") }
    return try Certificate(
        version: .v3, serialNumber: .init(), publicKey: key.key.publicKey,
        notValidBefore: testNow - day, notValidAfter: testNow + 30 * day,
        issuer: name, subject: name, signatureAlgorithm: TestCA.signatureAlgorithm(for: key.key),
        extensions: try Certificate.Extensions { SubjectAlternativeNames(dnsNames.map { .dnsName($0) }) },
        issuerPrivateKey: key.key)
}

func pem(_ certificate: Certificate) throws -> String {
    try certificate.serializeAsPEM().pemString + "\n"
}

func der(_ certificate: Certificate) throws -> [UInt8] {
    var serializer = DER.Serializer()
    try serializer.serialize(certificate)
    return serializer.serializedBytes
}

/// A complete PKI for one test: root, intermediate, and a bundle for `example.com` names.
struct TestChain {
    var root: TestCA
    var intermediate: TestCA
    var leafKey: TestKey
    var leaf: Certificate

    init(dnsNames: [String] = ["example.com", "www.example.com"], leafKey: TestKey = .p256()) throws {
        root = try TestCA.root()
        intermediate = try root.intermediate()
        self.leafKey = leafKey
        leaf = try intermediate.leaf(dnsNames: dnsNames, key: leafKey)
    }

    var bundle: CertificateBundle {
        get throws {
            CertificateBundle(certificatePEM: try pem(leaf), chainPEM: try pem(intermediate.certificate), privateKeyPEM: leafKey.pem)
        }
    }

    func verified(expectedDomains: [String] = ["example.com"]) throws -> VerifiedBundle {
        try BundleVerifier().verify(try bundle, expectedDomains: expectedDomains, now: testNow)
    }
}

/// A fresh directory under /tmp, removed by `remove()`.
struct TemporaryDirectory {
    let path: String

    init() throws {
        var template = Array("/tmp/certstore-test-XXXXXX".utf8CString)
        guard let made = mkdtemp(&template) else { throw StoreError.io("mkdtemp", "/tmp") }
        path = String(cString: made)
    }

    func remove() { try? FileSystem().removeTree(path) }
}

let silentLogger = Logger(label: "certstore-tests", factory: { _ in SwiftLogNoOpLogHandler() })

/// A store rooted in a fresh temporary directory; call `remove()` (in a `defer`) when done.
struct StoreFixture {
    let directory: TemporaryDirectory
    let root: String
    let store: Store

    init(keepVersions: Int = 5, faults: FileSystem.FaultInjector? = nil) throws {
        directory = try TemporaryDirectory()
        root = directory.path + "/state"
        store = Store(root: root, keepVersions: keepVersions, logger: silentLogger, fileSystem: FileSystem(faults: faults))
    }

    func remove() { directory.remove() }
}

func readText(_ path: String) -> String? {
    (try? FileSystem().readFile(path)).flatMap { $0 }.map { String(decoding: $0, as: UTF8.self) }
}

func fileMode(_ path: String) -> mode_t? {
    var info = stat()
    guard lstat(path, &info) == 0 else { return nil }
    return info.st_mode & 0o7777
}

func symlinkTarget(_ path: String) -> String? {
    try? FileSystem().readSymlink(path)
}

func directoryEntries(_ path: String) -> [String] {
    ((try? FileSystem().list(path)) ?? nil)?.sorted() ?? []
}
