import CertkeeperTestSupport
import Foundation
import Testing

/// End to end against Debian's real Pebble with 20 % nonce rejection and authorization reuse on.
@Suite("Renewal against Pebble", .serialized)
struct PebbleRenewalTests {
    @Test("renew_before at or above the lifetime Pebble gives: one order and one clear error, then renewal at half the lifetime, not a loop")
    func dueAgainAtIssuanceIsNotReordered() async throws {
        try await withPebble(.init(nonceRejectPercent: 0, authzReusePercent: 0, alwaysValid: true, certificateValidityPeriod: 86_400)) { pebble in
            let install = try Installation(
                name: "dueagain", directoryURL: pebble.directoryURL, caBundle: pebble.caBundlePath, http01Port: pebble.httpPort,
                certificatesYAML: """
                  - name: short
                    domains: [short.example.org]
                    renew_before: 2d
                """)
            defer { install.directory.remove() }
            let first = try await install.run(["renew", "--no-random-sleep"])
            #expect(first.exitCode == 1, "\(first.stdout) \(first.stderr)")
            #expect(first.stdout.contains("short: renewed, serial") && first.stdout.contains("due again at once"), "\(first.stdout)")
            #expect(first.stdout.contains("renew_before 2.0 days") && first.stdout.contains("lifetime of 1.0 days"), "\(first.stdout)")
            let errors = first.stderr.split(separator: "\n").filter { $0.contains(" error ") }
            #expect(errors.count == 1, "one error line: \(errors)")
            let serial = try install.serial("short")

            // The next runs find it not due until half its life (12 h here): no second order, and status keeps
            // saying why (exit 1) until renew_before is fixed.
            for _ in 0..<3 {
                let again = try await install.run(["renew", "--no-random-sleep"])
                #expect(again.exitCode == 0, "\(again.stdout) \(again.stderr)")
                #expect(again.stdout.contains("short: not due until"), "\(again.stdout)")
            }
            #expect(try install.serial("short") == serial, "ordered again")
            let versions = try FileManager.default.contentsOfDirectory(atPath: "\(install.stateDirectory)/archive/short").filter { $0.hasPrefix("v") }
            #expect(versions.count == 1, "\(versions)")
            let status = try await install.run(["status"])
            #expect(status.exitCode == 1)
            #expect(status.stdout.contains("due again at once"), "\(status.stdout)")
        }
    }

