import CertkeeperTestSupport
import Foundation
import Testing

/// `certkeeper import certbot` on a lineage made by Debian's real certbot against Pebble, then renewed by certkeeper
/// with certbot's account.
@Suite("Import from certbot", .serialized)
struct CertbotImportEndToEndTests {
    static let certbot = "/usr/bin/certbot"

    @Test("certbot's lineage and account move over without reissuing; force-renew then uses certbot's account")
    func realCertbotLineage() async throws {
        try #require(FileManager.default.isExecutableFile(atPath: Self.certbot), "certbot is not installed: apt-get install certbot")
        // No nonce rejection: certbot retries a badNonce only once, and this test is about the import, not about nonces.
        // No authorization reuse: the renewal must really answer http-01 with certkeeper's responder.
        try await withPebble(.init(nonceRejectPercent: 0, authzReusePercent: 0)) { pebble in
            let work = try TemporaryDirectory(name: "certbot-import")
            defer { work.remove() }
            let letsencrypt = work.appending("letsencrypt")
            let issued = try await OneShotProcess.run(
                executable: Self.certbot,
                arguments: [
                    "certonly", "--standalone", "--http-01-port", "\(pebble.httpPort)", "--server", pebble.directoryURL,
                    "--config-dir", letsencrypt, "--work-dir", work.appending("work"), "--logs-dir", work.appending("logs"),
                    "--agree-tos", "-m", "ops@example.org", "--no-eff-email", "--non-interactive",
                    "-d", "web.example.org", "-d", "www.example.org",
                ],
                environment: ["REQUESTS_CA_BUNDLE": pebble.caBundlePath], timeout: 120)
            try #require(issued.exitCode == 0, "certbot failed:\n\(issued.stdout)\n\(issued.stderr)\n\(pebble.logTail())")
            let certbotLive = "\(letsencrypt)/live/web.example.org"
            let certbotSerial = normalised(try opensslSerial("\(certbotLive)/cert.pem"))
            let accountURL = try Self.certbotAccountURL(letsencrypt)

            let install = try Installation(
                name: "certbot-import-config", directoryURL: pebble.directoryURL, caBundle: pebble.caBundlePath,
                http01Port: pebble.httpPort, certificatesYAML: "  []")
            defer { install.directory.remove() }

            // --dry-run checks and reports, writes nothing.
            let dry = try await install.run(["import", "certbot", letsencrypt, "--dry-run"])
            #expect(dry.exitCode == 0, "stdout: \(dry.stdout)\nstderr: \(dry.stderr)")
            // Serials compare as numbers: certkeeper prints whole bytes ("08d4…"), normalised() drops leading zeros.
            func printedSerial(_ output: String, after prefix: String) -> String? {
                guard let range = output.range(of: prefix) else { return nil }
                return normalised(String(output[range.upperBound...].prefix { $0.isHexDigit }))
            }
            #expect(printedSerial(dry.stdout, after: "web.example.org: would import serial ") == certbotSerial, "\(dry.stdout)")
            #expect(!FileManager.default.fileExists(atPath: "\(install.stateDirectory)/live/web.example.org"))

            let imported = try await install.run(["import", "certbot", letsencrypt])
            try #require(imported.exitCode == 0, "stdout: \(imported.stdout)\nstderr: \(imported.stderr)")
            #expect(printedSerial(imported.stdout, after: "web.example.org: imported serial ") == certbotSerial, "\(imported.stdout)")
            #expect(imported.stdout.contains("account \(pebble.directoryURL): imported certbot account"), "\(imported.stdout)")
            #expect(!imported.stdout.contains("PRIVATE KEY") && !imported.stderr.contains("PRIVATE KEY"))

            // The store serves certbot's certificate and key, and holds certbot's account URL.
            #expect(normalised(try install.serial("web.example.org")) == certbotSerial)
            #expect(try install.live("web.example.org", "privkey.pem") == String(contentsOfFile: "\(certbotLive)/privkey.pem", encoding: .utf8))
            #expect(try mode("\(install.stateDirectory)/live/web.example.org/privkey.pem") == 0o600)
            #expect(try Self.storedAccountURL(install.stateDirectory) == accountURL)
            let (verified, output) = try opensslVerify(
                certPath: "\(install.stateDirectory)/live/web.example.org/cert.pem",
                chainPath: "\(install.stateDirectory)/live/web.example.org/chain.pem",
                rootPEM: try await pebble.rootPEMs(), in: install.directory)
            #expect(verified, "openssl verify: \(output)")

            // The suggested entry goes into the configuration as printed; with it nothing is due.
            let snippet = try #require(imported.stdout.range(of: "\ncertificates:\n").map { String(imported.stdout[$0.upperBound...]) })
            #expect(snippet.contains("challenge: {type: http-01, listen: \"0.0.0.0:\(pebble.httpPort)\"}"), "\(snippet)")
            let config = try String(contentsOfFile: install.configPath, encoding: .utf8)
            try config.replacingOccurrences(of: "certificates:\n  []", with: "certificates:\n" + snippet)
                .write(toFile: install.configPath, atomically: true, encoding: .utf8)
            let check = try await install.run(["check-config"])
            #expect(check.exitCode == 0, "\(check.stderr)\n\(snippet)")
            let renew = try await install.run(["renew", "--no-random-sleep"])
            #expect(renew.exitCode == 0, "\(renew.stderr)")
            #expect(renew.stdout.contains("web.example.org: not due until"), "\(renew.stdout)")

            // Importing again changes nothing.
            let again = try await install.run(["import", "certbot", letsencrypt])
            #expect(again.exitCode == 0)
            #expect(again.stdout.contains("web.example.org: unchanged"), "\(again.stdout)")
            #expect(again.stdout.contains("account \(pebble.directoryURL): unchanged"), "\(again.stdout)")

            // force-renew orders with certbot's account: no registration, the same account URL, a newer certificate.
            let forced = try await install.run(["force-renew", "web.example.org"])
            #expect(forced.exitCode == 0, "stdout: \(forced.stdout)\nstderr: \(forced.stderr)\n\(pebble.logTail())")
            #expect(forced.stdout.contains("web.example.org: renewed (forced)"), "\(forced.stdout)")
            #expect(!forced.stderr.contains("account registered"), "\(forced.stderr)")
            let renewedSerial = normalised(try install.serial("web.example.org"))
            #expect(renewedSerial != certbotSerial)
            #expect(try install.meta("web.example.org")["version"] as? Int == 2)
            #expect(try Self.storedAccountURL(install.stateDirectory) == accountURL)
            let pebbleLog = try String(contentsOfFile: pebble.directory.appending("pebble.log"), encoding: .utf8)
            #expect(pebbleLog.contains("There are now 1 accounts in memory"))
            #expect(!pebbleLog.contains("There are now 2 accounts in memory"), "Pebble registered a second account")
            #expect(try await pebble.certStatus(serialHex: renewedSerial).status == "Valid")

            // certbot's directory is untouched: its live certificate is still the one it issued.
            #expect(normalised(try opensslSerial("\(certbotLive)/cert.pem")) == certbotSerial)
        }
    }

