import ACMEProtocol
import CertStore
import CertkeeperTestSupport
import Crypto
import Foundation
import Renewal
import Testing
import X509
import _CryptoExtras

@testable import CertbotImport

@Suite("certbot import: plan and apply against a real store")
struct ImporterTests {
    /// A CA like Let's Encrypt's: root → intermediate → leaves.
    static func issuer() throws -> TestCA {
        try TestCA.make(commonName: "Test Root").issueIntermediate(commonName: "Test R1")
    }

    struct Fixture {
        let tree: CertbotTree
        let state: TemporaryDirectory
        let store: CertStore.CertificateStore
        let importer: CertbotImporter

        init(tree: CertbotTree? = nil) throws {
            self.tree = try tree ?? CertbotTree()
            state = try TemporaryDirectory(name: "certbot-import-state")
            store = CertStore.CertificateStore(root: state.path, logger: quietLogger)
            importer = CertbotImporter(directory: CertbotDirectory(root: self.tree.root), store: store,
                                       configuredDirectory: CertbotTree.server, logger: quietLogger)
        }

        func remove() {
            tree.remove()
            state.remove()
        }

        func problems(_ selection: ImportSelection = ImportSelection()) -> [CertbotImportError] {
            do {
                _ = try importer.plan(selection, now: Date())
                return []
            } catch {
                return error.problems
            }
        }
    }

    @Test("a lineage and its account are installed; a second run changes nothing")
    func importsAndIsIdempotent() throws {
        let fixture = try Fixture()
        defer { fixture.remove() }
        let leaf = try Self.issuer().issueLeaf(dnsNames: ["web.example.org", "www.example.org"])
        try fixture.tree.addLineage("web.example.org", leaf: leaf, version: 3)
        let accountKey = try fixture.tree.addAccount()

        let plan = try fixture.importer.plan(ImportSelection(), now: Date())
        #expect(plan.lineages.map(\.action) == [.install])
        #expect(plan.lineages.first?.lineage.version == 3)
        #expect(plan.lineages.first?.entry.domains == ["web.example.org", "www.example.org"])
        #expect(plan.accounts.map(\.action) == [.install])
        let outcomes = fixture.importer.apply(plan, nodeName: "node1", now: Date())
        #expect(!outcomes.contains { $0.isFailure })

        // The store serves certbot's certificate and key, key 0600, with meta naming the serial.
        let meta = try #require(try fixture.store.meta(name: "web.example.org"))
        #expect(meta.serial == Self.serialHex(leaf.certificate))
        #expect(meta.domains == ["web.example.org", "www.example.org"])
        let live = fixture.store.liveDirectory(name: "web.example.org")
        #expect(try String(contentsOfFile: "\(live)/privkey.pem", encoding: .utf8) == leaf.privateKeyPEM)
        #expect(try String(contentsOfFile: "\(live)/fullchain.pem", encoding: .utf8) == leaf.fullChainPEM)
        #expect(try Self.mode("\(live)/privkey.pem") == 0o600)
        #expect(try Self.mode("\(live)/bundle.pem") == 0o600)

        // The account: the same key, and the account URL, so no registration happens.
        let account = try #require(try fixture.store.loadAccount(directoryURL: CertbotTree.server))
        #expect(try AccountKey(pem: account.keyPEM).thumbprint == AccountKey.rsa(accountKey).thumbprint)
        #expect(account.record?.accountURL == "https://127.0.0.1:14000/my-account/1")
        #expect(account.record?.createdAt == Date(timeIntervalSince1970: 1_767_323_045))
        let keyFile = "\(fixture.store.accountDirectory(directoryURL: CertbotTree.server))/key.pem"
        #expect(try Self.mode(keyFile) == 0o600)

        let again = try fixture.importer.plan(ImportSelection(), now: Date())
        #expect(again.lineages.map(\.action) == [.unchanged])
        #expect(again.accounts.map(\.action) == [.unchanged])
        _ = fixture.importer.apply(again, nodeName: "node1", now: Date())
        #expect(try fixture.store.meta(name: "web.example.org")?.version == 1)
    }

