import Crypto
import Foundation
import SwiftASN1
import Testing
import X509

@testable import CertStore

@Suite("BundleVerifier")
struct BundleVerifierTests {
    let verifier = BundleVerifier()

    /// Runs `verify` and returns the error it threw, failing the test when it did not throw.
    func verificationError(
        _ bundle: CertificateBundle, expected: [String] = ["example.com"], now: Date = testNow,
        sourceLocation: SourceLocation = #_sourceLocation
    ) -> VerificationError? {
        do {
            _ = try verifier.verify(bundle, expectedDomains: expected, now: now)
            Issue.record("verification passed but should have failed", sourceLocation: sourceLocation)
            return nil
        } catch {
            #expect(!error.description.contains("\n"), "error text must be one line", sourceLocation: sourceLocation)
            return error
        }
    }

    @Test func goodBundlePassesAndFactsMatchIndependentComputation() throws {
        let chain = try TestChain(dnsNames: ["example.com", "www.example.com"])
        let verified = try verifier.verify(try chain.bundle, expectedDomains: ["example.com", "WWW.example.com"], now: testNow)
        #expect(verified.leaf == chain.leaf)
        #expect(verified.chain == [chain.intermediate.certificate])
        #expect(verified.domains == ["example.com", "www.example.com"])
        #expect(verified.keyType == "ec256")
        let digest = SHA256.hash(data: try der(chain.leaf)).map { String(format: "%02x", $0) }.joined()
        #expect(verified.sha256Hex == digest)
        #expect(verified.leafDER == (try der(chain.leaf)))
    }

    @Test func fullChainWithRootPasses() throws {
        let chain = try TestChain()
        var bundle = try chain.bundle
        bundle.chainPEM += try pem(chain.root.certificate)
        let verified = try verifier.verify(bundle, expectedDomains: ["www.example.com"], now: testNow)
        #expect(verified.chain.count == 2)
    }

    /// The certID example of RFC 9773 section 4.1: AKI 69:88:5B:… and serial 0x87654321 give
    /// `aYhba4dGQEHhs3uEe6CuLN4ByNQ.AIdlQyE` (note the DER sign byte 00 in the serial part).
    @Test func ariCertIDAndSerialMatchRFC9773Example() throws {
        let aki: [UInt8] = [0x69, 0x88, 0x5B, 0x6B, 0x87, 0x46, 0x40, 0x41, 0xE1, 0xB3, 0x7B, 0x84, 0x7B, 0xA0, 0xAE, 0x2C, 0xDE, 0x01, 0xC8, 0xD4]
        let root = try TestCA.root()
        let intermediate = try root.intermediate(keyIdentifier: aki)
        let key = TestKey.p256()
        let leaf = try intermediate.leaf(dnsNames: ["example.com"], key: key, serial: Certificate.SerialNumber(bytes: [0x87, 0x65, 0x43, 0x21]))
        let bundle = CertificateBundle(certificatePEM: try pem(leaf), chainPEM: try pem(intermediate.certificate), privateKeyPEM: key.pem)
        let verified = try verifier.verify(bundle, expectedDomains: ["example.com"], now: testNow)
        #expect(verified.ariCertID == "aYhba4dGQEHhs3uEe6CuLN4ByNQ.AIdlQyE")
        #expect(verified.serialHex == "87654321")
    }

    @Test func noAuthorityKeyIdentifierMeansNoARICertID() throws {
        let root = try TestCA.root()
        let intermediate = try root.intermediate()
        let key = TestKey.p256()
        let leaf = try intermediate.leaf(dnsNames: ["example.com"], key: key, includeAKI: false)
        let bundle = CertificateBundle(certificatePEM: try pem(leaf), chainPEM: try pem(intermediate.certificate), privateKeyPEM: key.pem)
        #expect(try verifier.verify(bundle, expectedDomains: [], now: testNow).ariCertID == nil)
    }

