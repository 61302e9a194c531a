import Crypto
import Foundation
import SwiftASN1
import Testing
import X509
import _CryptoExtras

@testable import InternalCA

/// A deterministic generator (SplitMix64) so serials are reproducible.
struct SeededGenerator: RandomNumberGenerator {
    var state: UInt64
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

/// A fresh directory under /tmp, removed by `remove()`.
struct ScratchDirectory {
    let path: String
    init() throws {
        path = "/tmp/certkeeper-tests/internal-ca-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    }
    func remove() { try? FileManager.default.removeItem(atPath: path) }
}

func permissions(_ path: String) throws -> Int {
    (try FileManager.default.attributesOfItem(atPath: path)[.posixPermissions] as? NSNumber)?.intValue ?? -1
}

/// 2026-03-01T00:00:00Z: every test's "now".
let fixedNow = Date(timeIntervalSince1970: 1_772_323_200)

@Suite("Internal CA: root and leaf certificates")
struct InternalCATests {
    static func makeCA(seed: UInt64 = 1, lifetime: TimeInterval = 3650 * 86_400) throws -> InternalCA {
        var generator = SeededGenerator(state: seed)
        return try InternalCA.generate(name: "test internal CA", lifetime: lifetime, now: fixedNow, generator: &generator)
    }

    static func leaf(_ ca: InternalCA, names: [String], lifetime: TimeInterval = 7 * 86_400, key: Certificate.PrivateKey? = nil, now: Date = fixedNow) throws(InternalCAError) -> IssuedLeaf {
        var generator = SeededGenerator(state: 42)
        let key = key ?? Certificate.PrivateKey(P256.Signing.PrivateKey())
        return try ca.issue(LeafRequest(names: names, publicKey: key.publicKey, lifetime: lifetime), now: now, generator: &generator)
    }

    @Test("the root is created once in the state directory, with 0600 for the key and 0644 for the certificate, and reused")
    func rootCreatedOnceAndReused() throws {
        let scratch = try ScratchDirectory()
        defer { scratch.remove() }
        let directory = InternalCADirectory(stateDirectory: scratch.path)
        #expect(directory.path == scratch.path + "/internal-ca")
        #expect(try directory.load() == nil)
        #expect(try directory.loadRoot() == nil)

        var generator = SeededGenerator(state: 7)
        let first = try directory.loadOrCreate(name: "test internal CA", lifetime: 3650 * 86_400, now: fixedNow, generator: &generator)
        #expect(first.created)
        #expect(try permissions(directory.keyPath) == 0o600)
        #expect(try permissions(directory.certificatePath) == 0o644)
        #expect(try String(contentsOfFile: directory.certificatePath, encoding: .utf8) == first.ca.root.pem)

        let second = try directory.loadOrCreate(name: "another name", lifetime: 86_400, now: fixedNow.addingTimeInterval(3600), generator: &generator)
        #expect(!second.created)
        #expect(second.ca.root.fingerprint == first.ca.root.fingerprint)
        #expect(try directory.loadRoot()?.fingerprint == first.ca.root.fingerprint)
        // Only the two files: no leftover temporaries.
        #expect(try FileManager.default.contentsOfDirectory(atPath: directory.path).sorted() == ["root.key", "root.pem"])
    }

    @Test("the root is a P-256 CA, self-signed, valid for its lifetime from one hour before creation")
    func rootShape() throws {
        let ca = try Self.makeCA(lifetime: 3650 * 86_400)
        let root = ca.root.certificate
        #expect(root.issuer == root.subject)
        #expect(root.publicKey.isValidSignature(root.signature, for: root))
        #expect(P256.Signing.PublicKey(root.publicKey) != nil)
        #expect(try root.extensions.basicConstraints == .isCertificateAuthority(maxPathLength: 0))
        #expect(try root.extensions.keyUsage == KeyUsage(keyCertSign: true, cRLSign: true))
        #expect(root.notValidBefore == fixedNow.addingTimeInterval(-3600))
        #expect(root.notValidAfter == fixedNow.addingTimeInterval(3650 * 86_400))
        #expect(root.subject.description.hasPrefix("CN=test internal CA "))
        #expect(ca.root.fingerprint.split(separator: ":").count == 32)
        #expect(ca.root.fingerprintHex.count == 64)
    }