    @Test("never replaces a newer certificate in the store; replaces an older one")
    func newerWins() throws {
        let fixture = try Fixture()
        defer { fixture.remove() }
        let ca = try Self.issuer()
        let certbotLeaf = try ca.issueLeaf(dnsNames: ["web.example.org"], notBefore: Date().addingTimeInterval(-7200))
        try fixture.tree.addLineage("web.example.org", leaf: certbotLeaf)
        try fixture.tree.addAccount()

        // The store already has a newer certificate (a renewal certkeeper made after a first import).
        let newer = try ca.issueLeaf(dnsNames: ["web.example.org"], notBefore: Date().addingTimeInterval(-60))
        try Self.install(newer, as: "web.example.org", into: fixture.store)
        let plan = try fixture.importer.plan(ImportSelection(), now: Date())
        guard case .keepStore(let serial, _) = plan.lineages.first?.action else {
            Issue.record("expected keepStore, got \(String(describing: plan.lineages.first?.action))")
            return
        }
        #expect(serial == Self.serialHex(newer.certificate))
        _ = fixture.importer.apply(plan, nodeName: "node1", now: Date())
        #expect(try fixture.store.meta(name: "web.example.org")?.serial == Self.serialHex(newer.certificate))

        // An older certificate in the store is replaced by certbot's, as a new version; stale renewal state is reset.
        let state = try TemporaryDirectory(name: "certbot-import-older")
        defer { state.remove() }
        let store = CertStore.CertificateStore(root: state.path, logger: quietLogger)
        let older = try ca.issueLeaf(dnsNames: ["web.example.org"], notBefore: Date().addingTimeInterval(-86_400))
        try Self.install(older, as: "web.example.org", into: store)
        try store.writeState(RenewalRecord(pendingDeploy: Self.serialHex(older.certificate), failedHooks: ["reload"]), key: RenewalRecord.key(for: "web.example.org"))
        let importer = CertbotImporter(directory: CertbotDirectory(root: fixture.tree.root), store: store, configuredDirectory: nil, logger: quietLogger)
        let replacing = try importer.plan(ImportSelection(), now: Date())
        #expect(replacing.lineages.map(\.action) == [.install])
        _ = importer.apply(replacing, nodeName: "node1", now: Date())
        let meta = try #require(try store.meta(name: "web.example.org"))
        #expect(meta.serial == Self.serialHex(certbotLeaf.certificate))
        #expect(meta.version == 2)
        let record = try #require(try store.readState(RenewalRecord.self, key: RenewalRecord.key(for: "web.example.org")))
        #expect(record.pendingDeploy == nil)
        #expect(record.failedHooks == nil)
    }

    @Test("a copy of /etc/letsencrypt elsewhere: the configurations' absolute paths are moved under the copy")
    func copiedDirectory() throws {
        let fixture = try Fixture(tree: try CertbotTree(namedRoot: "/etc/letsencrypt-on-the-old-host"))
        defer { fixture.remove() }
        try fixture.tree.addLineage("web.example.org", leaf: try Self.issuer().issueLeaf(dnsNames: ["web.example.org"]))
        try fixture.tree.addAccount()
        let plan = try fixture.importer.plan(ImportSelection(), now: Date())
        #expect(plan.lineages.first?.lineage.fullchain.livePath == "\(fixture.tree.root)/live/web.example.org/fullchain.pem")
        #expect(plan.lineages.first?.lineage.fullchain.resolvedPath == "\(fixture.tree.root)/archive/web.example.org/fullchain1.pem")
    }

