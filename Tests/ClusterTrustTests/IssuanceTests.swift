import ClusterTrust
import CertkeeperTestSupport
import Crypto
import Foundation
import SwiftASN1
import Testing
import X509

@Suite("Cluster CA and node certificates")
struct IssuanceTests {
    static let now = Date()

    @Test("the CA is a pathlen-0 P-256 CA for ten years, written 0600/0644, and never overwritten")
    func clusterCA() throws {
        let directory = try TemporaryDirectory(name: "cluster-ca")
        defer { directory.remove() }
        let caDirectory = directory.appending("state/cluster-ca")
        let ca = try ClusterCA.create(clusterName: "prod", directory: caDirectory, now: Self.now)
        #expect(ca.clusterName == "prod")
        #expect(ca.certificate.subject.description.contains("certkeeper cluster CA prod"))
        #expect(ca.certificate.issuer == ca.certificate.subject)
        #expect(try ca.certificate.extensions.basicConstraints == .isCertificateAuthority(maxPathLength: 0))
        let usage = try #require(try ca.certificate.extensions.keyUsage)
        #expect(usage.keyCertSign && usage.cRLSign && !usage.digitalSignature)
        let years = ca.certificate.notValidAfter.timeIntervalSince(Self.now) / (365 * 86400)
        #expect(years > 9.9 && years < 10.1)
        #expect(P256.Signing.PublicKey(ca.certificate.publicKey) != nil)
        #expect(ca.fingerprint.split(separator: ":").count == 32)

        #expect(mode(caDirectory) == 0o700)
        #expect(mode(caDirectory + "/ca.key") == 0o600)
        #expect(mode(caDirectory + "/ca.pem") == 0o644)
        let keyBefore = try String(contentsOfFile: caDirectory + "/ca.key", encoding: .utf8)

        // A second init must not touch the first CA.
        #expect(throws: ClusterTrustError.self) { try ClusterCA.create(clusterName: "other", directory: caDirectory) }
        do {
            _ = try ClusterCA.create(clusterName: "other", directory: caDirectory)
        } catch {
            #expect(error.code == .caExists)
            #expect(error.description.contains(caDirectory))
        }
        #expect(try String(contentsOfFile: caDirectory + "/ca.key", encoding: .utf8) == keyBefore)
        let reloaded = try ClusterCA.load(directory: caDirectory)
        #expect(reloaded.fingerprint == ca.fingerprint)
        #expect(reloaded.clusterName == "prod")

        // Half a CA (only the key) also blocks init.
        let half = directory.appending("half")
        try FileManager.default.createDirectory(atPath: half, withIntermediateDirectories: true)
        _ = try directory.write("junk", to: "half/ca.key")
        #expect(code { _ = try ClusterCA.create(clusterName: "x", directory: half) } == .caExists)
        #expect(!FileManager.default.fileExists(atPath: half + "/ca.pem"))
    }

