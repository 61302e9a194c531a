import AsyncHTTPClient
import CertStore
import CertkeeperConfig
import CertkeeperTestSupport
import ClusterTrust
import Crypto
import Foundation
import InternalCA
#if canImport(Glibc)
import Glibc
#endif
import Logging
import NIOSSL
import SwiftASN1
import NIOConcurrencyHelpers
import Testing
import Renewal
import X509

@testable import CertStore
@testable import PeerSync

/// One node of a loopback cluster: a store, an identity from the cluster CA, and its peer API when serving.
struct LoopbackNode {
    let name: String
    let store: CertStore.CertificateStore
    let identity: ClusterIdentity
    let configuration: CertkeeperConfiguration
}

/// A cluster CA, a test ACME-like CA issuing the served certificates, and nodes on 127.0.0.1.
struct LoopbackCluster {
    static let logger = Logger(label: "peer-sync-test", factory: { _ in SwiftLogNoOpLogHandler() })
    let directory: TemporaryDirectory
    let clusterCA: ClusterCA
    let issuer: TestCA

    init() throws {
        directory = try TemporaryDirectory(name: "peersync")
        clusterCA = try ClusterCA.generate(clusterName: "test")
        issuer = try TestCA.make(commonName: "Sync Test Root").issueIntermediate(commonName: "Sync Test Issuer")
    }

    func node(_ name: String, domains: [String] = ["sync.example"], hooks: HookSettings = HookSettings()) throws -> LoopbackNode {
        let root = directory.path + "/" + name
        let configuration = CertkeeperConfiguration(
            stateDirectory: root, nodeName: name, acme: ACMESettings(directoryURL: "https://acme.invalid/directory"),
            certificates: [CertificateSpec(name: "web", domains: domains)], hooks: hooks)
        let store = CertStore.CertificateStore(root: root, logger: Self.logger)
        try store.prepare()
        let identity = try clusterCA.issueIdentity(nodeName: name, addresses: [NodeAddress(parsing: "127.0.0.1")])
        return LoopbackNode(name: name, store: store, identity: identity, configuration: configuration)
    }

    /// Issues and installs a certificate into `node` directly (as `renew` would), verified at `verifyAt`.
    @discardableResult
    func install(
        on node: LoopbackNode, names: [String] = ["sync.example"], notBefore: Date = Date().addingTimeInterval(-3600),
        notAfter: Date = Date().addingTimeInterval(90 * 86_400), verifyAt: Date = Date()
    ) throws -> CertificateMeta {
        let leaf = try issuer.issueLeaf(dnsNames: names, notBefore: notBefore, notAfter: notAfter)
        let bundle = CertificateBundle(certificatePEM: leaf.certificatePEM, chainPEM: leaf.chainPEM, privateKeyPEM: leaf.privateKeyPEM)
        let verified = try BundleVerifier().verify(bundle, expectedDomains: names, now: verifyAt)
        return try node.store.install(verified, name: "web", issuedBy: node.name, now: Date())
    }
}

/// A running peer API for a node, stopped by `stop()`.
struct RunningPeerAPI {
    let server: PeerAPIServer
    let index: ChangeIndex
    let task: Task<Void, Never>

    /// - Parameter peers: The nodes the API serves, each from 127.0.0.1 unless its address is given.
    static func start(
        _ node: LoopbackNode, role: String = "renewer", peers: [PeerAllowList.Peer] = ["n1", "n2", "n3"].map { .init(name: $0, hosts: ["127.0.0.1"]) },
        logger: Logger = LoopbackCluster.logger
    ) async throws -> RunningPeerAPI {
        let server = try await PeerAPIServer.bind(
            host: "127.0.0.1", port: 0, tls: node.identity.makeServerTLSConfiguration(), allowList: PeerAllowList(peers: peers),
            logger: logger)
        let index = ChangeIndex(initial: SyncIndex(epoch: "abc", counter: 1))
        let api = PeerAPI(
            local: LocalNode(name: node.name, role: role, store: node.store, acmeDirectoryURL: node.configuration.acme.directoryURL),
            index: index, maximumWait: .seconds(60))
        let task = Task { _ = try? await server.run(api) }
        return RunningPeerAPI(server: server, index: index, task: task)
    }

    func stop() async {
        task.cancel()
        await task.value
    }
}

/// An HTTP client with `identity` (or a client TLS configuration given outright).
func withPeerClient<T>(
    _ tls: TLSConfiguration, peer: String, port: Int, _ body: (PeerClient) async throws -> T
) async throws -> T {
    let http = HTTPClient(eventLoopGroupProvider: .singleton, configuration: HTTPClient.Configuration(tlsConfiguration: tls))
    do {
        let result = try await body(PeerClient(peerName: peer, host: "127.0.0.1", port: port, http: http))
        try await http.shutdown()
        return result
    } catch {
        try? await http.shutdown()
        throw error
    }
}

