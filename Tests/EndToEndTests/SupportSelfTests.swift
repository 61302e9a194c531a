import CertkeeperTestSupport
import Crypto
import Foundation
import SwiftASN1
import Testing
import X509

#if canImport(Glibc)
import Glibc
#endif

/// Tests of the test-support helpers themselves: if these fail, end-to-end failures elsewhere mean nothing.
@Suite("Test support: certificates, directories, ports, processes")
struct SupportBasicsTests {
    @Test("TestCA builds a root → intermediate → leaf chain whose signatures verify")
    func chainVerifies() async throws {
        let root = try TestCA.make(commonName: "Self-test Root")
        let intermediate = try root.issueIntermediate(commonName: "Self-test Intermediate")
        let leaf = try intermediate.issueLeaf(dnsNames: ["example.org", "www.example.org"], ipAddresses: ["192.0.2.7"])

        #expect(root.certificate.publicKey.isValidSignature(root.certificate.signature, for: root.certificate))
        #expect(root.certificate.publicKey.isValidSignature(intermediate.certificate.signature,
                                                            for: intermediate.certificate))
        #expect(intermediate.certificate.publicKey.isValidSignature(leaf.certificate.signature, for: leaf.certificate))
        // The leaf is not signed by the root directly.
        #expect(!root.certificate.publicKey.isValidSignature(leaf.certificate.signature, for: leaf.certificate))

        // Full RFC 5280 path validation with swift-certificates.
        var verifier = Verifier(rootCertificates: CertificateStore([root.certificate])) {
            RFC5280Policy()
        }
        let result = await verifier.validate(leaf: leaf.certificate,
                                             intermediates: CertificateStore([intermediate.certificate]))
        guard case .validCertificate(let chain) = result else {
            Issue.record("chain did not validate: \(result)")
            return
        }
        #expect(chain.count == 3)

        // A leaf from an unrelated CA does not validate against this root.
        let stranger = try TestCA.make(commonName: "Stranger").issueLeaf(dnsNames: ["example.org"])
        let strangerResult = await verifier.validate(leaf: stranger.certificate, intermediates: CertificateStore())
        if case .validCertificate = strangerResult { Issue.record("a foreign leaf validated") }
    }

    @Test("TestCA leaves carry SANs, AKI = issuer SKI, EKU serverAuth and the requested validity")
    func leafExtensions() throws {
        let root = try TestCA.make()
        let intermediate = try root.issueIntermediate()
        let notBefore = Date(timeIntervalSince1970: 1_800_000_000)
        let notAfter = notBefore.addingTimeInterval(7 * 86400)
        let key = P256.Signing.PrivateKey()
        let leaf = try intermediate.issueLeaf(dnsNames: ["a.example"], ipAddresses: ["127.0.0.1", "::1"],
                                              notBefore: notBefore, notAfter: notAfter, key: key)
        let extensions = leaf.certificate.extensions
        let sans = try #require(try extensions.subjectAlternativeNames)
        #expect(sans.contains(.dnsName("a.example")))
        #expect(sans.contains(.ipAddress(ASN1OctetString(contentBytes: [127, 0, 0, 1]))))
        #expect(sans.contains(.ipAddress(ASN1OctetString(contentBytes: [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]))))
        let aki = try #require(try extensions.authorityKeyIdentifier)
        let issuerSKI = try #require(try intermediate.certificate.extensions.subjectKeyIdentifier)
        #expect(aki.keyIdentifier == issuerSKI.keyIdentifier)
        #expect(try extensions.extendedKeyUsage?.contains(.serverAuth) == true)
        #expect(try extensions.basicConstraints == .notCertificateAuthority)
        #expect(leaf.certificate.notValidBefore == notBefore)
        #expect(leaf.certificate.notValidAfter == notAfter)
        #expect(leaf.certificate.publicKey == Certificate.PublicKey(key.publicKey))
        #expect(throws: TestSupportError.self) { try intermediate.issueLeaf(dnsNames: [], ipAddresses: ["not-an-ip"]) }
    }

    @Test("PEM files written by TestCA parse back and pass `openssl verify`")
    func pemFilesVerifyWithOpenSSL() async throws {
        let directory = try TemporaryDirectory(name: "testca-pem")
        defer { directory.remove() }
        let root = try TestCA.make()
        let intermediate = try root.issueIntermediate()
        let leaf = try intermediate.issueLeaf(dnsNames: ["pem.example"])
        let files = try leaf.writePEMFiles(to: directory.path)
        #expect(Set(files.keys) == ["cert.pem", "chain.pem", "fullchain.pem", "privkey.pem", "root.pem"])
        try root.writePEMFiles(to: directory.appending("ca"))

        let parsed = try Certificate(pemEncoded: String(contentsOfFile: files["cert.pem"]!, encoding: .utf8))
        #expect(parsed == leaf.certificate)
        let fullChain = try PEMDocument.parseMultiple(pemString: String(contentsOfFile: files["fullchain.pem"]!,
                                                                        encoding: .utf8))
        #expect(fullChain.count == 2)
        let key = try P256.Signing.PrivateKey(pemRepresentation: String(contentsOfFile: files["privkey.pem"]!,
                                                                        encoding: .utf8))
        #expect(key.publicKey.rawRepresentation == leaf.privateKey.publicKey.rawRepresentation)

        let verify = try await OneShotProcess.run(
            executable: "/usr/bin/openssl",
            arguments: ["verify", "-CAfile", files["root.pem"]!, "-untrusted", files["chain.pem"]!, files["cert.pem"]!])
        #expect(verify.exitCode == 0, "openssl verify: \(verify.stdout) \(verify.stderr)")
        let wrongRoot = try await OneShotProcess.run(
            executable: "/usr/bin/openssl",
            arguments: ["verify", "-CAfile", files["chain.pem"]!, files["cert.pem"]!])
        #expect(wrongRoot.exitCode != 0)
    }

    @Test("TemporaryDirectory is unique under /tmp/certkeeper-tests and remove() deletes it")
    func temporaryDirectory() throws {
        let first = try TemporaryDirectory(name: "self/test")
        let second = try TemporaryDirectory(name: "self/test")
        #expect(first.path != second.path)
        #expect(first.path.hasPrefix("/tmp/certkeeper-tests/self_test-"))
        try first.write("hello", to: "nested/file.txt")
        #expect(FileManager.default.fileExists(atPath: first.appending("nested/file.txt")))
        first.remove()
        second.remove()
        #expect(!FileManager.default.fileExists(atPath: first.path))
        #expect(!FileManager.default.fileExists(atPath: second.path))
    }

    @Test("PortAllocator hands out distinct free ports, also under concurrency")
    func portAllocator() async throws {
        let ports = try await withThrowingTaskGroup(of: [Int].self) { group in
            for _ in 0..<8 { group.addTask { try PortAllocator.shared.allocate(count: 10) } }
            return try await group.reduce(into: [Int]()) { $0 += $1 }
        }
        #expect(ports.count == 80)
        #expect(Set(ports).count == 80)
        #expect(ports.allSatisfy { (20000..<32000).contains($0) })
        #expect(ports.prefix(5).allSatisfy(PortAllocator.isFree(port:)))
    }

    @Test("ManagedProcess: stop() ends a running program; waits are bounded and report the log")
    func managedProcess() async throws {
        let directory = try TemporaryDirectory(name: "managed-process")
        defer { directory.remove() }

        // A program that ignores SIGTERM must still be gone after stop() (SIGKILL after the grace period).
        let stubborn = try ManagedProcess.start(
            name: "stubborn", executable: "/bin/sh",
            arguments: ["-c", "trap '' TERM; echo started; while true; do sleep 0.1; done"],
            logDirectory: directory.path)
        #expect(stubborn.isRunning)
        let port = try PortAllocator.shared.allocate()
        let clock = ContinuousClock()
        let waited = await clock.measure {
            await #expect(throws: TestSupportError.self) {
                try await stubborn.waitForTCPPort(port: port, timeout: 0.5)
            }
        }
        #expect(waited < .seconds(30))
        let stopTime = await clock.measure { await stubborn.stop(gracePeriod: 0.5) }
        #expect(!stubborn.isRunning)
        #expect(stopTime < .seconds(30))
        #expect(kill(stubborn.processIdentifier, 0) == -1)
        #expect(stubborn.logTail().contains("started"))

        // A program that dies is reported as exitedEarly with its output.
        let failing = try ManagedProcess.start(
            name: "failing", executable: "/bin/sh", arguments: ["-c", "echo boom >&2; exit 7"],
            logDirectory: directory.path)
        do {
            try await failing.waitForTCPPort(port: port, timeout: 5)
            Issue.record("waitForTCPPort succeeded on a dead program")
        } catch let error as TestSupportError {
            guard case .exitedEarly(_, let code, let tail) = error else {
                Issue.record("unexpected error \(error)")
                return
            }
            #expect(code == 7)
            #expect(tail.contains("boom"))
            #expect(!error.description.contains("\n"))
        }
        await failing.stop()
    }

    @Test("OneShotProcess returns exit code and both streams, and kills a program that overruns its timeout")
    func oneShotProcess() async throws {
        let result = try await OneShotProcess.run(
            executable: "/bin/sh", arguments: ["-c", "echo out; echo err >&2; exit 3"])
        #expect(result.exitCode == 3)
        #expect(result.stdout == "out\n")
        #expect(result.stderr == "err\n")

        // SIGTERM must work on a plain program: children start with an empty signal mask even though the
        // test's own threads block SIGTERM.
        let clock = ContinuousClock()
        let elapsed = await clock.measure {
            await #expect(throws: TestSupportError.self) {
                _ = try await OneShotProcess.run(executable: "/bin/sleep", arguments: ["30"], timeout: 0.5)
            }
        }
        #expect(elapsed < .seconds(20))  // the program sleeps 30 s: it was killed at its timeout

        let status = try await OneShotProcess.run(executable: "/bin/grep", arguments: ["-E", "^Sig(Blk|Ign)", "/proc/self/status"])
        #expect(status.stdout.contains("SigBlk:\t0000000000000000"), "child signal state: \(status.stdout)")

        let directory = try TemporaryDirectory(name: "cwd")
        defer { directory.remove() }
        let pwd = try await OneShotProcess.run(executable: "/bin/pwd", currentDirectory: directory.path)
        #expect(pwd.stdout == directory.path + "\n")
        let env = try await OneShotProcess.run(executable: "/usr/bin/env", environment: ["CERTKEEPER_SELFTEST": "yes"])
        #expect(env.stdout.contains("CERTKEEPER_SELFTEST=yes\n"))
    }

    @Test("CLI finds the built certkeeper executable next to the test binary and runs it")
    func cliRunsExecutable() async throws {
        let path = try CLI.executablePath()
        #expect(path.hasSuffix("/certkeeper"))
        let result = try await CLI.run(["--help"], timeout: 30)
        #expect(result.exitCode == 0, "stderr: \(result.stderr)")
        #expect((result.stdout + result.stderr).contains("certkeeper"))

        let directory = try TemporaryDirectory(name: "cli-start")
        defer { directory.remove() }
        let started = try CLI.start(["--help"], logDirectory: directory.path)
        #expect(await started.waitForExit(timeout: 30) == 0)
        #expect(started.logTail().contains("certkeeper"))
    }
}

