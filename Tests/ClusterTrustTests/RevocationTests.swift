import ClusterTrust
import CertkeeperTestSupport
import Foundation
import Testing
import X509

@Suite("Revoking nodes and rotating the cluster CA")
struct RevocationTests {
    static let address = [try! NodeAddress(parsing: "127.0.0.1")]

    @Test("a signed list verifies against its CA only; a changed byte, another CA or a broken rule is refused")
    func signAndVerify() throws {
        let ca = try ClusterCA.generate(clusterName: "prod")
        let other = try ClusterCA.generate(clusterName: "prod")
        let list = RevocationList(cluster: "prod", version: 0, issuedAt: Date(), revoked: []).revoking("n3", at: Date(), reason: "disk lost")
        #expect(list.version >= Int(Date().timeIntervalSince1970) - 5, "versions follow the clock")
        #expect(list.revoking("n4", at: Date(), reason: nil).version > list.version)
        let signed = try ca.sign(list)
        let verified = try signed.verified(by: [other.certificate, ca.certificate], source: "test")
        #expect(verified == list)
        #expect(verified.entry(for: "n3")?.reason == "disk lost")

        func refusal(_ signed: SignedRevocationList, _ anchors: [Certificate]) -> ClusterTrustError.Code? {
            do {
                _ = try signed.verified(by: anchors, source: "test")
                return nil
            } catch {
                return error.code
            }
        }
        #expect(refusal(signed, [other.certificate]) == .notSignedByCA, "another CA's trust accepted the list")
        // The same fingerprint claimed, another key's signature: refused.
        var forged = try other.sign(list.revoking("n1", at: Date(), reason: nil))
        forged.signer = ca.fingerprint
        #expect(refusal(forged, [ca.certificate]) == .notSignedByCA)
        // One changed byte in the list.
        var bytes = Array(Data(base64Encoded: signed.list)!)
        bytes[bytes.count / 2] ^= 0x01
        var tampered = signed
        tampered.list = Data(bytes).base64EncodedString()
        #expect(refusal(tampered, [ca.certificate]) == .notSignedByCA)
        #expect(refusal(SignedRevocationList(list: "%%%", signature: "", signer: ca.fingerprint), [ca.certificate]) == .malformed)
        // The CA signs nothing that breaks the rules, and a version far ahead of the clock (one no later list could
        // pass, say from a leaked key) is refused.
        let bad = RevocationList(cluster: "prod", version: 1, issuedAt: Date(), revoked: [RevokedNode(node: "../etc", revokedAt: Date())])
        #expect(throws: ClusterTrustError.self) { try ca.sign(bad) }
        let farAhead = try ca.sign(
            RevocationList(cluster: "prod", version: Int(Date().timeIntervalSince1970) + 1_000_000, issuedAt: Date(), revoked: []),
            now: Date().addingTimeInterval(2_000_000))
        #expect(refusal(farAhead, [ca.certificate]) == .malformed)
    }

    @Test("a revocation covers the node's certificates issued until then, not a replacement issued after it, nor other nodes")
    func revocationCoversByNameAndTime() throws {
        let ca = try ClusterCA.generate(clusterName: "prod")
        let old = try ca.issueIdentity(nodeName: "n3", addresses: Self.address)
        let neighbour = try ca.issueIdentity(nodeName: "n2", addresses: Self.address)
        let list = RevocationList(cluster: "prod", version: 0, issuedAt: Date(), revoked: []).revoking("n3", at: Date(), reason: nil)
        let revokedAt = try #require(list.entry(for: "n3")).revokedAt
        #expect(list.revocation(of: old.certificate)?.node == "n3")
        #expect(list.revocation(of: neighbour.certificate) == nil)
        // add-node after the revocation: the new certificate starts one second after it and is not covered.
        let replacement = try ca.issueIdentity(nodeName: "n3", addresses: Self.address, now: revokedAt.addingTimeInterval(1), startsAfter: revokedAt)
        #expect(replacement.certificate.notValidBefore > revokedAt)
        #expect(list.revocation(of: replacement.certificate) == nil)
    }

    @Test("credentials install a newer signed list from a peer, refuse an older or foreign one, and keep a revocation over a restored older file")
    func credentialsOfferAndReload() throws {
        let directory = try TemporaryDirectory(name: "credentials")
        defer { directory.remove() }
        let ca = try ClusterCA.generate(clusterName: "prod")
        let identityPath = directory.appending("cluster/identity.pem")
        try ca.issueIdentity(nodeName: "n1", addresses: Self.address).write(to: identityPath, replacing: false)
        let credentials = try ClusterCredentials(identityPath: identityPath, clusterDirectory: directory.appending("cluster"))
        let n3 = try ca.issueIdentity(nodeName: "n3", addresses: Self.address)
        #expect(credentials.refusal(of: n3.certificate) == nil)

        let first = RevocationList(cluster: "prod", version: 0, issuedAt: Date(), revoked: []).revoking("n3", at: Date(), reason: nil)
        let second = first.revoking("n4", at: Date(), reason: nil)
        let generation = credentials.current.generation
        #expect(credentials.offer(try ca.sign(first), source: "peer") == .installed(version: first.version, newlyRevoked: ["n3"]))
        #expect(credentials.current.generation > generation, "open connections are not told to check again")
        guard case .refused(check: "revoked", _) = credentials.refusal(of: n3.certificate) else {
            Issue.record("a revoked node is still served: \(String(describing: credentials.refusal(of: n3.certificate)))")
            return
        }
        let firstFile = try String(contentsOfFile: directory.appending("cluster/revocations.json"), encoding: .utf8)
        #expect(credentials.offer(try ca.sign(second), source: "peer") == .installed(version: second.version, newlyRevoked: ["n4"]))
        #expect(credentials.offer(try ca.sign(first), source: "peer") == .notNewer)
        let stranger = try ClusterCA.generate(clusterName: "prod")
        guard case .refused = credentials.offer(try stranger.sign(second.revoking("n1", at: Date(), reason: nil)), source: "peer") else {
            Issue.record("a list from another CA was accepted")
            return
        }
        #expect(credentials.current.revocations(signedBy: ca.fingerprint)?.list.version == second.version)

        // A backup restores the older file: the running (newer) list stays.
        try firstFile.write(toFile: directory.appending("cluster/revocations.json"), atomically: true, encoding: .utf8)
        try credentials.reload()
        #expect(credentials.current.revocations(signedBy: ca.fingerprint)?.list.version == second.version)
        #expect(credentials.current.revocations(signedBy: ca.fingerprint)?.list.entry(for: "n4") != nil)
    }