@Suite("Peer sync between two nodes on loopback, over mutual TLS")
struct PeerSyncLoopbackTests {
    @Test("a follower pulls a newer certificate, verifies it and installs it; then has nothing to pull")
    func pullsNewer() async throws {
        let cluster = try LoopbackCluster()
        let renewer = try cluster.node("n1")
        let follower = try cluster.node("n2")
        let installed = try cluster.install(on: renewer)
        let api = try await RunningPeerAPI.start(renewer)
        defer { api.task.cancel() }
        let installer = SyncInstaller(configuration: follower.configuration, store: follower.store, environment: [:], logger: LoopbackCluster.logger)

        try await withPeerClient(follower.identity.makeClientTLSConfiguration(), peer: "n1", port: api.server.port) { client in
            let catalog = try await client.catalog(after: nil, wait: .zero)
            #expect(catalog.node == "n1")
            #expect(catalog.role == "renewer")
            let entry = try #require(catalog.certificate(named: "web"))
            #expect(entry.serial == installed.serial)
            #expect(await installer.consider(entry, from: client) == .installed(serial: installed.serial, failedHooks: []))
            let meta = try #require(try follower.store.meta(name: "web"))
            #expect(meta.sha256 == installed.sha256)
            #expect(meta.issuedBy == "n1")
            let key = try #require(try follower.store.liveBundle(name: "web")).privateKeyPEM
            #expect(key == (try renewer.store.liveBundle(name: "web"))?.privateKeyPEM)
            let mode = try FileManager.default.attributesOfItem(atPath: follower.store.liveDirectory(name: "web") + "/privkey.pem")[.posixPermissions] as? Int
            #expect(mode == 0o600)
            #expect(await installer.consider(entry, from: client) == .notNewer)
        }
        await api.stop()
    }

    @Test("the issuer's renewal state travels with the certificate; a failed deploy hook is recorded on the follower")
    func renewalStateAndHooks() async throws {
        let cluster = try LoopbackCluster()
        let renewer = try cluster.node("n1")
        let marker = cluster.directory.path + "/hook-ran"
        let follower = try cluster.node("n2", hooks: HookSettings(deploy: [HookCommand(command: "touch \(marker); exit 3")], timeout: 30))
        let installed = try cluster.install(on: renewer)
        try renewer.store.writeState(RenewalRecord(revokedSerial: installed.serial), key: RenewalRecord.key(for: "web"))
        let api = try await RunningPeerAPI.start(renewer)
        defer { api.task.cancel() }
        let installer = SyncInstaller(configuration: follower.configuration, store: follower.store, environment: ProcessInfo.processInfo.environment, logger: LoopbackCluster.logger)
        try await withPeerClient(follower.identity.makeClientTLSConfiguration(), peer: "n1", port: api.server.port) { client in
            let entry = try #require(try await client.catalog(after: nil, wait: .zero).certificate(named: "web"))
            #expect(entry.renewal?.revokedSerial == installed.serial)
            guard case .installed(let serial, let failed) = await installer.consider(entry, from: client) else {
                Issue.record("not installed")
                return
            }
            #expect(serial == installed.serial)
            #expect(failed.count == 1)
            #expect(FileManager.default.fileExists(atPath: marker), "the deploy hook did not run")
            let record = try #require(try follower.store.readState(RenewalRecord.self, key: RenewalRecord.key(for: "web")))
            #expect(record.revokedSerial == installed.serial)
            #expect(record.pendingDeploy == installed.serial)
            #expect(record.failedHooks?.count == 1)
        }
        await api.stop()
    }

    @Test("a follower killed between the live swap and its deploy hooks still owes them: the next renew runs them")
    func crashAfterSwapOwesTheDeploy() async throws {
        let cluster = try LoopbackCluster()
        let renewer = try cluster.node("n1")
        let marker = cluster.directory.path + "/hook-ran"
        let follower = try cluster.node("n2", hooks: HookSettings(deploy: [HookCommand(command: "echo ran >> \(marker)")], timeout: 30))
        // What a SIGKILL right after the swap leaves on disk: the follower's state directory copied at the moment the
        // store fsyncs live/ after renaming the new link over live/web (the injector runs before that fsync).
        let image = cluster.directory.path + "/crash-image"
        let liveRoot = follower.store.root + "/live"
        let faults: FileSystem.FaultInjector = { operation, path in
            if operation == .fsyncDirectory, path == liveRoot, !FileManager.default.fileExists(atPath: image) {
                let copy = Process()
                copy.executableURL = URL(fileURLWithPath: "/bin/cp")
                copy.arguments = ["-a", follower.store.root, image]
                try? copy.run()
                copy.waitUntilExit()
            }
            return nil
        }
        let store = CertStore.CertificateStore(root: follower.store.root, keepVersions: 5, logger: LoopbackCluster.logger, fileSystem: FileSystem(faults: faults))
        let installed = try cluster.install(on: renewer)
        let api = try await RunningPeerAPI.start(renewer)
        defer { api.task.cancel() }
        let installer = SyncInstaller(configuration: follower.configuration, store: store, environment: ProcessInfo.processInfo.environment, logger: LoopbackCluster.logger)
        try await withPeerClient(follower.identity.makeClientTLSConfiguration(), peer: "n1", port: api.server.port) { client in
            let entry = try #require(try await client.catalog(after: nil, wait: .zero).certificate(named: "web"))
            #expect(await installer.consider(entry, from: client) == .installed(serial: installed.serial, failedHooks: []))
        }
        await api.stop()
        #expect(((try? String(contentsOfFile: marker, encoding: .utf8)) ?? "") == "ran\n")
        #expect(try store.readState(RenewalRecord.self, key: RenewalRecord.key(for: "web"))?.pendingDeploy == nil)

        // The crash image: the new certificate is live, its hooks have not run, and the record says they are owed.
        let crashed = CertStore.CertificateStore(root: image, logger: LoopbackCluster.logger)
        #expect(try crashed.meta(name: "web")?.serial == installed.serial)
        #expect(try crashed.readState(RenewalRecord.self, key: RenewalRecord.key(for: "web"))?.installing == installed.serial)
        #expect(crashed.owedDeploy(name: "web") == installed.serial)
        var configuration = follower.configuration
        configuration.stateDirectory = image
        // ARI is asked about the live certificate first; a refused port and a short timeout keep that brief.
        configuration.acmeSettings?.directoryURL = "https://127.0.0.1:1/directory"
        configuration.acmeSettings?.requestTimeout = 1
        let renew = Renewer(configuration: configuration, store: crashed, nodeName: "n2", environment: ProcessInfo.processInfo.environment, logger: LoopbackCluster.logger)
        let report = try await renew.run(configuration.certificates, force: false)
        guard case .redeployed(let meta, let failed)? = report.outcomes.first?.outcome else {
            Issue.record("renew after the crash did not run the owed deploy: \(report.outcomes)")
            return
        }
        #expect(meta.serial == installed.serial)
        #expect(failed.isEmpty)
        #expect(((try? String(contentsOfFile: marker, encoding: .utf8)) ?? "") == "ran\nran\n")
        #expect(crashed.owedDeploy(name: "web") == nil)
    }

