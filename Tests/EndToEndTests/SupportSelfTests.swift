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
            RFC5280Policy(validationTime: Date())
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
        #expect(waited < .seconds(3))
        let stopTime = await clock.measure { await stubborn.stop(gracePeriod: 0.5) }
        #expect(!stubborn.isRunning)
        #expect(stopTime < .seconds(5))
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

        let clock = ContinuousClock()
        let elapsed = await clock.measure {
            await #expect(throws: TestSupportError.self) {
                _ = try await OneShotProcess.run(executable: "/bin/sleep", arguments: ["30"], timeout: 0.5)
            }
        }
        #expect(elapsed < .seconds(5))
    }

    @Test("CLI finds the built certkeeper executable next to the test binary and runs it")
    func cliRunsExecutable() async throws {
        let path = try CLI.executablePath()
        #expect(path.hasSuffix("/certkeeper"))
        let result = try await CLI.run(["--help"], timeout: 30)
        #expect(result.exitCode == 0, "stderr: \(result.stderr)")
        #expect((result.stdout + result.stderr).contains("certkeeper"))
    }
}