    @Test("the rotation window: a node trusts a second CA from trusted-cas.pem, and stops at once when it is removed")
    func rotationWindow() throws {
        let directory = try TemporaryDirectory(name: "rotation")
        defer { directory.remove() }
        let old = try ClusterCA.generate(clusterName: "prod")
        let new = try ClusterCA.generate(clusterName: "prod")
        let clusterDirectory = directory.appending("cluster")
        let identityPath = clusterDirectory + "/identity.pem"
        try old.issueIdentity(nodeName: "n1", addresses: Self.address).write(to: identityPath, replacing: false)
        let credentials = try ClusterCredentials(identityPath: identityPath, clusterDirectory: clusterDirectory)
        let movedPeer = try new.issueIdentity(nodeName: "n2", addresses: Self.address)
        #expect(credentials.refusal(of: movedPeer.certificate) != nil, "a CA not yet trusted is trusted")

        let trusted = TrustedCAFile.path(clusterDirectory: clusterDirectory)
        try TrustedCAFile.write([new.certificate], to: trusted)
        #expect(try credentials.reload())
        #expect(credentials.current.anchors.count == 2)
        #expect(credentials.refusal(of: movedPeer.certificate) == nil)
        #expect(try TrustedCAFile.read(trusted).map(TrustedCAFile.fingerprint) == [new.fingerprint])

        // This node moves to the new CA and keeps the old one trusted; then the window closes.
        try new.issueIdentity(nodeName: "n1", addresses: Self.address).write(to: identityPath, replacing: true)
        try TrustedCAFile.write([old.certificate], to: trusted)
        #expect(try credentials.reload())
        #expect(credentials.current.identity.caFingerprint == new.fingerprint)
        let unmovedPeer = try old.issueIdentity(nodeName: "n3", addresses: Self.address)
        #expect(credentials.refusal(of: unmovedPeer.certificate) == nil)
        // A revocation signed by the old CA during the window covers the old CA's certificates only: a node the old
        // key names keeps its new-CA certificate (a leaked old key cannot lock out the new CA's nodes).
        let list = RevocationList(cluster: "prod", version: 0, issuedAt: Date(), revoked: [])
            .revoking("n3", at: Date(), reason: nil).revoking("n2", at: Date(), reason: nil)
        guard case .installed = credentials.offer(try old.sign(list), source: "peer") else {
            Issue.record("the old CA's list was refused during the window")
            return
        }
        guard case .refused(check: "revoked", _) = credentials.refusal(of: unmovedPeer.certificate) else {
            Issue.record("the old CA's list does not revoke the old CA's certificate for n3")
            return
        }
        #expect(credentials.refusal(of: movedPeer.certificate) == nil, "the old CA's list revoked a new-CA certificate")
        // Each CA keeps its own list: the new CA's revocation of n2 stands beside the old one's.
        let newList = RevocationList(cluster: "prod", version: 0, issuedAt: Date(), revoked: []).revoking("n2", at: Date(), reason: nil)
        guard case .installed = credentials.offer(try new.sign(newList), source: "peer") else {
            Issue.record("the new CA's list was refused")
            return
        }
        #expect(credentials.current.revocations.count == 2)
        guard case .refused(check: "revoked", _) = credentials.refusal(of: movedPeer.certificate) else {
            Issue.record("the new CA's list does not revoke n2's new-CA certificate")
            return
        }
        try TrustedCAFile.write([], to: trusted)
        #expect(try credentials.reload())
        guard case .refused(check: "trust", _) = credentials.refusal(of: unmovedPeer.certificate) else {
            Issue.record("the old CA is still trusted after the window closed")
            return
        }
        #expect(!FileManager.default.fileExists(atPath: trusted))
        // The old CA's list is obsolete once the old CA is not trusted: dropped (no reason to refuse to start); the
        // new CA's stays.
        #expect(credentials.current.revocations.map(\.signed.signer) == [new.fingerprint])
        #expect(try ClusterCredentials(identityPath: identityPath, clusterDirectory: clusterDirectory).current.revocations.map(\.signed.signer) == [new.fingerprint])

        // A bad file changes nothing: the running credentials stay.
        try "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n".write(toFile: trusted, atomically: true, encoding: .utf8)
        #expect(throws: ClusterTrustError.self) { try credentials.reload() }
        #expect(credentials.current.anchors.count == 1)
    }
}