    @Test("http-01 issue, nothing-due renew, force-renew with hooks, chain verified against Pebble's root")
    func http01Lifecycle() async throws {
        try await withPebble(.init(nonceRejectPercent: 20, authzReusePercent: 50)) { pebble in
            let hookLog = "/tmp/certkeeper-tests/hook-\(UUID().uuidString).env"
            let install = try Installation(
                name: "http01", directoryURL: pebble.directoryURL, caBundle: pebble.caBundlePath, http01Port: pebble.httpPort,
                certificatesYAML: """
                  - name: web
                    domains: [web.example.org, www.example.org]
                """,
                extra: """
                hooks:
                  deploy:
                    - command: "env | grep -E '^(RENEWED_|CERTKEEPER_)' | sort > \(hookLog)"
                """
            )
            defer { install.directory.remove(); try? FileManager.default.removeItem(atPath: hookLog) }

            // First run: nothing installed → issue.
            let first = try await install.run(["renew", "--no-random-sleep"])
            #expect(first.exitCode == 0, "stderr: \(first.stderr)\n\(pebble.logTail())")
            #expect(first.stdout.contains("web: renewed (missing)"))
            let serial1 = try install.serial("web")

            // Layout, modes, and a chain that verifies against Pebble's root from its management API.
            let live = "\(install.stateDirectory)/live/web"
            for file in ["cert.pem", "chain.pem", "fullchain.pem", "privkey.pem", "bundle.pem", "meta.json"] {
                #expect(FileManager.default.fileExists(atPath: "\(live)/\(file)"), "missing \(file)")
            }
            #expect(try mode("\(live)/privkey.pem") == 0o600)
            #expect(try mode("\(live)/bundle.pem") == 0o600)
            let roots = try await pebble.rootPEMs()
            let (verified, output) = try opensslVerify(certPath: "\(live)/cert.pem", chainPath: "\(live)/chain.pem", rootPEM: roots, in: install.directory)
            #expect(verified, "openssl verify: \(output)")
            #expect(try opensslSerial("\(live)/cert.pem").lowercased().hasSuffix(serial1.lowercased().drop(while: { $0 == "0" })))
            let fullchain = try install.live("web", "fullchain.pem")
            #expect(try install.live("web", "bundle.pem") == fullchain + install.live("web", "privkey.pem"))
            #expect(try install.meta("web")["issuedBy"] as? String == "test-node")
            #expect(try await pebble.certStatus(serialHex: serial1).status == "Valid")

            // The deploy hook saw certbot's and certkeeper's variables.
            let env = try String(contentsOfFile: hookLog, encoding: .utf8)
            #expect(env.contains("RENEWED_LINEAGE=\(live)"))
            #expect(env.contains("RENEWED_DOMAINS=web.example.org www.example.org"))
            #expect(env.contains("CERTKEEPER_CERT_NAME=web"))
            #expect(env.contains("CERTKEEPER_SERIAL=\(serial1)"))
            try FileManager.default.removeItem(atPath: hookLog)

            // Second run: a fresh 5-year Pebble certificate is not due; nothing is ordered, no hook runs.
            let second = try await install.run(["renew", "--no-random-sleep"])
            #expect(second.exitCode == 0, "stderr: \(second.stderr)")
            #expect(second.stdout.contains("web: not due until"))
            #expect(try install.serial("web") == serial1)
            #expect(!FileManager.default.fileExists(atPath: hookLog))

            // force-renew: new serial, version 2, hooks run again, the account is reused.
            let forced = try await install.run(["force-renew", "web"])
            #expect(forced.exitCode == 0, "stderr: \(forced.stderr)")
            #expect(forced.stdout.contains("web: renewed (forced)"))
            let serial2 = try install.serial("web")
            #expect(serial2 != serial1)
            #expect(try install.meta("web")["version"] as? Int == 2)
            #expect(!forced.stderr.contains("account registered"))
            #expect(try String(contentsOfFile: hookLog, encoding: .utf8).contains("CERTKEEPER_SERIAL=\(serial2)"))
            let (verified2, output2) = try opensslVerify(certPath: "\(live)/cert.pem", chainPath: "\(live)/chain.pem", rootPEM: roots, in: install.directory)
            #expect(verified2, "openssl verify: \(output2)")

            // status --json reports it.
            let status = try await install.run(["status", "--json"])
            #expect(status.exitCode == 0)
            let rows = try #require(try JSONSerialization.jsonObject(with: Data(status.stdout.utf8)) as? [[String: Any]])
            #expect(rows.first?["serial"] as? String == serial2)
            #expect((rows.first?["days_left"] as? Double ?? 0) > 1000)

            // Revoke: Pebble reports it revoked, and the next renew replaces it.
            let revoked = try await install.run(["revoke", "web", "--reason", "superseded"])
            #expect(revoked.exitCode == 0, "stderr: \(revoked.stderr)")
            #expect(try await pebble.certStatus(serialHex: serial2).status == "Revoked")
            let afterRevoke = try await install.run(["renew", "--no-random-sleep"])
            #expect(afterRevoke.exitCode == 0, "stderr: \(afterRevoke.stderr)")
            #expect(afterRevoke.stdout.contains("web: renewed (revoked)"), "\(afterRevoke.stdout)")
            let serial3 = try install.serial("web")
            #expect(serial3 != serial2)

            // keyCompromise is signed with the certificate's own key; Pebble accepts it.
            let compromised = try await install.run(["revoke", "web", "--reason", "keyCompromise"])
            #expect(compromised.exitCode == 0, "stderr: \(compromised.stderr)")
            let compromisedStatus = try await pebble.certStatus(serialHex: serial3)
            #expect(compromisedStatus.status == "Revoked")
            #expect(compromisedStatus.reason == 1)

            // Changing the configured names (dropping one) or the key type makes the certificate due at once.
            let config = try String(contentsOfFile: install.configPath, encoding: .utf8)
            try config.replacingOccurrences(of: "domains: [web.example.org, www.example.org]", with: "domains: [web.example.org]")
                .write(toFile: install.configPath, atomically: true, encoding: .utf8)
            let narrowed = try await install.run(["renew", "--no-random-sleep"])
            #expect(narrowed.stdout.contains("web: renewed (revoked)") || narrowed.stdout.contains("web: renewed (domainsChanged)"), "\(narrowed.stdout)")
            #expect(try install.meta("web")["domains"] as? [String] == ["web.example.org"])
            try config.replacingOccurrences(of: "domains: [web.example.org, www.example.org]", with: "domains: [web.example.org]\n    key_type: ec384")
                .write(toFile: install.configPath, atomically: true, encoding: .utf8)
            let rekeyed = try await install.run(["renew", "--no-random-sleep"])
            #expect(rekeyed.stdout.contains("web: renewed (keyTypeChanged)"), "\(rekeyed.stdout) \(rekeyed.stderr)")
            #expect(try install.meta("web")["keyType"] as? String == "ec384")
        }
    }