    @Test("a long-poll returns when the index moves, with the new catalogue")
    func longPoll() async throws {
        let cluster = try LoopbackCluster()
        let renewer = try cluster.node("n1")
        let follower = try cluster.node("n2")
        try cluster.install(on: renewer)
        let api = try await RunningPeerAPI.start(renewer)
        defer { api.task.cancel() }
        try await withPeerClient(follower.identity.makeClientTLSConfiguration(), peer: "n1", port: api.server.port) { client in
            let first = try await client.catalog(after: nil, wait: .zero)
            async let next = client.catalog(after: first.index, wait: .seconds(60))
            let newer = try cluster.install(on: renewer)
            // Keep announcing until the long-poll has certainly been parked (bounded: 60 s).
            let announcer = Task {
                for _ in 0..<600 where !Task.isCancelled {
                    try? await Task.sleep(for: .milliseconds(100))
                    api.index.bump()
                }
            }
            let answer = try await next
            announcer.cancel()
            #expect(answer.index.counter > first.index.counter)
            #expect(answer.certificate(named: "web")?.serial == newer.serial)
        }
        await api.stop()
    }

    @Test("bad offers are refused and the follower's certificate stays", arguments: BadOffer.allCases)
    func refusesBadOffers(offer: BadOffer) async throws {
        let cluster = try LoopbackCluster()
        let renewer = try cluster.node("n1")
        let follower = try cluster.node("n2")
        let now = Date()
        // The follower holds a good certificate from an hour ago.
        let held = try cluster.install(on: follower, notBefore: now.addingTimeInterval(-7200))
        switch offer {
        case .mismatchedKey, .oversized:
            try cluster.install(on: renewer)
            let version = try #require(try renewer.store.liveVersion(name: "web"))
            let versionDirectory = try #require(try FileManager.default.contentsOfDirectory(atPath: renewer.store.archiveDirectory(name: "web")).first { $0.hasPrefix(String(format: "v%06d", version)) })
            let path = renewer.store.archiveDirectory(name: "web") + "/" + versionDirectory
            if offer == .mismatchedKey {
                try P256.Signing.PrivateKey().pemRepresentation.write(toFile: path + "/privkey.pem", atomically: true, encoding: .utf8)
            } else {
                let junk = String(repeating: "A", count: 1_200_000)
                try (try String(contentsOfFile: path + "/chain.pem", encoding: .utf8) + junk).write(toFile: path + "/chain.pem", atomically: true, encoding: .utf8)
            }
        case .expired:
            // Newer than the follower's (notBefore an hour ago) but already expired.
            try cluster.install(on: renewer, notBefore: now.addingTimeInterval(-3600), notAfter: now.addingTimeInterval(-60), verifyAt: now.addingTimeInterval(-1800))
        case .older:
            try cluster.install(on: renewer, notBefore: now.addingTimeInterval(-3 * 3600))
        case .wrongNames:
            try cluster.install(on: renewer, names: ["other.example"])
        }
        let api = try await RunningPeerAPI.start(renewer)
        defer { api.task.cancel() }
        let installer = SyncInstaller(configuration: follower.configuration, store: follower.store, environment: [:], logger: LoopbackCluster.logger)
        let outcome = try await withPeerClient(follower.identity.makeClientTLSConfiguration(), peer: "n1", port: api.server.port) { client in
            let entry = try #require(try await client.catalog(after: nil, wait: .zero).certificate(named: "web"))
            return await installer.consider(entry, from: client)
        }
        switch (offer, outcome) {
        case (.older, .notNewer): break
        case (.oversized, .failed(let reason)): #expect(reason.contains("allowed"), "\(reason)")
        case (.mismatchedKey, .rejected(let reason)): #expect(reason.contains("key"), "\(reason)")
        case (.expired, .rejected(let reason)): #expect(reason.contains("expired"), "\(reason)")
        case (.wrongNames, .rejected(let reason)): #expect(reason.contains("sync.example"), "\(reason)")
        default: Issue.record("unexpected outcome for \(offer.rawValue): \(outcome)")
        }
        #expect(try follower.store.meta(name: "web")?.sha256 == held.sha256)
        await api.stop()
    }

    enum BadOffer: String, CaseIterable, Sendable, CustomTestStringConvertible {
        case mismatchedKey, expired, older, wrongNames, oversized
        var testDescription: String { rawValue }
    }

    @Test("a name with path characters in a catalogue is refused before any request")
    func refusesBadName() async throws {
        let cluster = try LoopbackCluster()
        let follower = try cluster.node("n2")
        let installer = SyncInstaller(configuration: follower.configuration, store: follower.store, environment: [:], logger: LoopbackCluster.logger)
        let entry = CatalogCertificate(name: "../web", serial: "1", notBefore: Date(), notAfter: Date() + 1, sha256: "", domains: [])
        try await withPeerClient(follower.identity.makeClientTLSConfiguration(), peer: "n1", port: 1) { client in
            guard case .rejected(let reason) = await installer.consider(entry, from: client) else {
                Issue.record("a path name was not rejected")
                return
            }
            #expect(reason.contains("not a valid name"))
        }
    }