    @Test("a node certificate names the node and its addresses, with clientAuth and serverAuth, for two years")
    func nodeCertificate() throws {
        let ca = try ClusterCA.generate(clusterName: "prod", now: Self.now)
        let addresses = try ["10.0.0.2", "fd00::2", "Node2.Internal", "10.0.0.2"].map { try NodeAddress(parsing: $0) }
        let identity = try ca.issueIdentity(nodeName: "node2", addresses: addresses, now: Self.now)
        let certificate = identity.certificate
        #expect(identity.nodeName == "node2")
        #expect(identity.clusterName == "prod")
        #expect(certificate.subject.description == "CN=node2")
        #expect(certificate.issuer == ca.certificate.subject)
        #expect(ca.certificate.publicKey.isValidSignature(certificate.signature, for: certificate))
        let names = try #require(try certificate.extensions.subjectAlternativeNames)
        #expect(Array(names) == [
            .dnsName("node2"),
            .ipAddress(ASN1OctetString(contentBytes: [10, 0, 0, 2])),
            .ipAddress(ASN1OctetString(contentBytes: [0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2])),
            .dnsName("node2.internal"),
        ])
        #expect(identity.addresses == ["node2", "10.0.0.2", "fd00::2", "node2.internal"])
        let usages = try #require(try certificate.extensions.extendedKeyUsage)
        #expect(usages.contains(.serverAuth) && usages.contains(.clientAuth))
        #expect(try certificate.extensions.keyUsage?.digitalSignature == true)
        #expect(try certificate.extensions.basicConstraints == .notCertificateAuthority)
        let days = certificate.notValidAfter.timeIntervalSince(Self.now) / 86400
        #expect(days > 729 && days < 731)
        #expect(P256.Signing.PublicKey(certificate.publicKey) != nil)

        // Validity is configurable, and cut at the CA's own end.
        let short = try ca.issueIdentity(nodeName: "n", addresses: addresses, validity: 86400, now: Self.now)
        #expect(abs(short.notAfter.timeIntervalSince(Self.now) - 86400) < 5)
        let long = try ca.issueIdentity(nodeName: "n", addresses: addresses, validity: 40 * 365 * 86400, now: Self.now)
        #expect(long.notAfter == ca.certificate.notValidAfter)

        // A node name that is not a host name (underscore) stays out of the DNS SANs but is still the CN.
        let underscore = try ca.issueIdentity(nodeName: "node_3", addresses: addresses, now: Self.now)
        #expect(underscore.nodeName == "node_3")
        #expect(!underscore.addresses.contains("node_3"))
        // The description never shows the key.
        #expect(!String(describing: identity).contains("PRIVATE"))
        #expect(!String(reflecting: identity).contains("PRIVATE"))
        #expect(identity.pemRepresentation.contains("PRIVATE KEY"))
    }

    @Test("bad node names and addresses are refused with one clear line", arguments: [
        ("../etc", "10.0.0.1", ClusterTrustError.Code.invalidName),
        ("-node", "10.0.0.1", .invalidName),
        ("a/b", "10.0.0.1", .invalidName),
        ("", "10.0.0.1", .invalidName),
        (String(repeating: "n", count: 65), "10.0.0.1", .invalidName),
        ("node1", "10.0.0.256", .invalidAddress),
        ("node1", "host_name.example", .invalidAddress),
        ("node1", "-bad.example", .invalidAddress),
        ("node1", "node1.example.", .invalidAddress),
        ("node1", "", .invalidAddress),
        ("node1", "10.0.0.1:8443", .invalidAddress),
    ])
    func badInput(name: String, address: String, expected: ClusterTrustError.Code) throws {
        let ca = try ClusterCA.generate(clusterName: "prod")
        let error = code {
            let parsed = try NodeAddress(parsing: address)
            _ = try ca.issueIdentity(nodeName: name, addresses: [parsed])
        }
        #expect(error == expected)
        do {
            _ = try ca.issueIdentity(nodeName: name, addresses: [try NodeAddress(parsing: address)])
        } catch {
            #expect(!error.description.contains("\n"))
            #expect(error.description.hasPrefix(expected == .invalidName ? "node name:" : "--address:"))
        }
        #expect(code { _ = try ca.issueIdentity(nodeName: "ok", addresses: []) } == .invalidAddress)
        #expect(code { _ = try ClusterCA.generate(clusterName: "a b") } == .invalidName)
    }

    @Test("an identity file round-trips at 0600, and load refuses mismatched, foreign, expired, incomplete and exposed files")
    func identityFile() throws {
        let directory = try TemporaryDirectory(name: "identity")
        defer { directory.remove() }
        let ca = try ClusterCA.create(clusterName: "prod", directory: directory.appending("ca"), now: Self.now)
        let identity = try ca.issueIdentity(nodeName: "node1", addresses: [try NodeAddress(parsing: "127.0.0.1")], now: Self.now)
        let path = directory.appending("state/cluster/identity.pem")
        try identity.write(to: path, replacing: false)
        #expect(mode(path) == 0o600)
        #expect(mode(directory.appending("state/cluster")) == 0o700)
        let loaded = try ClusterIdentity.load(path: path, now: Self.now)
        #expect(loaded.fingerprint == identity.fingerprint)
        #expect(loaded.caFingerprint == ca.fingerprint)
        #expect(loaded.caCertificatePEM == ca.certificatePEM)
        #expect(loaded.nodeName == "node1")
        // Writing again without replacing is refused; replacing works.
        #expect(code { try identity.write(to: path, replacing: false) } == .identityExists)
        try identity.write(to: path, replacing: true)

        let text = try String(contentsOfFile: path, encoding: .utf8)
        let blocks = pemBlocks(text)
        #expect(blocks.count == 3)

        // Key that does not match the certificate.
        let otherKey = P256.Signing.PrivateKey().pemRepresentation
        let mismatched = try directory.write(blocks[0] + blocks[1] + otherKey, to: "mismatch.pem")
        #expect(code { _ = try ClusterIdentity.load(path: mismatched, requireOwnerOnly: false) } == .keyMismatch)

        // A node certificate from another cluster CA, bundled with this cluster's CA.
        let other = try ClusterCA.generate(clusterName: "prod").issueIdentity(nodeName: "node1", addresses: [try NodeAddress(parsing: "127.0.0.1")])
        let otherBlocks = pemBlocks(other.pemRepresentation)
        let foreign = try directory.write(otherBlocks[0] + blocks[1] + otherBlocks[2], to: "foreign.pem")
        #expect(code { _ = try ClusterIdentity.load(path: foreign, requireOwnerOnly: false) } == .notSignedByCA)

        // Expired and not yet valid (time is a parameter).
        #expect(code { _ = try ClusterIdentity.load(path: path, now: Self.now.addingTimeInterval(800 * 86400)) } == .expired)
        #expect(code { _ = try ClusterIdentity.load(path: path, now: Self.now.addingTimeInterval(-7200)) } == .expired)

        // Missing pieces, garbage, truncation.
        let noCA = try directory.write(blocks[0] + blocks[2], to: "noca.pem")
        #expect(code { _ = try ClusterIdentity.load(path: noCA, requireOwnerOnly: false) } == .malformed)
        let garbage = try directory.write("hello\n", to: "garbage.pem")
        #expect(code { _ = try ClusterIdentity.load(path: garbage, requireOwnerOnly: false) } == .malformed)
        let truncated = try directory.write(String(text.prefix(text.count - 40)), to: "truncated.pem")
        #expect(code { _ = try ClusterIdentity.load(path: truncated, requireOwnerOnly: false) } == .malformed)
        #expect(code { _ = try ClusterIdentity.load(path: directory.appending("nope.pem")) } == .identityMissing)

        // Readable by others: refused for an installed identity.
        chmod(path, 0o644)
        #expect(code { _ = try ClusterIdentity.load(path: path, now: Self.now) } == .insecurePermissions)
        #expect(try ClusterIdentity.load(path: path, now: Self.now, requireOwnerOnly: false).nodeName == "node1")
    }

    @Test("load refuses a node certificate signed by the cluster CA but without clientAuth")
    func missingClientAuth() throws {
        let directory = try TemporaryDirectory(name: "eku")
        defer { directory.remove() }
        let ca = try ClusterCA.create(clusterName: "prod", directory: directory.appending("ca"))
        let caKey = try P256.Signing.PrivateKey(pemRepresentation: String(contentsOfFile: directory.appending("ca/ca.key"), encoding: .utf8))
        let key = P256.Signing.PrivateKey()
        let certificate = try Certificate(
            version: .v3, serialNumber: .init(), publicKey: .init(key.publicKey),
            notValidBefore: Date().addingTimeInterval(-60), notValidAfter: Date().addingTimeInterval(86400),
            issuer: ca.certificate.subject, subject: try DistinguishedName { CommonName("node9") },
            signatureAlgorithm: .ecdsaWithSHA256,
            extensions: try Certificate.Extensions {
                Critical(KeyUsage(digitalSignature: true))
                try ExtendedKeyUsage([.serverAuth])
            },
            issuerPrivateKey: .init(caKey)
        )
        var serializer = DER.Serializer()
        try serializer.serialize(certificate)
        let pem = try PEMDocument(type: "CERTIFICATE", derBytes: serializer.serializedBytes).pemString + "\n"
            + ca.certificatePEM + key.pemRepresentation + "\n"
        let error = code { _ = try ClusterIdentity.parse(pem, source: "crafted.pem") }
        #expect(error == .missingUsage)
    }
}

/// The error code `body` throws, or `nil` when it does not throw a ``ClusterTrustError``.
func code(_ body: () throws -> Void) -> ClusterTrustError.Code? {
    do {
        try body()
        return nil
    } catch let error as ClusterTrustError {
        return error.code
    } catch {
        return nil
    }
}

func mode(_ path: String) -> mode_t? {
    var info = stat()
    return stat(path, &info) == 0 ? info.st_mode & 0o7777 : nil
}

/// The PEM blocks of `text`, each with its BEGIN and END lines.
func pemBlocks(_ text: String) -> [String] {
    var blocks: [String] = []
    var current: [Substring]?
    for line in text.split(separator: "\n") {
        if line.hasPrefix("-----BEGIN") { current = [line] } else if current != nil { current!.append(line) }
        if line.hasPrefix("-----END"), let lines = current {
            blocks.append(lines.joined(separator: "\n") + "\n")
            current = nil
        }
    }
    return blocks
}