    @Test("dns-01 through a certbot-style hook, wildcard included")
    func dns01() async throws {
        try await withPebble(.init(nonceRejectPercent: 20, authzReusePercent: 50)) { pebble in
            let directory = try TemporaryDirectory(name: "dns-hook")
            defer { directory.remove() }
            // The hook publishes through pebble-challtestsrv's management API, reading only certbot's variable names.
            let hook = try directory.write("""
            #!/bin/sh
            set -eu
            api=\(pebble.challtestsrvManagementURL)
            case "$1" in
              present) curl -sf -X POST -d "{\\"host\\":\\"_acme-challenge.$CERTBOT_DOMAIN.\\",\\"value\\":\\"$CERTBOT_VALIDATION\\"}" "$api/set-txt" ;;
              cleanup) curl -sf -X POST -d "{\\"host\\":\\"_acme-challenge.$CERTBOT_DOMAIN.\\"}" "$api/clear-txt" ;;
            esac
            echo "$1 $CERTBOT_DOMAIN $CERTBOT_TOKEN" >> \(directory.appending("calls.log"))
            """, to: "dns-hook.sh")
            chmod(hook, 0o755)
            let install = try Installation(
                name: "dns01", directoryURL: pebble.directoryURL, caBundle: pebble.caBundlePath, http01Port: pebble.httpPort,
                certificatesYAML: """
                  - name: wild
                    domains: ["*.wild.example.org"]
                    key_type: ec384
                    challenge: {type: dns-01, hook: \(hook)}
                  - name: rsa
                    domains: [rsa.example.org]
                    key_type: rsa2048
                    challenge: {type: dns-01, hook: \(hook)}
                """
            )
            defer { install.directory.remove() }
            let result = try await install.run(["renew", "--no-random-sleep"])
            try #require(result.exitCode == 0, "stdout: \(result.stdout)\nstderr: \(result.stderr)\n\(pebble.logTail())")
            let wild = try install.meta("wild")
            #expect(wild["domains"] as? [String] == ["*.wild.example.org"])
            #expect(wild["keyType"] as? String == "ec384")
            #expect(try install.meta("rsa")["keyType"] as? String == "rsa2048")
            let calls = try String(contentsOfFile: directory.appending("calls.log"), encoding: .utf8)
            #expect(calls.contains("present wild.example.org"))
            #expect(calls.contains("cleanup wild.example.org"))
            let roots = try await pebble.rootPEMs()
            let live = "\(install.stateDirectory)/live/wild"
            let (verified, output) = try opensslVerify(certPath: "\(live)/cert.pem", chainPath: "\(live)/chain.pem", rootPEM: roots, in: install.directory)
            #expect(verified, "openssl verify: \(output)")
            let rsaLive = "\(install.stateDirectory)/live/rsa"
            let (rsaVerified, rsaOutput) = try opensslVerify(certPath: "\(rsaLive)/cert.pem", chainPath: "\(rsaLive)/chain.pem", rootPEM: roots, in: install.directory)
            #expect(rsaVerified, "openssl verify: \(rsaOutput)")
        }
    }

    @Test("http-01 through a webroot served by another web server")
    func webroot() async throws {
        try await withPebble(.init(nonceRejectPercent: 20, authzReusePercent: 0)) { pebble in
            let webroot = try TemporaryDirectory(name: "webroot")
            defer { webroot.remove() }
            let server = try await StaticFileServer.start(rootDirectory: webroot.path, port: pebble.httpPort)
            do {
                let install = try Installation(
                    name: "webroot", directoryURL: pebble.directoryURL, caBundle: pebble.caBundlePath, http01Port: pebble.httpPort,
                    certificatesYAML: """
                      - name: site
                        domains: [site.example.org]
                        key_type: rsa2048
                        challenge: {type: http-01, webroot: \(webroot.path)}
                    """
                )
                defer { install.directory.remove() }
                let result = try await install.run(["renew", "--no-random-sleep"])
                #expect(result.exitCode == 0, "stderr: \(result.stderr)\n\(pebble.logTail())")
                // Pebble fetched the token from the other server, and certkeeper removed the file afterwards.
                #expect(server.requests.contains { $0.path.hasPrefix("/.well-known/acme-challenge/") && $0.status == 200 })
                let left = (try? FileManager.default.contentsOfDirectory(atPath: webroot.appending(".well-known/acme-challenge"))) ?? []
                #expect(left.isEmpty, "token files left behind: \(left)")
                let live = "\(install.stateDirectory)/live/site"
                let (verified, output) = try opensslVerify(certPath: "\(live)/cert.pem", chainPath: "\(live)/chain.pem", rootPEM: try await pebble.rootPEMs(), in: install.directory)
                #expect(verified, "openssl verify: \(output)")
                await server.stop()
            } catch {
                await server.stop()
                throw error
            }
        }
    }

    @Test("two overlapping renew runs order once")
    func overlappingRunsOrderOnce() async throws {
        try await withPebble(.init(nonceRejectPercent: 20, authzReusePercent: 0)) { pebble in
            let install = try Installation(
                name: "lock", directoryURL: pebble.directoryURL, caBundle: pebble.caBundlePath, http01Port: pebble.httpPort,
                certificatesYAML: "  - {name: once, domains: [once.example.org]}"
            )
            defer { install.directory.remove() }
            async let a = install.run(["renew", "--no-random-sleep"])
            async let b = install.run(["renew", "--no-random-sleep"])
            let (ra, rb) = try await (a, b)
            #expect(ra.exitCode == 0, "a: \(ra.stderr)")
            #expect(rb.exitCode == 0, "b: \(rb.stderr)")
            let renewedCount = [ra.stdout, rb.stdout].filter { $0.contains("once: renewed") }.count
            #expect(renewedCount == 1, "a: \(ra.stdout) b: \(rb.stdout)")
            #expect(try install.meta("once")["version"] as? Int == 1)
        }
    }
}