    @Test("the peer API answers nothing without a client certificate from the cluster CA")
    func refusesStrangers() async throws {
        let cluster = try LoopbackCluster()
        let renewer = try cluster.node("n1")
        try cluster.install(on: renewer)
        let api = try await RunningPeerAPI.start(renewer)
        defer { api.task.cancel() }

        var anonymous = TLSConfiguration.makeClientConfiguration()
        anonymous.trustRoots = .certificates([try NIOSSLCertificate(bytes: Array(renewer.identity.caCertificatePEM.utf8), format: .pem)])
        anonymous.minimumTLSVersion = .tlsv13
        let otherCA = try ClusterCA.generate(clusterName: "other")
        let stranger = try otherCA.issueIdentity(nodeName: "n9", addresses: [NodeAddress(parsing: "127.0.0.1")])
        var strangerTLS = stranger.makeClientTLSConfiguration()
        strangerTLS.trustRoots = anonymous.trustRoots
        for (label, tls) in [("no certificate", anonymous), ("another cluster's certificate", strangerTLS)] {
            do {
                let answer = try await withPeerClient(tls, peer: "n1", port: api.server.port) { client in
                    try await client.bundle(name: "web")
                }
                Issue.record("\(label): the peer API answered: \(answer)")
            } catch {
                #expect(!"\(error)".isEmpty)
            }
        }
        await api.stop()
    }

    @Test("a follower's status shows no next renewal of its own; status --cluster says TLS and 403 failures in words")
    func followerStatusAndFailureWords() throws {
        let cluster = try LoopbackCluster()
        let node = try cluster.node("n2")
        try cluster.install(on: node)
        var configuration = node.configuration
        configuration.cluster = ClusterSettings(role: .follower, listen: ListenAddress(host: "127.0.0.1", port: 7443), peers: [])
        let renewer = Renewer(configuration: configuration, store: node.store, nodeName: "n2", environment: [:], logger: LoopbackCluster.logger)
        let row = try #require(renewer.status(configuration.certificates).first)
        #expect(row.nextRenewal == nil && row.reason == "fromPeers", "\(row)")

        func words(_ reason: String, status: UInt? = nil) -> String {
            var error = PeerError(peer: "n1", operation: "catalog", reason: reason)
            error.status = status
            return ClusterSurvey.inWords(error)
        }
        #expect(words("handshakeFailed(NIOSSL.BoringSSLError.sslError([Error: 268435581 error:1000007d:SSL routines:OPENSSL_internal:CERTIFICATE_VERIFY_FAILED]))").contains("another CA"))
        #expect(words("handshakeFailed(NIOSSL.BoringSSLError.sslError([Error: error:10000418:SSL routines:OPENSSL_internal:TLSV1_ALERT_UNKNOWN_CA]))").contains("refused this node's certificate"))
        #expect(words("HTTP 403: not a peer of this node", status: 403).hasPrefix("refused (403)"))
        #expect(words("connection reset (error set): Connection refused (errno: 111)").hasPrefix("connection refused"))
        #expect(words("HTTPClientError.deadlineExceeded") == "timed out")
        #expect(!words("something\nelse").contains("\n"))
    }

    @Test("the internal CA goes only to the peers listed with role: standby; others get 403 and no key")
    func internalCAOnlyToStandbys() async throws {
        let cluster = try LoopbackCluster()
        let renewer = try cluster.node("n1")
        let directory = InternalCADirectory(stateDirectory: renewer.store.root)
        var generator = SystemRandomNumberGenerator()
        _ = try directory.loadOrCreate(name: "test internal CA", lifetime: 86_400 * 30, now: Date(), generator: &generator)
        let api = PeerAPI(
            local: LocalNode(name: "n1", role: "renewer", store: renewer.store, acmeDirectoryURL: nil),
            index: ChangeIndex(initial: SyncIndex(epoch: "abc", counter: 1)), maximumWait: .seconds(1), internalCAReaders: ["n3"])
        let refused = await api.respond(method: "GET", uri: "/v1/internal-ca", peer: "n2", logger: LoopbackCluster.logger)
        #expect(refused.status == 403)
        #expect(!String(decoding: refused.body, as: UTF8.self).contains("PRIVATE KEY"))
        let served = await api.respond(method: "GET", uri: "/v1/internal-ca", peer: "n3", logger: LoopbackCluster.logger)
        #expect(served.status == 200)
        let payload = try PeerJSON.decoder.decode(InternalCAPayload.self, from: served.body)
        #expect(payload.keyPEM.contains("PRIVATE KEY") && !"\(payload)".contains("PRIVATE KEY"))

        // A standby adopts it once; a second adoption changes nothing, and a foreign root is refused.
        let standby = try cluster.node("n3")
        let standbyCA = InternalCADirectory(stateDirectory: standby.store.root)
        #expect(try standbyCA.adopt(rootPEM: payload.rootPEM, keyPEM: payload.keyPEM, source: "peer n1"))
        #expect(try standbyCA.load()?.root.der == directory.load()?.root.der)
        #expect(try !standbyCA.adopt(rootPEM: payload.rootPEM, keyPEM: payload.keyPEM, source: "peer n1"))
        let other = try cluster.node("n4")
        let otherCA = InternalCADirectory(stateDirectory: other.store.root)
        _ = try otherCA.loadOrCreate(name: "another CA", lifetime: 86_400, now: Date(), generator: &generator)
        let mismatched = try #require(try otherCA.load())
        do {
            try InternalCADirectory(stateDirectory: cluster.directory.path + "/n5").adopt(rootPEM: payload.rootPEM, keyPEM: mismatched.keyPEM, source: "peer n1")
            Issue.record("a key that does not match the root was adopted")
        } catch {
            #expect(error.code == .keyMismatch)
        }
    }