    @Test func keyMismatchIsRefused() throws {
        let chain = try TestChain()
        var bundle = try chain.bundle
        bundle.privateKeyPEM = TestKey.p256().pem
        guard case .keyMismatch(let certificateKey, let privateKey) = verificationError(bundle) else {
            Issue.record("expected keyMismatch")
            return
        }
        #expect(certificateKey != privateKey)
        #expect(certificateKey.hasPrefix("ec256"))
    }

    @Test func keyOfAnotherTypeIsAMismatch() throws {
        let chain = try TestChain()
        var bundle = try chain.bundle
        bundle.privateKeyPEM = TestKey.p384().pem
        guard case .keyMismatch(_, let privateKey) = verificationError(bundle) else {
            Issue.record("expected keyMismatch")
            return
        }
        #expect(privateKey.hasPrefix("ec384"))
    }

    @Test func wrongIntermediateWithSameNameBreaksChain() throws {
        let chain = try TestChain()
        // Same subject DN (so the name check passes), different key: only the signature check catches it.
        let impostor = try TestCA.root().intermediate()
        #expect(impostor.certificate.subject == chain.intermediate.certificate.subject)
        var bundle = try chain.bundle
        bundle.chainPEM = try pem(impostor.certificate)
        guard case .chainBroken(let index, let reason) = verificationError(bundle) else {
            Issue.record("expected chainBroken")
            return
        }
        #expect(index == 0)
        #expect(reason.contains("signature"))
    }

    @Test func intermediateWithOtherNameBreaksChain() throws {
        let chain = try TestChain()
        let other = try TestCA.root().intermediate(commonName: "Other Intermediate")
        var bundle = try chain.bundle
        bundle.chainPEM = try pem(other.certificate)
        guard case .chainBroken(0, let reason) = verificationError(bundle) else {
            Issue.record("expected chainBroken at 0")
            return
        }
        #expect(reason.contains("Other Intermediate"))
    }

    @Test func chainInWrongOrderBreaksAtTheRightIndex() throws {
        let chain = try TestChain()
        var bundle = try chain.bundle
        // leaf, root, intermediate: the leaf's issuer is not the root.
        bundle.chainPEM = try pem(chain.root.certificate) + pem(chain.intermediate.certificate)
        guard case .chainBroken(0, _) = verificationError(bundle) else {
            Issue.record("expected chainBroken at 0")
            return
        }
        // leaf, intermediate, unrelated root: broken at 1.
        bundle.chainPEM = try pem(chain.intermediate.certificate) + pem(TestCA.root(commonName: "Unrelated Root").certificate)
        guard case .chainBroken(1, _) = verificationError(bundle) else {
            Issue.record("expected chainBroken at 1")
            return
        }
    }

    @Test func emptyChainNeedsASelfSignedLeaf() throws {
        let chain = try TestChain()
        var bundle = try chain.bundle
        bundle.chainPEM = ""
        guard case .emptyChain(let issuer) = verificationError(bundle) else {
            Issue.record("expected emptyChain")
            return
        }
        #expect(issuer.contains("Test Intermediate"))

        let key = TestKey.p256()
        let selfSigned = CertificateBundle(certificatePEM: try pem(selfSignedLeaf(dnsNames: ["localhost"], key: key)), chainPEM: "", privateKeyPEM: key.pem)
        let verified = try verifier.verify(selfSigned, expectedDomains: ["localhost"], now: testNow)
        #expect(verified.chain.isEmpty)
    }

    @Test func namesMustBeCovered() throws {
        let chain = try TestChain(dnsNames: ["example.com", "www.example.com"])
        guard case .namesNotCovered(let missing, let names) = verificationError(try chain.bundle, expected: ["example.com", "api.example.com", "example.org"]) else {
            Issue.record("expected namesNotCovered")
            return
        }
        #expect(missing == ["api.example.com", "example.org"])
        #expect(names == ["example.com", "www.example.com"])
    }