    @Test("a missing or broken certbot directory: exit 2, one line naming the file, nothing written")
    func brokenDirectory() async throws {
        let install = try Installation(
            name: "certbot-import-broken", directoryURL: "https://127.0.0.1:9/dir", caBundle: "/dev/null", http01Port: 9,
            certificatesYAML: "  []")
        defer { install.directory.remove() }
        let missing = try await install.run(["import", "certbot", install.directory.appending("nope")])
        #expect(missing.exitCode == 2)
        #expect(missing.stderr.contains("certkeeper: \(install.directory.appending("nope")): no such directory"), "\(missing.stderr)")

        let renewal = install.directory.appending("letsencrypt/renewal")
        try FileManager.default.createDirectory(atPath: renewal, withIntermediateDirectories: true)
        try "cert = /x\n[renewalparams\n".write(toFile: "\(renewal)/web.conf", atomically: true, encoding: .utf8)
        let broken = try await install.run(["import", "certbot", install.directory.appending("letsencrypt")])
        #expect(broken.exitCode == 2)
        #expect(broken.stderr.contains("certkeeper: \(renewal)/web.conf: line 2: section header"), "\(broken.stderr)")
        #expect(broken.stderr.contains("nothing was imported"))
        #expect(!FileManager.default.fileExists(atPath: "\(install.stateDirectory)/live"))
    }

    /// The account URL in certbot's only `regr.json`.
    static func certbotAccountURL(_ letsencrypt: String) throws -> String {
        let accounts = "\(letsencrypt)/accounts"
        let enumerator = try #require(FileManager.default.enumerator(atPath: accounts))
        let regr = try #require((enumerator.allObjects as? [String])?.first { $0.hasSuffix("/regr.json") })
        let json = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: "\(accounts)/\(regr)")))
        return try #require((json as? [String: Any])?["uri"] as? String)
    }

    /// The account URL in certkeeper's only `accounts/*/account.json`.
    static func storedAccountURL(_ stateDirectory: String) throws -> String {
        let accounts = "\(stateDirectory)/accounts"
        let directories = try FileManager.default.contentsOfDirectory(atPath: accounts)
        try #require(directories.count == 1, "\(directories)")
        let json = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: "\(accounts)/\(directories[0])/account.json")))
        return try #require((json as? [String: Any])?["accountURL"] as? String)
    }
}