@Suite("Test support: Pebble", .serialized)
struct PebbleServerSelfTests {
    @Test("PebbleServer starts, serves /dir over TLS trusted via caBundlePath, exposes roots, and stops cleanly")
    func startsAnswersAndStops() async throws {
        let pebble = try await PebbleServer.start()
        do {
            let directory = try await Curl.request("GET", pebble.directoryURL, caBundlePath: pebble.caBundlePath)
            #expect(directory.status == 200)
            #expect(directory.body.contains("\"newNonce\""))
            #expect(pebble.directoryURL == "https://127.0.0.1:\(pebble.listenPort)/dir")
            // Pebble's TLS certificate comes from our own test root, so the system trust store must reject it.
            await #expect(throws: TestSupportError.self) {
                _ = try await Curl.request("GET", pebble.directoryURL)
            }

            let root = try Certificate(pemEncoded: try await pebble.rootPEMs())
            let intermediate = try Certificate(pemEncoded: try await pebble.intermediatePEM())
            #expect(try root.extensions.basicConstraints == .isCertificateAuthority(maxPathLength: nil)
                || root.subject.description.contains("Pebble Root"))
            #expect(root.publicKey.isValidSignature(intermediate.signature, for: intermediate))

            try await pebble.setTXT(host: "_acme-challenge.example.org", value: "abc")
            try await pebble.clearTXT(host: "_acme-challenge.example.org")
            try await pebble.addA(host: "node1.example.org", ip: "127.0.0.1")
            try await pebble.clearA(host: "node1.example.org")
            #expect(pebble.logTail().contains("reject 20% of good nonces"))
            #expect(pebble.logTail().contains("Disabling random VA sleeps"))
            await #expect(throws: TestSupportError.self) {
                _ = try await pebble.certStatus(serialHex: "abcdef")
            }
        } catch {
            await pebble.stop()
            throw error
        }
        let pids = pebble.processIdentifiers
        let clock = ContinuousClock()
        _ = await clock.measure { await pebble.stop() }
        #expect(!pebble.isRunning)
        for pid in pids { #expect(kill(pid, 0) == -1, "process \(pid) still exists") }
        #expect(!FileManager.default.fileExists(atPath: pebble.directory.path))
    }

    @Test("Pebble issues through real http-01 validation on httpPort; certStatus follows revocation")
    func issuesAndRevokes() async throws {
        let pebble = try await PebbleServer.start()
        let webroot = try TemporaryDirectory(name: "webroot")
        let files: StaticFileServer
        do {
            files = try await StaticFileServer.start(rootDirectory: webroot.path, port: pebble.httpPort)
        } catch {
            await pebble.stop()
            throw error
        }
        do {
            let client = TestACMEClient(directoryURL: pebble.directoryURL, caBundlePath: pebble.caBundlePath)
            let issued = try await client.obtainCertificate(dnsNames: ["selftest.example.com"]) { token, keyAuthorization in
                try webroot.write(keyAuthorization, to: ".well-known/acme-challenge/\(token)")
            }
            #expect(files.requests.contains { $0.path.hasPrefix("/.well-known/acme-challenge/") && $0.status == 200 })
            let leaf = try #require(issued.certificates.first)
            #expect(try leaf.extensions.subjectAlternativeNames?.contains(.dnsName("selftest.example.com")) == true)

            let root = try Certificate(pemEncoded: try await pebble.rootPEMs())
            var verifier = Verifier(rootCertificates: CertificateStore([root])) { RFC5280Policy() }
            let result = await verifier.validate(leaf: leaf,
                                                 intermediates: CertificateStore(Array(issued.certificates.dropFirst())))
            guard case .validCertificate = result else {
                Issue.record("Pebble's chain did not validate against /roots/0: \(result)")
                throw TestSupportError.certificate(what: "chain", reason: "invalid")
            }

            let serialHex = leaf.serialNumber.bytes.map { String(format: "%02x", $0) }.joined()
            #expect(try await pebble.certStatus(serialHex: serialHex).status == "Valid")
            let revoked = try await client.revoke(leaf, reason: 4)
            #expect(revoked.status == 200, "revoke: \(revoked.body)")
            let status = try await pebble.certStatus(serialHex: "0x" + serialHex.uppercased())
            #expect(status.status == "Revoked")
            #expect(status.reason == 4)
        } catch {
            Issue.record("Pebble logs:\n\(pebble.logTail())")
            await files.stop()
            await pebble.stop()
            webroot.remove()
            throw error
        }
        await files.stop()
        await pebble.stop()
        webroot.remove()
    }
}