    @Test func wildcardRules() throws {
        let root = try TestCA.root()
        let intermediate = try root.intermediate()
        let key = TestKey.p256()
        let wildcard = CertificateBundle(
            certificatePEM: try pem(intermediate.leaf(dnsNames: ["*.example.com"], key: key)),
            chainPEM: try pem(intermediate.certificate), privateKeyPEM: key.pem)
        func covers(_ bundle: CertificateBundle, _ name: String) -> Bool {
            (try? verifier.verify(bundle, expectedDomains: [name], now: testNow)) != nil
        }
        #expect(covers(wildcard, "a.example.com"))
        #expect(covers(wildcard, "A.EXAMPLE.com"))
        #expect(covers(wildcard, "a.example.com."))
        #expect(covers(wildcard, "*.example.com"))        // the literal wildcard SAN
        #expect(covers(wildcard, "*.EXAMPLE.com"))
        #expect(!covers(wildcard, "example.com"))         // no label for the star
        #expect(!covers(wildcard, "a.b.example.com"))     // exactly one extra label
        #expect(!covers(wildcard, ".example.com"))        // empty label
        #expect(!covers(wildcard, "a.example.org"))

        let plain = CertificateBundle(
            certificatePEM: try pem(intermediate.leaf(dnsNames: ["a.example.com", "example.com"], key: key)),
            chainPEM: try pem(intermediate.certificate), privateKeyPEM: key.pem)
        #expect(!covers(plain, "*.example.com"))          // a configured wildcard needs the wildcard SAN
        #expect(covers(plain, "a.example.com"))
    }

    @Test func ipAddressIdentifiersNeedIPAddressSANs() throws {
        let root = try TestCA.root()
        let intermediate = try root.intermediate()
        let key = TestKey.p256()
        let leaf = try intermediate.leaf(
            dnsNames: ["example.com"], ipAddresses: [[192, 0, 2, 1], [0x20, 0x01, 0x0d, 0xb8] + Array(repeating: 0, count: 11) + [1]], key: key)
        let bundle = CertificateBundle(certificatePEM: try pem(leaf), chainPEM: try pem(intermediate.certificate), privateKeyPEM: key.pem)
        let verified = try verifier.verify(bundle, expectedDomains: ["192.0.2.1", "2001:db8::1", "example.com"], now: testNow)
        #expect(verified.domains == ["example.com", "192.0.2.1", "2001:db8::1"])
        guard case .namesNotCovered(let missing, _) = verificationError(bundle, expected: ["192.0.2.2"]) else {
            Issue.record("expected namesNotCovered")
            return
        }
        #expect(missing == ["192.0.2.2"])
    }

    @Test func expiredIsRefusedButTheLastSecondIsValid() throws {
        let root = try TestCA.root()
        let intermediate = try root.intermediate()
        let key = TestKey.p256()
        let notAfter = testNow - 10
        let leaf = try intermediate.leaf(dnsNames: ["example.com"], key: key, notBefore: testNow - 30 * day, notAfter: notAfter)
        let bundle = CertificateBundle(certificatePEM: try pem(leaf), chainPEM: try pem(intermediate.certificate), privateKeyPEM: key.pem)
        guard case .expired(let reported, let now) = verificationError(bundle) else {
            Issue.record("expected expired")
            return
        }
        #expect(reported == notAfter)
        #expect(now == testNow)
        _ = try verifier.verify(bundle, expectedDomains: ["example.com"], now: notAfter)
    }