    @Test("a leaf carries DNS and IP SANs, serverAuth, key identifiers, a backdated 7-day validity, and verifies against the root")
    func leafShapeAndChain() async throws {
        let ca = try Self.makeCA()
        let issued = try Self.leaf(ca, names: ["localhost", "127.0.0.1", "::1", "*.dev.example"])
        let leaf = issued.certificate
        let sans = try #require(try leaf.extensions.subjectAlternativeNames)
        #expect(Array(sans) == [
            .dnsName("localhost"),
            .ipAddress(ASN1OctetString(contentBytes: [127, 0, 0, 1])),
            .ipAddress(ASN1OctetString(contentBytes: ArraySlice([UInt8](repeating: 0, count: 15) + [1]))),
            .dnsName("*.dev.example"),
        ])
        #expect(leaf.subject.description == "CN=localhost")
        #expect(leaf.issuer == ca.root.certificate.subject)
        #expect(try leaf.extensions.extendedKeyUsage == ExtendedKeyUsage([.serverAuth]))
        #expect(try leaf.extensions.basicConstraints == .notCertificateAuthority)
        #expect(try leaf.extensions.keyUsage == KeyUsage(digitalSignature: true))
        #expect(try leaf.extensions.authorityKeyIdentifier?.keyIdentifier == ca.root.certificate.extensions.subjectKeyIdentifier?.keyIdentifier)
        #expect(try leaf.extensions.subjectKeyIdentifier != nil)
        #expect(leaf.notValidBefore == fixedNow.addingTimeInterval(-InternalCA.backdate))
        #expect(leaf.notValidAfter == fixedNow.addingTimeInterval(7 * 86_400))
        #expect(issued.chainPEM == ca.root.pem)

        for (hostname, ip) in [("localhost", nil), (nil, "127.0.0.1"), (nil, "::1"), ("api.dev.example", nil)] as [(String?, String?)] {
            var verifier = Verifier(rootCertificates: CertificateStore([ca.root.certificate])) {
                RFC5280Policy(fixedValidationTime: fixedNow)
                ServerIdentityPolicy(serverHostname: hostname, serverIP: ip)
            }
            let result = await verifier.validate(leaf: leaf, intermediates: CertificateStore())
            guard case .validCertificate(let chain) = result else {
                Issue.record("\(hostname ?? ip ?? "?") does not verify: \(result)")
                continue
            }
            #expect(chain.last == ca.root.certificate)
        }
        // Another root does not vouch for it, and the leaf is not valid before its start.
        let other = try Self.makeCA(seed: 2)
        var stranger = Verifier(rootCertificates: CertificateStore([other.root.certificate])) { RFC5280Policy(fixedValidationTime: fixedNow) }
        guard case .couldNotValidate = await stranger.validate(leaf: leaf, intermediates: CertificateStore()) else {
            Issue.record("a leaf of one internal CA verified against another root")
            return
        }
        var early = Verifier(rootCertificates: CertificateStore([ca.root.certificate])) { RFC5280Policy(fixedValidationTime: fixedNow.addingTimeInterval(-3600)) }
        guard case .couldNotValidate = await early.validate(leaf: leaf, intermediates: CertificateStore()) else {
            Issue.record("the leaf verified an hour before its notBefore")
            return
        }
    }

    @Test("serials are 128 random bits from the injected generator: reproducible with one seed, different with another")
    func serials() throws {
        let ca = try Self.makeCA()
        var first = SeededGenerator(state: 99), again = SeededGenerator(state: 99), other = SeededGenerator(state: 100)
        let key = Certificate.PrivateKey(P256.Signing.PrivateKey()).publicKey
        let request = LeafRequest(names: ["localhost"], publicKey: key, lifetime: 3600)
        let a = try ca.issue(request, now: fixedNow, generator: &first).certificate.serialNumber
        let b = try ca.issue(request, now: fixedNow, generator: &again).certificate.serialNumber
        let c = try ca.issue(request, now: fixedNow, generator: &other).certificate.serialNumber
        #expect(a == b)
        #expect(a != c)
        // 16 random bytes, plus DER's 0x00 when the top bit is set.
        let magnitude = a.bytes.drop(while: { $0 == 0 })
        #expect((15...16).contains(magnitude.count), "\(Array(a.bytes))")
        #expect(a.bytes.first.map { $0 & 0x80 == 0 } == true, "serials must be positive")
    }