    @Test("a long-poll asking for a wait no clock can hold is refused with 400, and the API keeps serving")
    func hugeWaitIsRefused() async throws {
        let cluster = try LoopbackCluster()
        let renewer = try cluster.node("n1")
        let follower = try cluster.node("n2")
        try cluster.install(on: renewer)
        let api = try await RunningPeerAPI.start(renewer)
        defer { api.task.cancel() }
        let http = HTTPClient(
            eventLoopGroupProvider: .singleton,
            configuration: HTTPClient.Configuration(tlsConfiguration: follower.identity.makeClientTLSConfiguration()))
        func get(_ target: String) async throws -> (UInt, String) {
            let response = try await http.execute(HTTPClientRequest(url: "https://127.0.0.1:\(api.server.port)\(target)"), timeout: .seconds(30))
            let body = try await response.body.collect(upTo: 1 << 20)
            return (response.status.code, String(buffer: body))
        }
        do {
            for wait in ["1e19", "9.3e15", "86401", "inf", "nan", "-1", "1e400", String(repeating: "9", count: 400)] {
                let (status, body) = try await get("/v1/catalog?after=abc.1&wait=\(wait)")
                #expect(status == 400, "wait=\(wait.prefix(20)): \(body)")
                #expect(body.contains("wait"), "wait=\(wait.prefix(20)): \(body)")
            }
            // Still serving: an ordinary request and a short long-poll that times out.
            let (status, body) = try await get("/v1/catalog")
            #expect(status == 200, "\(body)")
            let (pollStatus, _) = try await get("/v1/catalog?after=abc.1&wait=0.05")
            #expect(pollStatus == 200)
        } catch {
            try? await http.shutdown()
            throw error
        }
        try await http.shutdown()
        await api.stop()
    }

    @Test("peers are an allow-list: a cluster certificate for a node not in peers, one without clientAuth and a peer's certificate from another address get 403 and no key")
    func allowList() async throws {
        let cluster = try LoopbackCluster()
        let renewer = try cluster.node("n1")
        let follower = try cluster.node("n2")
        try cluster.install(on: renewer)
        // n2 may connect from 127.0.0.2 only; n9 holds a certificate from the same cluster CA but is no peer.
        let logs = CapturedLogs()
        let api = try await RunningPeerAPI.start(renewer, peers: [.init(name: "n2", hosts: ["127.0.0.2"])], logger: logs.logger)
        defer { api.task.cancel() }
        let stranger = try cluster.clusterCA.issueIdentity(nodeName: "n9", addresses: [NodeAddress(parsing: "127.0.0.1")])
        let noClientAuth = try ClientCertificateWithoutEKU.make(signedBy: cluster.clusterCA, in: cluster.directory, nodeName: "n2")

        func get(_ tls: TLSConfiguration, _ target: String) async throws -> (UInt, String) {
            let http = HTTPClient(eventLoopGroupProvider: .singleton, configuration: HTTPClient.Configuration(tlsConfiguration: tls))
            do {
                let response = try await http.execute(HTTPClientRequest(url: "https://127.0.0.1:\(api.server.port)\(target)"), timeout: .seconds(30))
                let body = String(buffer: try await response.body.collect(upTo: 1 << 20))
                try await http.shutdown()
                return (response.status.code, body)
            } catch {
                try? await http.shutdown()
                throw error
            }
        }
        let cases: [(String, TLSConfiguration, String, String)] = [
            ("a node not in peers", stranger.makeClientTLSConfiguration(), "peers", "node 'n9' is not in this node's cluster.peers"),
            ("no clientAuth", noClientAuth, "clientAuth", "no clientAuth extended key usage"),
            ("the right node from the wrong address", follower.identity.makeClientTLSConfiguration(), "address",
             "node 'n2' connected from 127.0.0.1, not from its configured address 127.0.0.2"),
        ]
        for (label, tls, check, _) in cases {
            for target in ["/v1/certificates/web", "/v1/account", "/v1/catalog", "/v1/internal-ca"] {
                let (status, body) = try await get(tls, target)
                #expect(status == 403, "\(label) \(target): \(status) \(body.prefix(200))")
                #expect(body.contains("failed check: \(check)"), "\(label): \(body)")
                // The body names no peer and no address (that is for this node's log), and holds nothing else.
                #expect(!body.contains("127.0.0.2") && !body.contains("n9") && !body.contains("PRIVATE KEY") && !body.contains("sync.example"),
                        "\(label) learned something: \(body)")
            }
        }
        let refusals = logs.all.filter { $0.contains("refused a peer API client: 403") }
        #expect(refusals.count == 3, "one line per check: \(refusals)")
        for (_, _, _, reason) in cases { #expect(refusals.contains { $0.contains(reason) }, "the log says why: \(reason)") }

        // The same follower certificate from its configured address is served (curl binds 127.0.0.2 as the source).
        let identityFile = try cluster.directory.write(follower.identity.pemRepresentation, to: "n2-identity.pem")
        let caFile = try cluster.directory.write(renewer.identity.caCertificatePEM, to: "cluster-ca.pem")
        let curl = try await OneShotProcess.run(
            executable: "/usr/bin/curl",
            arguments: ["-sS", "--max-time", "20", "--interface", "127.0.0.2", "--cert", identityFile, "--cacert", caFile,
                        "-w", "\n%{http_code}", "https://127.0.0.1:\(api.server.port)/v1/certificates/web"],
            timeout: 30)
        #expect(curl.stdout.hasSuffix("\n200"), "\(curl.stdout.suffix(300)) \(curl.stderr)")
        #expect(curl.stdout.contains("PRIVATE KEY"))
        await api.stop()
    }