@Suite("Test support: fake ACME server")
struct FakeACMEServerSelfTests {
    /// Runs `body` against a fresh server and always stops it.
    private func withServer(
        _ options: FakeACMEServer.Options = FakeACMEServer.Options(),
        _ body: (FakeACMEServer) async throws -> Void
    ) async throws {
        let server = try await FakeACMEServer.start(options: options)
        do {
            try await body(server)
        } catch {
            await server.stop()
            throw error
        }
        await server.stop()
    }

    private func json(_ response: Curl.Response) throws -> [String: Any] {
        try #require(try JSONSerialization.jsonObject(with: Data(response.body.utf8)) as? [String: Any])
    }

    private func nonce(_ server: FakeACMEServer) async throws -> String {
        let response = try await Curl.request("HEAD", server.baseURL + "/new-nonce", caBundlePath: server.caBundlePath)
        #expect(response.status == 200)
        return try #require(response.headers["replay-nonce"])
    }

    private func postJWS(_ server: FakeACMEServer, path: String, body: String,
                         contentType: String = "application/jose+json") async throws -> Curl.Response {
        try await Curl.request("POST", server.baseURL + path, caBundlePath: server.caBundlePath,
                               headers: ["Content-Type": contentType], body: body)
    }

    @Test("directory and nonces are served over TLS trusted only via caBundlePath")
    func directoryOverTLS() async throws {
        try await withServer { server in
            let response = try await Curl.request("GET", server.directoryURL, caBundlePath: server.caBundlePath)
            #expect(response.status == 200)
            #expect(response.headers["replay-nonce"]?.isEmpty == false)
            let directory = try json(response)
            for key in ["newNonce", "newAccount", "newOrder", "revokeCert", "renewalInfo"] {
                #expect((directory[key] as? String)?.hasPrefix(server.baseURL + "/") == true, "\(key)")
            }
            let profiles = try #require((directory["meta"] as? [String: Any])?["profiles"] as? [String: String])
            #expect(Set(profiles.keys) == ["classic", "shortlived"])

            let get = try await Curl.request("GET", server.baseURL + "/new-nonce", caBundlePath: server.caBundlePath)
            #expect(get.status == 204)
            let first = try await nonce(server)
            let second = try await nonce(server)
            #expect(first != second)

            await #expect(throws: TestSupportError.self) {
                _ = try await Curl.request("GET", server.directoryURL)
            }
            let disabled = try await FakeACMEServer.start(options: .init(renewalInfoEnabled: false))
            let bare = try await Curl.request("GET", disabled.directoryURL, caBundlePath: disabled.caBundlePath)
            await disabled.stop()
            #expect(try json(bare)["renewalInfo"] == nil)
        }
    }

    @Test("JWS checks: bad signature, reused nonce, wrong url, wrong content type, unknown kid")
    func rejectsBadRequests() async throws {
        try await withServer { server in
            let key = P256.Signing.PrivateKey()
            let url = server.baseURL + "/new-account"
            let payload = #"{"termsOfServiceAgreed":true}"#

            // Signed by another key than the embedded jwk.
            let goodBody = try TestJWS.sign(payload: payload, url: url, nonce: try await nonce(server), key: key)
            let parts = try #require(try JSONSerialization.jsonObject(with: Data(goodBody.utf8)) as? [String: String])
            let forged = try P256.Signing.PrivateKey().signature(
                for: Data("\(parts["protected"]!).\(parts["payload"]!)".utf8))
            let tampered = TestJWS.flattened(protected: parts["protected"]!, payload: parts["payload"]!,
                                             signature: TestJWS.base64url(forged.rawRepresentation))
            let badSignature = try await postJWS(server, path: "/new-account", body: tampered)
            #expect(badSignature.status == 400)
            #expect(badSignature.headers["content-type"] == "application/problem+json")
            #expect(badSignature.headers["replay-nonce"]?.isEmpty == false)
            #expect(try json(badSignature)["type"] as? String == "urn:ietf:params:acme:error:malformed")
            #expect((try json(badSignature)["detail"] as? String)?.contains("signature") == true)

            // The happy path: a correctly signed newAccount.
            let nonce1 = try await nonce(server)
            let created = try await postJWS(server, path: "/new-account",
                                            body: try TestJWS.sign(payload: payload, url: url, nonce: nonce1, key: key))
            #expect(created.status == 201)
            #expect(created.headers["location"] == server.baseURL + "/acct/1")
            #expect(try json(created)["status"] as? String == "valid")

            // Same nonce again.
            let replay = try await postJWS(server, path: "/new-account",
                                           body: try TestJWS.sign(payload: payload, url: url, nonce: nonce1, key: key))
            #expect(replay.status == 400)
            #expect(try json(replay)["type"] as? String == "urn:ietf:params:acme:error:badNonce")

            // Same key again: the existing account, 200.
            let again = try await postJWS(server, path: "/new-account", body: try TestJWS.sign(
                payload: payload, url: url, nonce: try await nonce(server), key: key))
            #expect(again.status == 200)
            #expect(again.headers["location"] == server.baseURL + "/acct/1")

            // url header for another resource.
            let wrongURL = try await postJWS(server, path: "/new-account", body: try TestJWS.sign(
                payload: payload, url: server.baseURL + "/new-order", nonce: try await nonce(server), key: key))
            #expect(wrongURL.status == 401)
            #expect(try json(wrongURL)["type"] as? String == "urn:ietf:params:acme:error:unauthorized")

            let wrongType = try await postJWS(server, path: "/new-account", body: try TestJWS.sign(
                payload: payload, url: url, nonce: try await nonce(server), key: key), contentType: "application/json")
            #expect(wrongType.status == 415)

            let unknownKid = try await postJWS(server, path: "/new-order", body: try TestJWS.sign(
                payload: #"{"identifiers":[{"type":"dns","value":"a.example"}]}"#, url: server.baseURL + "/new-order",
                nonce: try await nonce(server), key: key, kid: server.baseURL + "/acct/99"))
            #expect(try json(unknownKid)["type"] as? String == "urn:ietf:params:acme:error:accountDoesNotExist")

            #expect(server.orders.isEmpty)
            let log = server.requestLog
            #expect(log.contains(.init(method: "POST", path: "/new-account", status: 201)))
            #expect(log.filter { $0.method == "HEAD" }.count == 6)
        }
    }

    @Test("issues with profiles, serves ARI windows, records replaces, revokes")
    func issuanceProfilesAndARI() async throws {
        try await withServer { server in
            let client = TestACMEClient(directoryURL: server.directoryURL, caBundlePath: server.caBundlePath)
            let directory = try await client.directory()
            #expect(directory.profiles == ["classic", "shortlived"])

            let first = try await client.obtainCertificate(dnsNames: ["a.example", "b.example"], profile: "shortlived")
            let leaf = try #require(first.certificates.first)
            #expect(first.certificates.count == 2)
            #expect(leaf.notValidAfter.timeIntervalSince(leaf.notValidBefore) == 160 * 3600)
            #expect(leaf.publicKey == Certificate.PublicKey(first.key.publicKey))
            let sans = try #require(try leaf.extensions.subjectAlternativeNames)
            #expect(Set(sans) == [.dnsName("a.example"), .dnsName("b.example")])
            var verifier = Verifier(rootCertificates: CertificateStore([server.issuingRoot.certificate])) {
                RFC5280Policy()
            }
            let result = await verifier.validate(leaf: leaf,
                                                 intermediates: CertificateStore(Array(first.certificates.dropFirst())))
            guard case .validCertificate = result else {
                Issue.record("issued chain does not validate: \(result)")
                return
            }

            // ARI: default window in the middle of the lifetime, with Retry-After.
            let certID = try FakeACMEServer.certID(of: leaf)
            #expect(server.issuedCertificates.map(\.certID) == [certID])
            #expect(server.issuedCertificates.first?.profile == "shortlived")
            let renewalURL = try #require(directory.renewalInfo) + "/" + certID
            let info = try await Curl.request("GET", renewalURL, caBundlePath: server.caBundlePath)
            #expect(info.status == 200)
            #expect(info.headers["retry-after"] == "21600")
            let window = try #require(try json(info)["suggestedWindow"] as? [String: String])
            let formatter = ISO8601DateFormatter()
            let start = try #require(window["start"].flatMap(formatter.date(from:)))
            let end = try #require(window["end"].flatMap(formatter.date(from:)))
            #expect(start > leaf.notValidBefore.addingTimeInterval(60 * 3600))
            #expect(end < leaf.notValidAfter.addingTimeInterval(-60 * 3600))
            #expect(start < end)

            let newStart = Date(timeIntervalSince1970: 1_900_000_000)
            server.setRenewalWindow(certID: certID, start: newStart, end: newStart.addingTimeInterval(3600))
            let updated = try json(try await Curl.request("GET", renewalURL, caBundlePath: server.caBundlePath))
            #expect((updated["suggestedWindow"] as? [String: String])?["start"] == formatter.string(from: newStart))
            let unknown = try await Curl.request("GET", try #require(directory.renewalInfo) + "/AAAA.BBBB",
                                                 caBundlePath: server.caBundlePath)
            #expect(unknown.status == 404)

            // Renewal with `replaces` and the default profile.
            let renewed = try await client.obtainCertificate(dnsNames: ["a.example", "b.example"], replaces: certID)
            let renewedLeaf = try #require(renewed.certificates.first)
            #expect(renewedLeaf.notValidAfter.timeIntervalSince(renewedLeaf.notValidBefore) == 90 * 86400)
            #expect(server.orders.count == 2)
            #expect(server.orders.last?.replaces == certID)
            #expect(server.orders.last?.profile == nil)
            #expect(server.orders.first?.profile == "shortlived")
            #expect(server.orders.first?.identifiers == [.init(type: "dns", value: "a.example"),
                                                         .init(type: "dns", value: "b.example")])

            // Replacing the same certificate twice, and an unknown profile, are refused and recorded.
            await #expect(throws: TestSupportError.self) {
                _ = try await client.obtainCertificate(dnsNames: ["a.example"], replaces: certID)
            }
            #expect(server.orders.last?.rejectedWith == "urn:ietf:params:acme:error:alreadyReplaced")
            await #expect(throws: TestSupportError.self) {
                _ = try await client.obtainCertificate(dnsNames: ["a.example"], profile: "tlsserver")
            }
            #expect(server.orders.last?.rejectedWith == "urn:ietf:params:acme:error:malformed")
            #expect(server.orders.last?.orderURL == nil)

            let revoked = try await client.revoke(renewedLeaf, reason: 1)
            #expect(revoked.status == 200)
            #expect(server.issuedCertificates.last?.revocationReason == 1)
            let twice = try await client.revoke(renewedLeaf)
            #expect(try json(twice)["type"] as? String == "urn:ietf:params:acme:error:alreadyRevoked")
        }
    }

    @Test("a CSR whose names differ from the order is refused with badCSR")
    func csrMismatch() async throws {
        try await withServer { server in
            let client = TestACMEClient(directoryURL: server.directoryURL, caBundlePath: server.caBundlePath)
            try await client.newAccount()
            let created = try await client.post(
                try await client.directory().newOrder,
                payload: #"{"identifiers":[{"type":"dns","value":"a.example"}]}"#)
            #expect(created.status == 201)
            let finalize = try #require(try json(created)["finalize"] as? String)
            let csr = try TestACMEClient.csrDER(dnsNames: ["other.example"], key: P256.Signing.PrivateKey())
            let response = try await client.post(finalize, payload: #"{"csr":"\#(TestJWS.base64url(csr))"}"#)
            #expect(response.status == 400)
            #expect(try json(response)["type"] as? String == "urn:ietf:params:acme:error:badCSR")
            #expect(server.issuedCertificates.isEmpty)
        }
    }

    @Test("fault injection: failNext with Retry-After, badNonceRate, processing orders")
    func faultInjection() async throws {
        try await withServer(.init(processingPolls: 2)) { server in
            let client = TestACMEClient(directoryURL: server.directoryURL, caBundlePath: server.caBundlePath)
            try await client.newAccount()
            let newOrder = try await client.directory().newOrder
            let payload = #"{"identifiers":[{"type":"dns","value":"a.example"}]}"#

            server.failNext(status: 429, problemType: "rateLimited", detail: "too many", retryAfter: 120,
                            endpoint: .newOrder)
            let limited = try await client.post(newOrder, payload: payload)
            #expect(limited.status == 429)
            #expect(limited.headers["retry-after"] == "120")
            #expect(try json(limited)["type"] as? String == "urn:ietf:params:acme:error:rateLimited")
            #expect(try json(limited)["detail"] as? String == "too many")
            #expect(try await client.post(newOrder, payload: payload).status == 201)

            server.failNext(status: 503, problemType: "serverInternal", count: 2)
            #expect(try await client.post(newOrder, payload: payload).status == 503)
            #expect(try await client.post(newOrder, payload: payload).status == 503)
            #expect(try await client.post(newOrder, payload: payload).status == 201)

            // Every nonce rejected: the client gives up after 5 tries with badNonce.
            server.badNonceRate = 1
            let rejected = try await client.post(newOrder, payload: payload)
            #expect(rejected.status == 400)
            #expect(try json(rejected)["type"] as? String == "urn:ietf:params:acme:error:badNonce")
            server.badNonceRate = 0

            // Orders stay "processing" for two polls after finalize; a polling client still gets its certificate.
            let issued = try await client.obtainCertificate(dnsNames: ["a.example"])
            #expect(issued.certificates.count == 2)
            let orderPolls = server.requestLog.filter { $0.path.hasPrefix("/order/") && !$0.path.hasSuffix("/finalize") }
            #expect(orderPolls.count >= 3)
        }
    }
}
