import Crypto
import Foundation
import Glibc
import SwiftASN1
import Testing
import X509

@testable import CertStore

@Suite("CertificateStore install")
struct CertificateStoreInstallTests {
    @Test func installWritesLayoutContentsAndModes() throws {
        let fixture = try StoreFixture()
        defer { fixture.remove() }
        let store = fixture.store
        let root = fixture.root
        let chain = try TestChain()
        let verified = try chain.verified()
        let meta = try store.install(verified, name: "web", issuedBy: "node-a", now: testNow)

        #expect(meta.version == 1)
        let versionName = "v000001-20260101000000"
        #expect(symlinkTarget("\(root)/live/web") == "../archive/web/\(versionName)")
        #expect(store.liveDirectory(name: "web") == "\(root)/live/web")

        let live = "\(root)/live/web"
        let bundle = try chain.bundle
        #expect(readText("\(live)/cert.pem") == bundle.certificatePEM)
        #expect(readText("\(live)/chain.pem") == bundle.chainPEM)
        #expect(readText("\(live)/fullchain.pem") == bundle.certificatePEM + bundle.chainPEM)
        #expect(readText("\(live)/privkey.pem") == chain.leafKey.pem)
        #expect(readText("\(live)/bundle.pem") == bundle.certificatePEM + bundle.chainPEM + chain.leafKey.pem.withTrailingNewline)

        let version = "\(root)/archive/web/\(versionName)"
        #expect(directoryEntries(version) == ["bundle.pem", "cert.pem", "chain.pem", "fullchain.pem", "meta.json", "privkey.pem"])
        #expect(fileMode("\(version)/privkey.pem") == 0o600)
        #expect(fileMode("\(version)/bundle.pem") == 0o600)
        #expect(fileMode("\(version)/cert.pem") == 0o644)
        #expect(fileMode("\(version)/fullchain.pem") == 0o644)
        #expect(fileMode(version) == 0o700)
        #expect(fileMode("\(root)/archive/web") == 0o700)
        #expect(fileMode("\(root)/archive") == 0o700)
        #expect(fileMode("\(root)/accounts") == 0o700)
        #expect(fileMode("\(root)/state") == 0o700)
        #expect(fileMode("\(root)/live") == 0o755)
        // Nothing temporary left behind.
        #expect(directoryEntries("\(root)/archive/web") == [versionName])
        #expect(directoryEntries("\(root)/live") == ["web"])
    }

    @Test func metaJSONRecordsIndependentlyComputedFacts() throws {
        let fixture = try StoreFixture()
        defer { fixture.remove() }
        let store = fixture.store
        let root = fixture.root
        let chain = try TestChain(dnsNames: ["example.com", "www.example.com"])
        let installedAt = testNow + 0.75  // fractional seconds are dropped
        let meta = try store.install(try chain.verified(), name: "web", issuedBy: "node-a", now: installedAt)

        let leafDER = try der(chain.leaf)
        let expectedSHA = SHA256.hash(data: leafDER).map { String(format: "%02x", $0) }.joined()
        let expectedSerial = try serialINTEGERContent(leafDER).drop(while: { $0 == 0 }).map { String(format: "%02x", $0) }.joined()

        // Decode the file on its own, not through the store.
        let text = try #require(readText("\(root)/live/web/meta.json"))
        let object = try #require(try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any])
        #expect(object["name"] as? String == "web")
        #expect(object["version"] as? Int == 1)
        #expect(object["domains"] as? [String] == ["example.com", "www.example.com"])
        #expect(object["serial"] as? String == expectedSerial)
        #expect(object["sha256"] as? String == expectedSHA)
        #expect(object["keyType"] as? String == "ec256")
        #expect(object["issuedBy"] as? String == "node-a")
        #expect(object["issuer"] as? String == chain.leaf.issuer.description)
        #expect(object["installedAt"] as? String == "2026-01-01T00:00:00Z")
        #expect(object["notBefore"] as? String == "2025-12-31T00:00:00Z")
        #expect(object["notAfter"] as? String == "2026-03-31T00:00:00Z")
        let expectedARI = base64url(chain.intermediate.keyIdentifier) + "." + base64url(try serialINTEGERContent(leafDER))
        #expect(object["ariCertID"] as? String == expectedARI)
        #expect(fileMode("\(root)/live/web/meta.json") == 0o644)

        // The store reads back exactly what install returned.
        #expect(try store.meta(name: "web") == meta)
        #expect(meta.installedAt == testNow)
    }