    @Test("a connection that never starts its TLS handshake is closed by the server")
    func stalledHandshakeIsClosed() async throws {
        let cluster = try LoopbackCluster()
        let renewer = try cluster.node("n1")
        let api = try await RunningPeerAPI.start(renewer)
        defer { api.task.cancel() }
        let fd = try #require(BlockingTCPClient.connect(port: api.server.port))
        defer { close(fd) }
        // Send nothing; the server must close within its 10 s handshake deadline (wait at most 40 s).
        var timeout = timeval(tv_sec: 40, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        var byte: UInt8 = 0
        let received = recv(fd, &byte, 1, 0)
        #expect(received == 0, "expected the server to close the stalled connection (recv returned \(received), errno \(errno))")
        await api.stop()
    }

    @Test("a follower loop catches up with a new certificate without being told twice")
    func followerLoop() async throws {
        let cluster = try LoopbackCluster()
        let renewer = try cluster.node("n1")
        let follower = try cluster.node("n2")
        try cluster.install(on: renewer, notBefore: Date().addingTimeInterval(-7200))
        let api = try await RunningPeerAPI.start(renewer)
        defer { api.task.cancel() }
        let installer = SyncInstaller(configuration: follower.configuration, store: follower.store, environment: [:], logger: LoopbackCluster.logger)
        let directory = PeerDirectory(peerNames: ["n1"], start: Date())
        let http = HTTPClient(eventLoopGroupProvider: .singleton, configuration: .init(tlsConfiguration: follower.identity.makeClientTLSConfiguration()))
        let client = PeerClient(peerName: "n1", host: "127.0.0.1", port: api.server.port, http: http)
        let loop = Task { await PeerFollower(client: client, installer: installer, directory: directory, longPoll: .seconds(30), logger: LoopbackCluster.logger).run() }

        func waitForSerial(_ serial: String) async -> Bool {
            for _ in 0..<300 {
                if (try? follower.store.meta(name: "web"))??.serial == serial { return true }
                try? await Task.sleep(for: .milliseconds(100))
            }
            return false
        }
        #expect(await waitForSerial(try #require(try renewer.store.meta(name: "web")).serial))
        let newer = try cluster.install(on: renewer)
        api.index.bump()
        #expect(await waitForSerial(newer.serial))
        #expect(directory.snapshot.first?.reachable == true)
        let stopping = ContinuousClock.now
        loop.cancel()
        await loop.value
        print("follower loop stopped after \(ContinuousClock.now - stopping)")
        try await http.shutdown()
        print("client shut down after \(ContinuousClock.now - stopping)")
        await api.stop()
        print("API stopped after \(ContinuousClock.now - stopping)")
    }
}

/// A client certificate the cluster CA signed for a node, but without the clientAuth extended key usage (as a
/// certificate made by other means than `cluster add-node` could be).
enum ClientCertificateWithoutEKU {
    static func make(signedBy ca: ClusterCA, in directory: TemporaryDirectory, nodeName: String) throws -> TLSConfiguration {
        let caDirectory = directory.path + "/ca-for-\(nodeName)-\(UUID().uuidString)"
        try ca.write(to: caDirectory)
        let caKey = try P256.Signing.PrivateKey(pemRepresentation: String(contentsOfFile: caDirectory + "/" + ClusterCA.keyFileName, encoding: .utf8))
        let key = P256.Signing.PrivateKey()
        let certificate = try Certificate(
            version: .v3, serialNumber: Certificate.SerialNumber(), publicKey: Certificate.PublicKey(key.publicKey),
            notValidBefore: Date().addingTimeInterval(-3600), notValidAfter: Date().addingTimeInterval(86_400),
            issuer: ca.certificate.subject, subject: try DistinguishedName { CommonName(nodeName) },
            signatureAlgorithm: .ecdsaWithSHA256,
            extensions: try Certificate.Extensions {
                Critical(BasicConstraints.notCertificateAuthority)
                Critical(KeyUsage(digitalSignature: true))
                SubjectAlternativeNames([.dnsName(nodeName), .ipAddress(ASN1OctetString(contentBytes: [127, 0, 0, 1]))])
            },
            issuerPrivateKey: Certificate.PrivateKey(caKey))
        var serializer = DER.Serializer()
        try serializer.serialize(certificate)
        var tls = TLSConfiguration.makeClientConfiguration()
        tls.minimumTLSVersion = .tlsv13
        tls.certificateChain = [.certificate(try NIOSSLCertificate(bytes: serializer.serializedBytes, format: .der))]
        tls.privateKey = .privateKey(try NIOSSLPrivateKey(bytes: Array(key.pemRepresentation.utf8), format: .pem))
        tls.trustRoots = .certificates([try NIOSSLCertificate(bytes: ca.certificateDER, format: .der)])
        tls.certificateVerification = .fullVerification
        return tls
    }
}

@Suite("A standby's takeover covers the renewer's renewing, not only its daemon")
struct StandbyLivenessTests {
    /// A standby holding a certificate that is due (10 of 90 days left), and its view of one renewer `n1`.
    func standby() throws -> (StandbyTakeover, PeerDirectory, LoopbackCluster) {
        let cluster = try LoopbackCluster()
        let node = try cluster.node("n3")
        try cluster.install(on: node, notBefore: Date().addingTimeInterval(-80 * 86_400), notAfter: Date().addingTimeInterval(10 * 86_400))
        let directory = PeerDirectory(peerNames: ["n1"], start: Date().addingTimeInterval(-7 * 86_400))
        let renewer = Renewer(configuration: node.configuration, store: node.store, nodeName: "n3", environment: [:], logger: LoopbackCluster.logger)
        let takeover = StandbyTakeover(
            renewer: renewer, directory: directory, takeoverAfter: 3600, margin: 0, checkInterval: .seconds(30), logger: LoopbackCluster.logger)
        return (takeover, directory, cluster)
    }