    @Test func notYetValidHonoursClockSkewOnNotBeforeOnly() throws {
        let root = try TestCA.root()
        let intermediate = try root.intermediate()
        let key = TestKey.p256()
        let future = try intermediate.leaf(dnsNames: ["example.com"], key: key, notBefore: testNow + 600, notAfter: testNow + 90 * day)
        let bundle = CertificateBundle(certificatePEM: try pem(future), chainPEM: try pem(intermediate.certificate), privateKeyPEM: key.pem)
        guard case .notYetValid(let notBefore, _) = verificationError(bundle) else {
            Issue.record("expected notYetValid")
            return
        }
        #expect(notBefore == testNow + 600)
        // Within the default 300 s skew: accepted.
        let slightlyAhead = try intermediate.leaf(dnsNames: ["example.com"], key: key, notBefore: testNow + 240, notAfter: testNow + 90 * day)
        _ = try verifier.verify(
            CertificateBundle(certificatePEM: try pem(slightlyAhead), chainPEM: try pem(intermediate.certificate), privateKeyPEM: key.pem),
            expectedDomains: ["example.com"], now: testNow)
        // With no skew allowed the same certificate is refused.
        #expect(throws: VerificationError.self) {
            try BundleVerifier(clockSkew: 0).verify(
                CertificateBundle(certificatePEM: try pem(slightlyAhead), chainPEM: try pem(intermediate.certificate), privateKeyPEM: key.pem),
                expectedDomains: ["example.com"], now: testNow)
        }
    }

    @Test func truncatedPEMIsRefused() throws {
        let chain = try TestChain()
        let good = try chain.bundle

        var truncatedLeaf = good
        truncatedLeaf.certificatePEM = String(good.certificatePEM.prefix(good.certificatePEM.count / 2))
        guard case .unparseableCertificate(let reason) = verificationError(truncatedLeaf) else {
            Issue.record("expected unparseableCertificate for truncated leaf")
            return
        }
        #expect(reason.contains("leaf"))
        #expect(reason.contains("truncated"))

        var truncatedChain = good
        truncatedChain.chainPEM = String(good.chainPEM.dropLast(30))
        guard case .unparseableCertificate(let chainReason) = verificationError(truncatedChain) else {
            Issue.record("expected unparseableCertificate for truncated chain")
            return
        }
        #expect(chainReason.contains("chain"))

        var truncatedKey = good
        truncatedKey.privateKeyPEM = String(good.privateKeyPEM.prefix(40))
        guard case .unparseablePrivateKey = verificationError(truncatedKey) else {
            Issue.record("expected unparseablePrivateKey")
            return
        }

        // A full chain cut in the middle of its second certificate is not mistaken for a leaf-only chain.
        let fullchain = good.fullchainPEM
        #expect(throws: VerificationError.self) {
            try CertificateBundle(fullchainPEM: String(fullchain.prefix(fullchain.count - 100)), privateKeyPEM: good.privateKeyPEM)
        }
    }

    @Test func garbageIsRefused() throws {
        let chain = try TestChain()
        let good = try chain.bundle

        var noPEM = good
        noPEM.certificatePEM = "hello world\n"
        guard case .unparseableCertificate = verificationError(noPEM) else {
            Issue.record("expected unparseableCertificate for text without PEM")
            return
        }

        var badBase64 = good
        badBase64.certificatePEM = "-----BEGIN CERTIFICATE-----\n!!!not base64!!!\n-----END CERTIFICATE-----\n"
        guard case .unparseableCertificate = verificationError(badBase64) else {
            Issue.record("expected unparseableCertificate for bad base64")
            return
        }

        var notACertificate = good
        notACertificate.certificatePEM = "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"
        guard case .unparseableCertificate = verificationError(notACertificate) else {
            Issue.record("expected unparseableCertificate for bad DER")
            return
        }

        var keyAsCertificate = good
        keyAsCertificate.certificatePEM = good.privateKeyPEM
        guard case .unparseableCertificate(let reason) = verificationError(keyAsCertificate) else {
            Issue.record("expected unparseableCertificate for a key in the certificate slot")
            return
        }
        #expect(reason.contains("PRIVATE KEY"))

        var garbageKey = good
        garbageKey.privateKeyPEM = "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"
        guard case .unparseablePrivateKey = verificationError(garbageKey) else {
            Issue.record("expected unparseablePrivateKey")
            return
        }

        var encryptedKey = good
        encryptedKey.privateKeyPEM = "-----BEGIN ENCRYPTED PRIVATE KEY-----\nAAAA\n-----END ENCRYPTED PRIVATE KEY-----\n"
        guard case .unparseablePrivateKey(let keyReason) = verificationError(encryptedKey) else {
            Issue.record("expected unparseablePrivateKey for encrypted key")
            return
        }
        #expect(keyReason.contains("encrypted"))

        var twoLeaves = good
        twoLeaves.certificatePEM = good.certificatePEM + good.certificatePEM
        guard case .unparseableCertificate = verificationError(twoLeaves) else {
            Issue.record("expected unparseableCertificate for two leaves")
            return
        }
    }

    @Test(arguments: ["sec1", "sec1+params", "pkcs8-p384", "rsa-pkcs1", "rsa-pkcs8"])
    func privateKeyFormats(format: String) throws {
        let key: TestKey
        let expectedType: String
        switch format {
        case "sec1": (key, expectedType) = (try TestKey.p256SEC1(), "ec256")
        case "sec1+params": (key, expectedType) = (try TestKey.p256SEC1(withParameters: true), "ec256")
        case "pkcs8-p384": (key, expectedType) = (TestKey.p384(), "ec384")
        case "rsa-pkcs1": (key, expectedType) = (try TestKey.rsa2048(), "rsa2048")
        default: (key, expectedType) = (try TestKey.rsa2048(pkcs8: true), "rsa2048")
        }
        let chain = try TestChain(leafKey: key)
        let verified = try chain.verified()
        #expect(verified.keyType == expectedType)
        #expect(verified.privateKey.publicKey == chain.leaf.publicKey)
    }

    @Test func fullchainSplitAndJoin() throws {
        let chain = try TestChain()
        let leafPEM = try pem(chain.leaf), intermediatePEM = try pem(chain.intermediate.certificate), rootPEM = try pem(chain.root.certificate)
        // CRLF line ends and a blank line between blocks, as some servers send.
        let received = (leafPEM + "\n" + intermediatePEM + rootPEM).replacingOccurrences(of: "\n", with: "\r\n")
        let bundle = try CertificateBundle(fullchainPEM: received, privateKeyPEM: chain.leafKey.pem)
        #expect(bundle.certificatePEM == leafPEM)
        #expect(bundle.chainPEM == intermediatePEM + rootPEM)
        #expect(bundle.fullchainPEM == leafPEM + intermediatePEM + rootPEM)
        #expect(bundle.bundlePEM == leafPEM + intermediatePEM + rootPEM + chain.leafKey.pem.withTrailingNewline)
        #expect(!bundle.bundlePEM.contains("\n\n"), "HAProxy's admin socket payload ends at the first empty line")
        _ = try BundleVerifier().verify(bundle, expectedDomains: ["example.com"], now: testNow)

        #expect(throws: VerificationError.self) { try CertificateBundle(fullchainPEM: "", privateKeyPEM: chain.leafKey.pem) }
        #expect(throws: VerificationError.self) { try CertificateBundle(fullchainPEM: chain.leafKey.pem, privateKeyPEM: chain.leafKey.pem) }
    }

    @Test func bundleDescriptionHidesTheKey() throws {
        let chain = try TestChain()
        let bundle = try chain.bundle
        #expect(!"\(bundle)".contains("PRIVATE KEY"))
        #expect(!String(reflecting: bundle).contains("PRIVATE KEY"))
    }

    @Test func errorDescriptionsAreOneLineWithContext() {
        let errors: [VerificationError] = [
            .unparseableCertificate(reason: "leaf: bad\nthing"),
            .chainBroken(index: 1, reason: "x"),
            .namesNotCovered(missing: ["a.example.com"], certificateNames: ["b.example.com"]),
            .expired(notAfter: testNow, now: testNow + 1),
        ]
        for error in errors { #expect(!error.description.contains("\n")) }
        #expect(errors[2].description.contains("a.example.com"))
        #expect(errors[2].description.contains("b.example.com"))
        #expect(errors[3].description.contains("2026-01-01T00:00:00Z"))
    }
}