    @Test func liveFollowsTheNewestVersionAndLiveBundleRoundTrips() throws {
        let fixture = try StoreFixture()
        defer { fixture.remove() }
        let store = fixture.store
        let root = fixture.root
        var bundles: [CertificateBundle] = []
        for index in 1...3 {
            let chain = try TestChain()
            bundles.append(try chain.bundle)
            let meta = try store.install(try chain.verified(), name: "web", issuedBy: "n", now: testNow + Double(index) * 60)
            #expect(meta.version == index)
            #expect(try store.liveBundle(name: "web") == bundles.last)
            #expect(try store.meta(name: "web")?.version == index)
            #expect(try store.liveVersion(name: "web") == index)
        }
        #expect(symlinkTarget("\(root)/live/web") == "../archive/web/v000003-20260101000300")
        #expect(try store.versions(name: "web") == [1, 2, 3])
        #expect(try store.installedNames() == ["web"])
    }

    @Test func keepVersionsPrunesOldVersions() throws {
        let fixture = try StoreFixture(keepVersions: 2)
        defer { fixture.remove() }
        let store = fixture.store
        let root = fixture.root
        for index in 1...5 {
            _ = try store.install(try TestChain().verified(), name: "web", issuedBy: "n", now: testNow + Double(index))
        }
        #expect(try store.versions(name: "web") == [4, 5])
        #expect(try store.liveVersion(name: "web") == 5)
        #expect(directoryEntries("\(root)/archive/web").count == 2)
    }

    @Test func pruningNeverRemovesTheLiveVersion() throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let root = directory.path + "/state"
        let store = Store(root: root, keepVersions: 5, logger: silentLogger)
        var bundles: [CertificateBundle] = []
        for index in 1...4 {
            let chain = try TestChain()
            bundles.append(try chain.bundle)
            _ = try store.install(try chain.verified(), name: "web", issuedBy: "n", now: testNow + Double(index))
        }
        // An operator rolls back by pointing live at version 2.
        let versionTwo = try #require(directoryEntries("\(root)/archive/web").first { $0.hasPrefix("v000002-") })
        #expect(symlink("../archive/web/\(versionTwo)", "\(root)/live/.rollback") == 0)
        #expect(rename("\(root)/live/.rollback", "\(root)/live/web") == 0)