    @Test("a leaf never outlives the root, and an expired root refuses to sign")
    func rootBoundsLeaf() throws {
        let ca = try Self.makeCA(lifetime: 2 * 86_400)
        let capped = try Self.leaf(ca, names: ["localhost"], lifetime: 7 * 86_400)
        #expect(capped.certificate.notValidAfter == ca.root.certificate.notValidAfter)
        #expect(throws: InternalCAError.self) { try Self.leaf(ca, names: ["localhost"], now: fixedNow.addingTimeInterval(3 * 86_400)) }
        do {
            _ = try Self.leaf(ca, names: ["localhost"], now: fixedNow.addingTimeInterval(3 * 86_400))
        } catch {
            #expect(error.code == .rootExpired)
            #expect(error.description.contains("expired on"))
        }
    }

    @Test("requests without names or lifetime are refused")
    func invalidRequests() throws {
        let ca = try Self.makeCA()
        do {
            _ = try Self.leaf(ca, names: [])
            Issue.record("a leaf without names was signed")
        } catch { #expect(error.code == .invalidRequest) }
        do {
            _ = try Self.leaf(ca, names: ["localhost"], lifetime: 0)
            Issue.record("a leaf without lifetime was signed")
        } catch { #expect(error.code == .invalidRequest) }
    }

    @Test("a first name longer than a common name allows leaves the subject empty and marks the SAN critical")
    func longFirstName() throws {
        let ca = try Self.makeCA()
        let long = String(repeating: "a", count: 60) + ".example.internal"
        let issued = try Self.leaf(ca, names: [long])
        #expect(issued.certificate.subject == DistinguishedName())
        let san = try #require(issued.certificate.extensions.first(where: { $0.oid == .X509ExtensionID.subjectAlternativeName }))
        #expect(san.critical)
    }

    @Test("an RSA leaf key also gets keyEncipherment")
    func rsaLeaf() throws {
        let ca = try Self.makeCA()
        let key = Certificate.PrivateKey(try _RSA.Signing.PrivateKey(keySize: .bits2048))
        let issued = try Self.leaf(ca, names: ["localhost"], key: key)
        #expect(try issued.certificate.extensions.keyUsage == KeyUsage(digitalSignature: true, keyEncipherment: true))
    }

    @Test("a root key readable by others, a missing key, a key of another root are refused; an interrupted creation is redone")
    func loadingProblems() throws {
        let scratch = try ScratchDirectory()
        defer { scratch.remove() }
        let directory = InternalCADirectory(stateDirectory: scratch.path)
        var generator = SeededGenerator(state: 3)
        let created = try directory.loadOrCreate(name: "t", lifetime: 86_400 * 30, now: fixedNow, generator: &generator).ca

        chmod(directory.keyPath, 0o644)
        do {
            _ = try directory.load()
            Issue.record("a world-readable root key was accepted")
        } catch { #expect(error.code == .insecurePermissions) }
        chmod(directory.keyPath, 0o600)

        let keyText = try String(contentsOfFile: directory.keyPath, encoding: .utf8)
        let other = try Self.makeCA(seed: 5)
        try other.keyPEM.write(toFile: directory.keyPath, atomically: true, encoding: .utf8)
        chmod(directory.keyPath, 0o600)
        do {
            _ = try directory.load()
            Issue.record("a key of another root was accepted")
        } catch { #expect(error.code == .keyMismatch) }

        unlink(directory.keyPath)
        do {
            _ = try directory.loadOrCreate(name: "t", lifetime: 86_400, now: fixedNow, generator: &generator)
            Issue.record("a root without its key was replaced silently")
        } catch {
            #expect(error.code == .missing)
            #expect(error.description.contains("move"))
        }

        // A crash between the key and the certificate leaves only a key: the next call starts over.
        try keyText.write(toFile: directory.keyPath, atomically: true, encoding: .utf8)
        chmod(directory.keyPath, 0o600)
        unlink(directory.certificatePath)
        let redone = try directory.loadOrCreate(name: "t", lifetime: 86_400, now: fixedNow, generator: &generator)
        #expect(redone.created)
        #expect(redone.ca.root.fingerprint != created.root.fingerprint)
    }
}