    /// A renewer's catalogue: `checked` nil means "never checked" (an empty record); `reports: false` is an older
    /// version's catalogue, without the record.
    func catalog(checked: Date?, reports: Bool = true) -> PeerCatalog {
        PeerCatalog(
            node: "n1", role: "renewer", index: SyncIndex(epoch: "a", counter: 1), certificates: [], account: nil,
            renewalChecks: reports ? (checked.map { ["web": $0] } ?? [:]) : nil)
    }

    @Test("a renewer that answers and checked the certificate within a day keeps it; one whose renewal stopped or never ran does not")
    func renewingRenewer() throws {
        let (takeover, directory, cluster) = try standby()
        defer { cluster.directory.remove() }
        let now = Date()
        directory.reached("n1", catalog: catalog(checked: now.addingTimeInterval(-6 * 3600)), at: now)
        #expect(takeover.dueForTakeover(now: now).isEmpty, "the standby takes over from a renewer that renews")

        directory.reached("n1", catalog: catalog(checked: now.addingTimeInterval(-26 * 3600)), at: now)
        let stale = takeover.dueForTakeover(now: now)
        #expect(stale.map(\.spec.name) == ["web"])
        #expect(stale.first?.reason == .renewerNotRenewing(lastCheck: now.addingTimeInterval(-26 * 3600)))

        directory.reached("n1", catalog: catalog(checked: nil), at: now)
        #expect(takeover.dueForTakeover(now: now).first?.reason == .renewerNotRenewing(lastCheck: nil))

        // An older renewer says nothing about its renewing: judged by its answering, as before (no takeover).
        directory.reached("n1", catalog: catalog(checked: nil, reports: false), at: now)
        #expect(takeover.dueForTakeover(now: now).isEmpty, "the standby takes over from an older renewer that answers")
    }