    @Test("every broken lineage is reported, each naming its file, and nothing is written")
    func validationProblems() throws {
        let fixture = try Fixture()
        defer { fixture.remove() }
        let ca = try Self.issuer()
        try fixture.tree.addAccount()
        // privkey.pem belongs to another certificate.
        let a = try ca.issueLeaf(dnsNames: ["a.example.org"])
        let stranger = try ca.issueLeaf(dnsNames: ["a.example.org"])
        try fixture.tree.writeVersion("a.example.org", version: 1, certificatePEM: a.certificatePEM, chainPEM: a.chainPEM, keyPEM: stranger.privateKeyPEM)
        try fixture.tree.writeConf("a.example.org")
        // live/ caught half-way through certbot's symlink swap: privkey.pem still points to version 1.
        let b1 = try ca.issueLeaf(dnsNames: ["b.example.org"])
        let b2 = try ca.issueLeaf(dnsNames: ["b.example.org"])
        try fixture.tree.addLineage("b.example.org", leaf: b1)
        try fixture.tree.addLineage("b.example.org", leaf: b2, version: 2)
        let live = "\(fixture.tree.root)/live/b.example.org/privkey.pem"
        try FileManager.default.removeItem(atPath: live)
        try FileManager.default.createSymbolicLink(atPath: live, withDestinationPath: "../../archive/b.example.org/privkey1.pem")
        // Expired.
        try fixture.tree.addLineage("c.example.org", leaf: try ca.issueLeaf(dnsNames: ["c.example.org"], notBefore: Date().addingTimeInterval(-90 * 86_400), notAfter: Date().addingTimeInterval(-86_400)))
        // A chain that does not link (intermediate of another CA).
        let d = try ca.issueLeaf(dnsNames: ["d.example.org"])
        try fixture.tree.writeVersion("d.example.org", version: 1, certificatePEM: d.certificatePEM, chainPEM: try Self.issuer().certificatePEM, keyPEM: d.privateKeyPEM)
        try fixture.tree.writeConf("d.example.org")
        // A name certkeeper cannot store.
        try fixture.tree.addLineage("bad..name", leaf: try ca.issueLeaf(dnsNames: ["e.example.org"]))
        // cert.pem that is not fullchain's leaf.
        let f = try ca.issueLeaf(dnsNames: ["f.example.org"])
        try fixture.tree.addLineage("f.example.org", leaf: f)
        try ca.issueLeaf(dnsNames: ["f.example.org"]).certificatePEM.write(toFile: "\(fixture.tree.root)/archive/f.example.org/cert1.pem", atomically: true, encoding: .utf8)
        // A missing file.
        try fixture.tree.addLineage("g.example.org", leaf: try ca.issueLeaf(dnsNames: ["g.example.org"]))
        try FileManager.default.removeItem(atPath: "\(fixture.tree.root)/archive/g.example.org/chain1.pem")

        let problems = fixture.problems()
        let root = fixture.tree.root
        let expected: [(String, CertbotImportError.Code, String)] = [
            ("\(root)/live/a.example.org/privkey.pem", .inconsistent, "private key does not match the certificate"),
            ("\(root)/live/b.example.org/privkey.pem", .inconsistent, "points to version 1"),
            ("\(root)/live/c.example.org/fullchain.pem", .inconsistent, "certificate expired at"),
            ("\(root)/live/d.example.org/fullchain.pem", .inconsistent, "chain broken at certificate 0"),
            ("\(root)/renewal/bad..name.conf", .unsupported, "not a valid certkeeper certificate name"),
            ("\(root)/live/f.example.org/cert.pem", .inconsistent, "is not the first certificate of"),
            ("\(root)/live/g.example.org/chain.pem", .missing, "which does not exist"),
        ]
        #expect(problems.count == expected.count, "\(problems.map(\.description).joined(separator: "\n"))")
        for (path, code, fragment) in expected {
            #expect(problems.contains { $0.path == path && $0.code == code && $0.problem.contains(fragment) },
                    "no \(code) problem for \(path) containing '\(fragment)' in:\n\(problems.map(\.description).joined(separator: "\n"))")
        }
        for problem in problems { #expect(!problem.description.contains("\n")) }
        #expect(!FileManager.default.fileExists(atPath: "\(fixture.state.path)/live"), "validation wrote to the store")

        // --lineage picks the good one out of a broken directory.
        try fixture.tree.addLineage("ok.example.org", leaf: try ca.issueLeaf(dnsNames: ["ok.example.org"]))
        let selected = try fixture.importer.plan(ImportSelection(lineages: ["ok.example.org"]), now: Date())
        #expect(selected.lineages.map(\.lineage.name) == ["ok.example.org"])
        #expect(fixture.problems(ImportSelection(lineages: ["nope"])).first?.code == .selection)
    }

    @Test("accounts: missing, ambiguous, chosen with --account, skipped with --no-account, kept when certkeeper has its own")
    func accounts() throws {
        let fixture = try Fixture()
        defer { fixture.remove() }
        let ca = try Self.issuer()
        try fixture.tree.addLineage("a.example.org", leaf: try ca.issueLeaf(dnsNames: ["a.example.org"]), account: "acct1")
        let missing = fixture.problems()
        #expect(missing.count == 1)
        #expect(missing.first?.code == .missing)
        #expect(missing.first?.path == "\(fixture.tree.root)/accounts/127.0.0.1:14000/dir/acct1")
        #expect(fixture.problems(ImportSelection(includeAccounts: false)).isEmpty)

        try fixture.tree.addAccount(id: "acct1")
        try fixture.tree.addLineage("b.example.org", leaf: try ca.issueLeaf(dnsNames: ["b.example.org"]), account: "acct2")
        let secondKey = try fixture.tree.addAccount(id: "acct2", accountURL: "https://127.0.0.1:14000/my-account/2")
        let ambiguous = fixture.problems()
        #expect(ambiguous.count == 1)
        #expect(ambiguous.first?.code == .selection)
        #expect(ambiguous.first?.problem.contains("acct1 (a.example.org); acct2 (b.example.org)") == true, "\(ambiguous)")

        let chosen = try fixture.importer.plan(ImportSelection(accountID: "acct2"), now: Date())
        #expect(chosen.accounts.map(\.account.id) == ["acct2"])
        #expect(fixture.problems(ImportSelection(accountID: "acct9")).contains { $0.code == .selection })

        // certkeeper already registered its own account for this server: it is kept.
        let own = AccountKey.generate()
        try fixture.store.saveAccountKey(directoryURL: CertbotTree.server, keyPEM: own.pemRepresentation)
        let kept = try fixture.importer.plan(ImportSelection(accountID: "acct2"), now: Date())
        #expect(kept.accounts.map(\.action) == [.keepStore(accountURL: nil)])
        _ = fixture.importer.apply(kept, nodeName: "n", now: Date())
        #expect(try AccountKey(pem: try #require(try fixture.store.loadAccount(directoryURL: CertbotTree.server)).keyPEM).thumbprint == own.thumbprint)

        // Same key without the account URL: only the record is written.
        try fixture.store.saveAccountKey(directoryURL: CertbotTree.server, keyPEM: AccountKey.rsa(secondKey).pemRepresentation)
        let record = try fixture.importer.plan(ImportSelection(accountID: "acct2"), now: Date())
        #expect(record.accounts.map(\.action) == [.saveRecord])
    }