        // A store configured to keep one version keeps the newest and the live one.
        let strict = Store(root: root, keepVersions: 1, logger: silentLogger)
        try strict.pruneVersions(name: "web")
        #expect(try strict.versions(name: "web") == [2, 4])
        #expect(try strict.liveBundle(name: "web") == bundles[1])
    }

    @Test func aRealDirectoryAtLiveIsRefusedNotClobbered() throws {
        let fixture = try StoreFixture()
        defer { fixture.remove() }
        let store = fixture.store
        let root = fixture.root
        try store.prepare()
        // What a certbot import or a hand-made directory looks like.
        #expect(mkdir("\(root)/live/web", 0o755) == 0)
        try AtomicFile.write(Array("keep me".utf8), to: "\(root)/live/web/cert.pem", mode: 0o644)

        let verified = try TestChain().verified()
        do {
            _ = try store.install(verified, name: "web", issuedBy: "n", now: testNow)
            Issue.record("install over a real directory must fail")
        } catch {
            #expect(error.code == .liveNotManaged)
            #expect(error.description.contains("\(root)/live/web"))
        }
        #expect(readText("\(root)/live/web/cert.pem") == "keep me")
        #expect(try store.versions(name: "web") == [])
        // The directory is still listed and readable.
        #expect(try store.installedNames() == ["web"])
        #expect(try store.meta(name: "web") == nil)
    }

    @Test func missingNamesReadAsNil() throws {
        let fixture = try StoreFixture()
        defer { fixture.remove() }
        let store = fixture.store
        #expect(try store.meta(name: "nothing") == nil)
        #expect(try store.liveBundle(name: "nothing") == nil)
        #expect(try store.versions(name: "nothing") == [])
        #expect(try store.installedNames() == [])
        #expect(try store.liveVersion(name: "nothing") == nil)
    }

    @Test func invalidNamesAreRejectedEverywhere() throws {
        let fixture = try StoreFixture()
        defer { fixture.remove() }
        let store = fixture.store
        let root = fixture.root
        let verified = try TestChain().verified()
        let bad = ["", "../etc", "a/b", ".hidden", "-dash", "a..b", "..", "x" + String(repeating: "y", count: 64), "sp ace", "ümlaut", "a\0b"]
        for name in bad {
            #expect(!StoreName.isValid(name), "\(name) should be invalid")
            func expectInvalid(_ body: () throws(StoreError) -> Void) {
                do {
                    try body()
                    Issue.record("\(String(reflecting: name)) was accepted")
                } catch {
                    #expect(error.code == .invalidName)
                    #expect(!error.description.contains("\n"))
                }
            }
            expectInvalid { () throws(StoreError) in _ = try store.install(verified, name: name, issuedBy: "n", now: testNow) }
            expectInvalid { () throws(StoreError) in _ = try store.meta(name: name) }
            expectInvalid { () throws(StoreError) in _ = try store.liveBundle(name: name) }
            expectInvalid { () throws(StoreError) in _ = try store.versions(name: name) }
            expectInvalid { () throws(StoreError) in _ = try store.liveVersion(name: name) }
            expectInvalid { () throws(StoreError) in try store.pruneVersions(name: name) }
            if name.count <= StoreName.maximumLength {
                expectInvalid { () throws(StoreError) in _ = try store.readState([String].self, key: name) }
                expectInvalid { () throws(StoreError) in try store.writeState(["x"], key: name) }
            }
        }
        // State keys may be longer, so a prefixed full-length name fits; beyond 128 they are refused too.
        let longName = "x" + String(repeating: "y", count: 63)
        try store.writeState(["x"], key: "renewal-" + longName)
        #expect(try store.readState([String].self, key: "renewal-" + longName) == ["x"])
        #expect(throws: StoreError.self) { try store.writeState(["x"], key: String(repeating: "k", count: 129)) }
        for name in ["a", "example.com", "A_b-9", "x" + String(repeating: "y", count: 63), "0.example"] {
            #expect(StoreName.isValid(name), "\(name) should be valid")
        }
        // Nothing was created outside the store.
        #expect(!FileManager.default.fileExists(atPath: root + "/../etc"))
    }

    @Test func installedNamesIgnoresTemporariesAndStrays() throws {
        let fixture = try StoreFixture()
        defer { fixture.remove() }
        let store = fixture.store
        let root = fixture.root
        _ = try store.install(try TestChain().verified(), name: "b-site", issuedBy: "n", now: testNow)
        _ = try store.install(try TestChain().verified(), name: "a-site", issuedBy: "n", now: testNow)
        #expect(symlink("../archive/x", "\(root)/live/.a-site.tmp-deadbeef") == 0)
        try AtomicFile.write(Array("x".utf8), to: "\(root)/live/README", mode: 0o644)
        #expect(try store.installedNames() == ["a-site", "b-site"])
    }

    @Test func leftoversOfACrashedInstallAreCleanedUp() throws {
        let fixture = try StoreFixture()
        defer { fixture.remove() }
        let store = fixture.store
        let root = fixture.root
        _ = try store.install(try TestChain().verified(), name: "web", issuedBy: "n", now: testNow)
        #expect(mkdir("\(root)/archive/web/.tmp-v000002-20260101000000-abcdef", 0o700) == 0)
        #expect(symlink("../archive/web/nothing", "\(root)/live/.web.tmp-abcdef") == 0)
        _ = try store.install(try TestChain().verified(), name: "web", issuedBy: "n", now: testNow + 60)
        #expect(directoryEntries("\(root)/archive/web") == ["v000001-20260101000000", "v000002-20260101000100"])
        #expect(directoryEntries("\(root)/live") == ["web"])
    }

    @Test func prepareNamesThePathInTheWay() throws {
        let fixture = try StoreFixture()
        defer { fixture.remove() }
        let store = fixture.store
        let root = fixture.root
        #expect(mkdir(root, 0o755) == 0)
        try AtomicFile.write(Array("not a directory".utf8), to: "\(root)/archive", mode: 0o644)
        do {
            try store.prepare()
            Issue.record("prepare must fail when archive is a file")
        } catch {
            #expect(error.path == "\(root)/archive")
            #expect(error.errno == ENOTDIR)
            #expect(error.description.contains("\(root)/archive"))
        }
    }
}

func base64url(_ bytes: [UInt8]) -> String {
    Data(bytes).base64EncodedString().replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_")
        .replacingOccurrences(of: "=", with: "")
}

/// The content octets of the serial INTEGER, read straight from the certificate DER with SwiftASN1.
func serialINTEGERContent(_ certificateDER: [UInt8]) throws -> [UInt8] {
    let root = try DER.parse(certificateDER)
    guard case .constructed(let certificate) = root.content, let tbs = certificate.first(where: { _ in true }),
        case .constructed(let fields) = tbs.content
    else { throw ASN1Error.invalidASN1Object(reason: "not a certificate") }
    for field in fields where field.identifier == .integer {
        if case .primitive(let content) = field.content { return Array(content) }
    }
    throw ASN1Error.invalidASN1Object(reason: "no serial")
}