    @Test("a renewer that refuses this node, or has been gone less than takeover_after, keeps it; gone longer, it does not")
    func silentOrRefusingRenewer() throws {
        let (takeover, directory, cluster) = try standby()
        defer { cluster.directory.remove() }
        let now = Date()
        directory.reached("n1", catalog: catalog(checked: now), at: now.addingTimeInterval(-600))
        directory.failed("n1", error: "connection refused", at: now.addingTimeInterval(-600))
        #expect(takeover.dueForTakeover(now: now).isEmpty, "10 minutes of silence is not takeover_after (1 h)")
        #expect(takeover.dueForTakeover(now: now.addingTimeInterval(3600)).first?.reason == .renewerUnreachable(seconds: 4200))

        directory.failed("n1", error: "HTTP 403", at: now, refusing: true)
        #expect(takeover.dueForTakeover(now: now.addingTimeInterval(7200)).isEmpty, "the standby takes over from a renewer that refuses it")
    }
}

@Suite("Revoked nodes on the peer API")
struct PeerRevocationTests {
    @Test("a revoked node gets 403 and no key, also on a connection it already had open; the list travels in the catalogue to the next node")
    func revokedNodeIsRefused() async throws {
        let cluster = try LoopbackCluster()
        defer { cluster.directory.remove() }
        let renewer = try cluster.node("n1")
        let follower = try cluster.node("n2")
        let relay = try cluster.node("n3")
        try cluster.install(on: renewer)
        func credentials(_ node: LoopbackNode) throws -> ClusterCredentials {
            let directory = node.store.root + "/cluster"
            try node.identity.write(to: directory + "/identity.pem", replacing: false)
            return try ClusterCredentials(identityPath: directory + "/identity.pem", clusterDirectory: directory)
        }
        let serverCredentials = try credentials(renewer)
        let relayCredentials = try credentials(relay)
        let logs = CapturedLogs()
        let server = try await PeerAPIServer.bind(
            host: "127.0.0.1", port: 0, credentials: serverCredentials,
            allowList: PeerAllowList(peers: ["n2", "n3"].map { .init(name: $0, hosts: ["127.0.0.1"]) }), logger: logs.logger)
        let api = PeerAPI(
            local: LocalNode(name: "n1", role: "renewer", store: renewer.store, acmeDirectoryURL: nil, credentials: serverCredentials),
            index: ChangeIndex(initial: SyncIndex(epoch: "abc", counter: 1)), maximumWait: .seconds(60))
        let task = Task { _ = try? await server.run(api) }
        defer { task.cancel() }

        let http = HTTPClient(eventLoopGroupProvider: .singleton, configuration: HTTPClient.Configuration(tlsConfiguration: follower.identity.makeClientTLSConfiguration()))
        func get(_ target: String) async throws -> (UInt, String) {
            let response = try await http.execute(HTTPClientRequest(url: "https://127.0.0.1:\(server.port)\(target)"), timeout: .seconds(30))
            return (response.status.code, String(buffer: try await response.body.collect(upTo: 1 << 20)))
        }
        do {
            let (before, key) = try await get("/v1/certificates/web")
            #expect(before == 200 && key.contains("PRIVATE KEY"), "n2 is not served before its revocation: \(before)")

            let list = RevocationList(cluster: "test", version: 0, issuedAt: Date(), revoked: []).revoking("n2", at: Date(), reason: "lost")
            let signed = try cluster.clusterCA.sign(list)
            #expect(serverCredentials.offer(signed, source: "test") == .installed(version: list.version, newlyRevoked: ["n2"]))
            // The same client, its pooled keep-alive connection included: refused, nothing leaked.
            for target in ["/v1/certificates/web", "/v1/catalog", "/v1/account"] {
                let (status, body) = try await get(target)
                #expect(status == 403, "\(target): \(status) \(body.prefix(200))")
                #expect(body.contains("failed check: revoked") && !body.contains("PRIVATE KEY") && !body.contains("sync.example"), "\(body)")
            }
            #expect(logs.all.contains { $0.contains("node 'n2' was revoked") }, "\(logs.all)")

            // n3 is still served, gets the list in the catalogue and installs it: its own API now refuses n2 too.
            try await withPeerClient(relay.identity.makeClientTLSConfiguration(), peer: "n1", port: server.port) { client in
                let catalog = try await client.catalog(after: nil, wait: .zero)
                #expect(catalog.revocations == [signed])
                let installer = SyncInstaller(configuration: relay.configuration, store: relay.store, environment: [:], logger: LoopbackCluster.logger)
                let directory = PeerDirectory(peerNames: ["n1"], start: Date())
                let announced = NIOLockedValueBox(0)
                let relayFollower = PeerFollower(
                    client: client, installer: installer, directory: directory, longPoll: .seconds(1), logger: LoopbackCluster.logger,
                    credentials: relayCredentials, announce: { announced.withLockedValue { $0 += 1 } })
                relayFollower.adoptRevocations(catalog, logger: LoopbackCluster.logger)
                relayFollower.adoptRevocations(catalog, logger: LoopbackCluster.logger)
                #expect(announced.withLockedValue { $0 } == 1, "the install is announced once")
            }
            #expect(relayCredentials.current.revokedNodes.map(\.node.node) == ["n2"])
            #expect(FileManager.default.fileExists(atPath: relay.store.root + "/cluster/revocations.json"))
            guard case .refused(check: "revoked", _) = relayCredentials.refusal(of: follower.identity.certificate) else {
                Issue.record("n3 does not refuse the revoked n2")
                try await http.shutdown()
                return
            }
        } catch {
            try? await http.shutdown()
            throw error
        }
        try await http.shutdown()
        task.cancel()
        await task.value
    }
}

@Suite("Synced installs take turns")
struct SyncInstallTurnTests {
    @Test("two certificates offered at once are installed one after the other, their deploy hooks never overlapping, though the hooks outlast lock_timeout")
    func installsTakeTurns() async throws {
        let cluster = try LoopbackCluster()
        defer { cluster.directory.remove() }
        let renewer = try cluster.node("n1")
        for name in ["web", "api"] {
            let leaf = try cluster.issuer.issueLeaf(dnsNames: ["\(name).example"], notBefore: Date().addingTimeInterval(-3600), notAfter: Date().addingTimeInterval(90 * 86_400))
            let bundle = CertificateBundle(certificatePEM: leaf.certificatePEM, chainPEM: leaf.chainPEM, privateKeyPEM: leaf.privateKeyPEM)
            try renewer.store.install(try BundleVerifier().verify(bundle, expectedDomains: ["\(name).example"], now: Date()), name: name, issuedBy: "n1", now: Date())
        }
        // Each hook notes its start and end and takes 2 s; the lock timeout is 1 s.
        let journal = cluster.directory.path + "/hooks.log"
        let root = cluster.directory.path + "/n2"
        let hook = "echo \"start $RENEWED_LINEAGE\" >> \(journal); sleep 2; echo \"end $RENEWED_LINEAGE\" >> \(journal)"
        let configuration = CertkeeperConfiguration(
            stateDirectory: root, nodeName: "n2", acme: ACMESettings(directoryURL: "https://acme.invalid/directory"),
            renew: RenewSettings(lockTimeout: 1),
            certificates: ["web", "api"].map { CertificateSpec(name: $0, domains: ["\($0).example"]) },
            hooks: HookSettings(deploy: [HookCommand(command: hook)], timeout: 30))
        let store = CertStore.CertificateStore(root: root, logger: LoopbackCluster.logger)
        try store.prepare()
        let identity = try cluster.clusterCA.issueIdentity(nodeName: "n2", addresses: [NodeAddress(parsing: "127.0.0.1")])
        let api = try await RunningPeerAPI.start(renewer)
        defer { api.task.cancel() }
        let installer = SyncInstaller(configuration: configuration, store: store, environment: [:], logger: LoopbackCluster.logger)
        try await withPeerClient(identity.makeClientTLSConfiguration(), peer: "n1", port: api.server.port) { client in
            let catalog = try await client.catalog(after: nil, wait: .zero)
            #expect(catalog.certificates.count == 2)
            let outcomes = await withTaskGroup(of: OfferOutcome.self) { group in
                for entry in catalog.certificates { group.addTask { await installer.consider(entry, from: client) } }
                return await group.reduce(into: []) { $0.append($1) }
            }
            for outcome in outcomes {
                guard case .installed(_, let failed) = outcome, failed.isEmpty else {
                    Issue.record("an install did not wait its turn: \(outcome)")
                    continue
                }
            }
        }
        let lines = try String(contentsOfFile: journal, encoding: .utf8).split(separator: "\n").map { $0.split(separator: " ").first ?? "" }
        #expect(lines == ["start", "end", "start", "end"], "the hooks overlapped: \(lines)")
        await api.stop()
    }
}