    @Test("store problems: live/<name> left as a real directory is refused before anything is written")
    func unmanagedLive() throws {
        let fixture = try Fixture()
        defer { fixture.remove() }
        try fixture.tree.addLineage("web.example.org", leaf: try Self.issuer().issueLeaf(dnsNames: ["web.example.org"]))
        try fixture.tree.addAccount()
        try FileManager.default.createDirectory(atPath: fixture.store.liveDirectory(name: "web.example.org"), withIntermediateDirectories: true)
        let problems = fixture.problems()
        #expect(problems.map(\.code) == [.unsupported])
        #expect(problems.first?.path == fixture.store.liveDirectory(name: "web.example.org"))
    }

    @Test("a failed install is reported for that lineage; the account and the other lineages are still written")
    func partialFailure() throws {
        let fixture = try Fixture()
        defer { fixture.remove() }
        let ca = try Self.issuer()
        try fixture.tree.addLineage("a.example.org", leaf: try ca.issueLeaf(dnsNames: ["a.example.org"]))
        try fixture.tree.addLineage("b.example.org", leaf: try ca.issueLeaf(dnsNames: ["b.example.org"]))
        try fixture.tree.addAccount()
        let plan = try fixture.importer.plan(ImportSelection(), now: Date())
        // Something in the way of a.example.org's archive directory (root ignores permission bits, a file does not).
        try fixture.store.prepare()
        try Data("x".utf8).write(to: URL(fileURLWithPath: fixture.store.archiveDirectory(name: "a.example.org")))
        let outcomes = fixture.importer.apply(plan, nodeName: "n", now: Date())
        #expect(outcomes.compactMap { $0.failure(of: .lineage("a.example.org")) }.count == 1)
        #expect(outcomes.filter(\.isFailure).count == 1)
        #expect(try fixture.store.meta(name: "a.example.org") == nil)
        #expect(try fixture.store.meta(name: "b.example.org") != nil)
        #expect(try fixture.store.loadAccount(directoryURL: CertbotTree.server)?.record != nil)
    }

    @Test("an empty or absent directory")
    func emptyDirectory() throws {
        let fixture = try Fixture()
        defer { fixture.remove() }
        #expect(fixture.problems().map(\.code) == [.missing])
        let absent = CertbotImporter(directory: CertbotDirectory(root: "/nonexistent/letsencrypt"), store: fixture.store, configuredDirectory: nil, logger: quietLogger)
        #expect {
            _ = try absent.plan(ImportSelection(), now: Date())
        } throws: { error in
            (error as? ImportValidationFailure)?.problems.first?.description.hasPrefix("/nonexistent/letsencrypt: no such directory") == true
        }
    }

    // MARK: - Helpers

    static func install(_ leaf: TestCertificate, as name: String, into store: CertStore.CertificateStore) throws {
        let bundle = try CertificateBundle(fullchainPEM: leaf.fullChainPEM, privateKeyPEM: leaf.privateKeyPEM)
        try store.install(try BundleVerifier().verify(bundle, expectedDomains: [], now: Date()), name: name, issuedBy: "test", now: Date())
    }

    static func serialHex(_ certificate: Certificate) -> String {
        let bytes = certificate.serialNumber.bytes.drop(while: { $0 == 0 })
        return bytes.map { String(format: "%02x", $0) }.joined()
    }

    static func mode(_ path: String) throws -> Int {
        ((try FileManager.default.attributesOfItem(atPath: path))[.posixPermissions] as? NSNumber)?.intValue ?? -1
    }
}
