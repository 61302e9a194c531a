import ACMEProtocol
import CertkeeperTestSupport
import Foundation
import Testing
import X509

/// End to end against the in-process ``FakeACMEServer``: what Pebble 2.4 lacks (ARI, `replaces`, profiles) and the
/// CA's failure modes (500, 429 with Retry-After, a storm of `badNonce`), with the real `certkeeper` binary.
@Suite("Renewal against the fake ACME server", .serialized)
struct FakeACMETests {
    // MARK: ARI

    @Test("ARI: the suggested window decides, answers are cached, and the new order names the old certID in 'replaces'")
    func ariWindowAndReplaces() async throws {
        try await withFakeACME { fake in
            let install = try fakeInstallation("ari", fake, certificatesYAML: "  - {name: web, domains: [ari.example.org, www.ari.example.org]}")
            defer { install.directory.remove() }

            let first = try await install.run(["renew", "--no-random-sleep"])
            try #require(first.exitCode == 0, "stdout: \(first.stdout)\nstderr: \(first.stderr)")
            #expect(first.stdout.contains("web: renewed (missing)"), "\(first.stdout)")
            let meta1 = try install.meta("web")
            let certID1 = try #require(meta1["ariCertID"] as? String)
            let issued1 = try #require(fake.issuedCertificates.last)
            let serial1 = try install.serial("web")
            #expect(try rfc9773CertID(pem: install.live("web", "cert.pem")) == certID1)
            #expect(try FakeACMEServer.certID(of: issued1.certificate) == certID1, "serial \(serial1)")
            #expect(issued1.certID == certID1)
            #expect(fake.orders.count == 1)
            #expect(fake.orders.first?.replaces == nil)

            // Right after issuance the ARI answer is not stale: no network, not due (lifetime rule until polled).
            let logBefore = fake.requestLog.count
            let second = try await install.run(["renew", "--no-random-sleep"])
            #expect(second.exitCode == 0, "stderr: \(second.stderr)")
            #expect(second.stdout.contains("web: not due until"), "\(second.stdout)")
            #expect(fake.requestLog.count == logBefore, "a run with nothing due and a fresh ARI answer talked to the CA")

            // Make the cached answer stale: certkeeper asks ARI and gets the default window, 45–55 % of the lifetime.
            // It renews at a stable point inside the window (RFC 9773 §4.2 asks clients to spread out).
            try expireARICache(install, "web")
            let third = try await install.run(["renew", "--no-random-sleep"])
            #expect(third.exitCode == 0, "stderr: \(third.stderr)")
            let notBefore1 = try #require(isoDate(meta1["notBefore"]))
            let lifetime1 = try #require(isoDate(meta1["notAfter"])).timeIntervalSince(notBefore1)
            let defaultWindow = notBefore1.addingTimeInterval(lifetime1 * 0.45)...notBefore1.addingTimeInterval(lifetime1 * 0.55)
            let plannedInDefault = try #require(notDueUntil(third.stdout, "web"), "\(third.stdout)")
            #expect(within(plannedInDefault, defaultWindow), "\(plannedInDefault) is not in ARI's window \(defaultWindow)")
            #expect(ariRequests(fake, certID: certID1) == 1, "\(fake.requestLog.suffix(5))")
            // The answer and the next poll (Retry-After 21600 s) are cached.
            let ari = try #require(try stateRecord(install, "web")["ari"] as? [String: Any])
            #expect(ari["certID"] as? String == certID1)
            let nextPoll = try #require(isoDate(ari["nextPoll"]))
            #expect(nextPoll.timeIntervalSinceNow > 21_600 - 120 && nextPoll.timeIntervalSinceNow <= 21_600 + 5, "nextPoll \(nextPoll)")
            #expect(fake.orders.count == 1)

            // The CA moves the window into the past (as after an incident); while the cached answer is fresh,
            // certkeeper does not know yet and keeps the same planned time.
            let now = wholeSeconds(Date())
            fake.setRenewalWindow(certID: certID1, start: now.addingTimeInterval(-7200), end: now.addingTimeInterval(-60))
            let cached = try await install.run(["renew", "--no-random-sleep"])
            #expect(cached.exitCode == 0, "stderr: \(cached.stderr)")
            #expect(notDueUntil(cached.stdout, "web") == plannedInDefault, "\(cached.stdout)")
            #expect(ariRequests(fake, certID: certID1) == 1)
            #expect(fake.orders.count == 1)

            // Once the cache is stale, the open window renews it, replacing the old certificate.
            try expireARICache(install, "web")
            let fourth = try await install.run(["renew", "--no-random-sleep"])
            #expect(fourth.exitCode == 0, "stderr: \(fourth.stderr)")
            #expect(fourth.stdout.contains("web: renewed (suggestedWindowOpen)"), "\(fourth.stdout)")
            #expect(ariRequests(fake, certID: certID1) == 2)
            try #require(fake.orders.count == 2, "orders: \(fake.orders)")
            let order = fake.orders[1]
            #expect(order.replaces == certID1)
            #expect(order.rejectedWith == nil)
            #expect(Set(order.identifiers.map(\.value)) == ["ari.example.org", "www.ari.example.org"])
            let issued2 = try #require(fake.issuedCertificates.last)
            #expect(issued2.replaces == certID1)
            let meta2 = try install.meta("web")
            #expect(meta2["version"] as? Int == 2)
            let certID2 = try #require(meta2["ariCertID"] as? String)
            #expect(certID2 != certID1)
            let serial2 = try install.serial("web")
            #expect(try rfc9773CertID(pem: install.live("web", "cert.pem")) == certID2)
            #expect(try FakeACMEServer.certID(of: issued2.certificate) == certID2, "serial \(serial2)")

            // A window in the future keeps the new certificate not due, until a point inside that window.
            let futureStart = wholeSeconds(Date()).addingTimeInterval(10 * 86_400)
            let futureWindow = futureStart...futureStart.addingTimeInterval(86_400)
            fake.setRenewalWindow(certID: certID2, start: futureWindow.lowerBound, end: futureWindow.upperBound)
            try expireARICache(install, "web")
            let fifth = try await install.run(["renew", "--no-random-sleep"])
            #expect(fifth.exitCode == 0, "stderr: \(fifth.stderr)")
            let planned = try #require(notDueUntil(fifth.stdout, "web"), "\(fifth.stdout)")
            #expect(within(planned, futureWindow), "\(planned) is not in ARI's window \(futureWindow)")
            #expect(ariRequests(fake, certID: certID2) == 1)
            #expect(fake.orders.count == 2)
            #expect(try install.meta("web")["version"] as? Int == 2)

            // The point is stable: another poll gives the same time, and status (store only) agrees.
            try expireARICache(install, "web")
            let sixth = try await install.run(["renew", "--no-random-sleep"])
            #expect(sixth.exitCode == 0, "stderr: \(sixth.stderr)")
            #expect(notDueUntil(sixth.stdout, "web") == planned, "\(sixth.stdout)")
            #expect(ariRequests(fake, certID: certID2) == 2)
            let status = try await install.run(["status", "--json"])
            #expect(status.exitCode == 0, "stderr: \(status.stderr)")
            let row = try #require(try statusRows(status.stdout).first)
            let statusNext = try #require(isoDate(row["next_renewal"]), "\(status.stdout)")
            #expect(abs(statusNext.timeIntervalSince(planned)) < 1, "status \(statusNext), renew \(planned)")
            #expect(row["reason"] as? String == "suggestedWindowOpen")
            #expect(fake.orders.count == 2)
        }
    }

    @Test("alreadyReplaced: a second node replacing the same certificate orders again without 'replaces'")
    func alreadyReplacedRetriesWithoutReplaces() async throws {
        try await withFakeACME { fake in
            let yaml = "  - {name: web, domains: [replaced.example.org]}"
            let nodeA = try fakeInstallation("replaced-a", fake, certificatesYAML: yaml)
            defer { nodeA.directory.remove() }
            let issued = try await nodeA.run(["renew", "--no-random-sleep"])
            try #require(issued.exitCode == 0, "stderr: \(issued.stderr)")
            let certIDA = try #require(try nodeA.meta("web")["ariCertID"] as? String)

            // Node B starts from a copy of A's store (same account, same live certificate), e.g. a restored backup.
            let copy = nodeA.directory.appending("state-copy")
            let copied = try tool("/bin/cp", ["-a", nodeA.stateDirectory, copy])
            try #require(copied.status == 0, "cp: \(copied.output)")
            let nodeB = try fakeInstallation("replaced-b", fake, certificatesYAML: yaml, stateDirectory: copy)
            defer { nodeB.directory.remove() }

            // A replaces the certificate first.
            let forced = try await nodeA.run(["force-renew", "web"])
            try #require(forced.exitCode == 0, "stderr: \(forced.stderr)")
            #expect(fake.orders.last?.replaces == certIDA)
            let ordersBefore = fake.orders.count

            // B sees the window (already over) and orders with replaces = A's old certID: 409 alreadyReplaced, then a plain order.
            let now = wholeSeconds(Date())
            fake.setRenewalWindow(certID: certIDA, start: now.addingTimeInterval(-7200), end: now.addingTimeInterval(-60))
            try expireARICache(nodeB, "web")
            let result = try await nodeB.run(["renew", "--no-random-sleep"])
            #expect(result.exitCode == 0, "stdout: \(result.stdout)\nstderr: \(result.stderr)")
            #expect(result.stdout.contains("web: renewed (suggestedWindowOpen)"), "\(result.stdout)")
            let orders = Array(fake.orders.dropFirst(ordersBefore))
            try #require(orders.count == 2, "orders: \(orders)")
            #expect(orders[0].replaces == certIDA)
            #expect(orders[0].rejectedWith == "urn:ietf:params:acme:error:alreadyReplaced")
            #expect(orders[0].orderURL == nil)
            #expect(orders[1].replaces == nil)
            #expect(orders[1].rejectedWith == nil)
            #expect(orders[1].orderURL != nil)
            #expect(result.stderr.contains("alreadyReplaced"), "\(result.stderr)")
            #expect(try Certificate(pemEncoded: nodeB.live("web", "cert.pem")) == fake.issuedCertificates.last?.certificate)
            #expect(try nodeB.meta("web")["version"] as? Int == 2)
        }
    }

    // MARK: Profiles

    @Test("profiles: acme.profile and a per-certificate profile request 'shortlived' (160 h, renewed at half); an unknown one fails before ordering")
    func profiles() async throws {
        try await withFakeACME { fake in
            // acme.profile for every certificate; one certificate overrides it.
            let global = try fakeInstallation("profile-global", fake, certificatesYAML: """
              - {name: short, domains: [short.example.org]}
              - {name: classic, domains: [classic.example.org], profile: classic}
            """, acmeProfile: "shortlived")
            defer { global.directory.remove() }
            let run = try await global.run(["renew", "--no-random-sleep"])
            #expect(run.exitCode == 0, "stdout: \(run.stdout)\nstderr: \(run.stderr)")
            #expect(profileOrdered(fake, domain: "short.example.org") == "shortlived")
            #expect(profileOrdered(fake, domain: "classic.example.org") == "classic")
            try expectLifetime(global, "short", hours: 160)
            try expectLifetime(global, "classic", hours: 90 * 24)

            // A per-certificate profile without acme.profile; a certificate without any sends none (CA default).
            let perCertificate = try fakeInstallation("profile-cert", fake, certificatesYAML: """
              - {name: short, domains: [percert.example.org], profile: shortlived}
              - {name: plain, domains: [plain.example.org]}
            """)
            defer { perCertificate.directory.remove() }
            let run2 = try await perCertificate.run(["renew", "--no-random-sleep"])
            #expect(run2.exitCode == 0, "stdout: \(run2.stdout)\nstderr: \(run2.stderr)")
            #expect(profileOrdered(fake, domain: "percert.example.org") == "shortlived")
            let plainOrder = fake.orders.first { $0.identifiers.map(\.value) == ["plain.example.org"] }
            #expect(plainOrder != nil && plainOrder?.profile == nil)
            try expectLifetime(perCertificate, "short", hours: 160)
            try expectLifetime(perCertificate, "plain", hours: 90 * 24)

            // Under 10 days of lifetime, the backstop renews at half the lifetime; 90 days at two thirds.
            let status = try await perCertificate.run(["status", "--json"])
            #expect(status.exitCode == 0, "stderr: \(status.stderr)")
            let rows = try statusRows(status.stdout)
            let short = try #require(rows.first { $0["name"] as? String == "short" })
            let shortMeta = try perCertificate.meta("short")
            let shortNotBefore = try #require(isoDate(shortMeta["notBefore"]))
            let shortNext = try #require(isoDate(short["next_renewal"]))
            #expect(abs(shortNext.timeIntervalSince(shortNotBefore) - 80 * 3600) <= 1, "next_renewal \(shortNext), notBefore \(shortNotBefore)")
            #expect(short["reason"] as? String == "lifetimeFraction")
            let plain = try #require(rows.first { $0["name"] as? String == "plain" })
            let plainNotBefore = try #require(isoDate(try perCertificate.meta("plain")["notBefore"]))
            let plainNext = try #require(isoDate(plain["next_renewal"]))
            #expect(abs(plainNext.timeIntervalSince(plainNotBefore) - 60 * 86_400) <= 1, "next_renewal \(plainNext)")

            // An unknown profile: exit 1, the line names it and what the CA offers, and no order is sent.
            let unknown = try fakeInstallation("profile-unknown", fake, certificatesYAML: """
              - {name: odd, domains: [odd.example.org], profile: nosuch}
            """)
            defer { unknown.directory.remove() }
            let ordersBefore = fake.orders.count
            let logBefore = fake.requestLog.count
            let failed = try await unknown.run(["renew", "--no-random-sleep"])
            #expect(failed.exitCode == 1, "stdout: \(failed.stdout)\nstderr: \(failed.stderr)")
            let line = try #require(failed.stdout.split(separator: "\n").first { $0.hasPrefix("odd:") }, "\(failed.stdout)")
            #expect(line.contains("FAILED"))
            #expect(line.contains("nosuch"), "\(line)")
            #expect(line.contains("classic") && line.contains("shortlived"), "\(line)")
            let errorLines = failed.stderr.split(separator: "\n").filter { $0.contains(" error ") }
            #expect(errorLines.count == 1, "\(failed.stderr)")
            #expect(errorLines.first.map { $0.contains("nosuch") && $0.contains("shortlived") } == true, "\(failed.stderr)")
            #expect(fake.orders.count == ordersBefore)
            #expect(!fake.requestLog.dropFirst(logBefore).contains { $0.path == "/new-order" })
            #expect(!FileManager.default.fileExists(atPath: "\(unknown.stateDirectory)/live/odd"))
        }
    }

    // MARK: CA failures

    @Test("CA answers 500 serverInternal on newOrder: exit 1, one error line, live untouched, back-off with 1 failure")
    func serverInternalKeepsLive() async throws {
        try await withFakeACME { fake in
            let install = try fakeInstallation("fake500", fake, certificatesYAML: "  - {name: web, domains: [five.example.org]}")
            defer { install.directory.remove() }
            let first = try await install.run(["renew", "--no-random-sleep"])
            try #require(first.exitCode == 0, "stderr: \(first.stderr)")
            let before = try liveSnapshot(install, "web")
            try #require(before.count >= 6, "live files: \(before.keys.sorted())")

            fake.failNext(status: 500, problemType: "serverInternal", detail: "the CA is having a bad day", endpoint: .newOrder)
            let failed = try await install.run(["force-renew", "web"])
            #expect(failed.exitCode == 1, "stdout: \(failed.stdout)\nstderr: \(failed.stderr)")
            let errorLines = failed.stderr.split(separator: "\n").filter { $0.hasPrefix("certkeeper:") || $0.contains(" error ") }
            #expect(errorLines.count == 1, "\(failed.stderr)")
            #expect(errorLines.first?.contains("serverInternal") == true, "\(failed.stderr)")
            let summary = failed.stdout.split(separator: "\n").filter { $0.hasPrefix("web:") }
            #expect(summary.count == 1 && summary[0].contains("FAILED") && summary[0].contains("serverInternal"), "\(failed.stdout)")
            #expect(fake.requestLog.contains { $0.path == "/new-order" && $0.status == 500 })
            #expect(fake.issuedCertificates.count == 1)

            #expect(try liveSnapshot(install, "web") == before)
            let backoff = try #require(try stateRecord(install, "web")["backoff"] as? [String: Any])
            #expect(backoff["failures"] as? Int == 1)
            #expect((backoff["lastError"] as? String)?.contains("serverInternal") == true, "\(backoff)")
            let nextAttempt = try #require(isoDate(backoff["nextAttempt"]))
            #expect(nextAttempt > Date(), "nextAttempt \(nextAttempt)")
        }
    }

    @Test("429 rateLimited with Retry-After 3600: backed off for an hour without asking the CA; force-renew clears it")
    func rateLimitedBacksOff() async throws {
        try await withFakeACME { fake in
            let install = try fakeInstallation("fake429", fake, certificatesYAML: "  - {name: web, domains: [limited.example.org]}")
            defer { install.directory.remove() }

            fake.failNext(status: 429, problemType: "rateLimited", detail: "too many certificates for this name",
                          retryAfter: 3600, endpoint: .newOrder)
            let started = Date()
            let failed = try await install.run(["renew", "--no-random-sleep"])
            #expect(failed.exitCode == 1, "stdout: \(failed.stdout)\nstderr: \(failed.stderr)")
            #expect(failed.stdout.contains("web: FAILED"), "\(failed.stdout)")
            #expect(fake.requestLog.contains { $0.path == "/new-order" && $0.status == 429 })
            #expect(!FileManager.default.fileExists(atPath: "\(install.stateDirectory)/live/web"))

            let status = try await install.run(["status", "--json"])
            #expect(status.exitCode == 1, "a certificate with a last error makes status exit 1; stderr: \(status.stderr)")
            let row = try #require(try statusRows(status.stdout).first)
            let next = try #require(isoDate(row["next_renewal"]), "\(status.stdout)")
            #expect(next.timeIntervalSince(started) >= 3500, "next_renewal \(next) is not an hour out")
            #expect((row["last_error"] as? String)?.contains("rateLimited") == true, "\(status.stdout)")

            // A plain renew waits out the back-off without a single request to the CA.
            let logBefore = fake.requestLog.count
            let waiting = try await install.run(["renew", "--no-random-sleep"])
            #expect(waiting.exitCode == 1, "stdout: \(waiting.stdout)\nstderr: \(waiting.stderr)")
            #expect(waiting.stdout.contains("web: due, backing off until"), "\(waiting.stdout)")
            #expect(fake.requestLog.count == logBefore, "requests while backing off: \(fake.requestLog.dropFirst(logBefore))")

            // force-renew ignores the back-off, succeeds, and clears it.
            let forced = try await install.run(["force-renew", "web"])
            #expect(forced.exitCode == 0, "stdout: \(forced.stdout)\nstderr: \(forced.stderr)")
            #expect(forced.stdout.contains("web: renewed (forced)"), "\(forced.stdout)")
            let after = try await install.run(["status", "--json"])
            #expect(after.exitCode == 0, "stdout: \(after.stdout)\nstderr: \(after.stderr)")
            let afterRow = try #require(try statusRows(after.stdout).first)
            #expect(afterRow["last_error"] == nil, "\(after.stdout)")
            #expect(try stateRecord(install, "web")["backoff"] == nil)
        }
    }

    @Test("a badNonce storm (half of all nonces rejected) is retried transparently")
    func badNonceStorm() async throws {
        try await withFakeACME { fake in
            fake.badNonceRate = 0.3
            let install = try fakeInstallation("badnonce", fake, certificatesYAML: """
              - {name: one, domains: [one.example.org, www.one.example.org]}
              - {name: two, domains: [two.example.org]}
              - {name: three, domains: [three.example.org]}
            """)
            defer { install.directory.remove() }
            let result = try await install.run(["renew", "--no-random-sleep"])
            #expect(result.exitCode == 0, "stdout: \(result.stdout)\nstderr: \(result.stderr)")
            for name in ["one", "two", "three"] {
                #expect(result.stdout.contains("\(name): renewed (missing)"), "\(result.stdout)")
            }
            #expect(fake.issuedCertificates.count == 3)
            // The storm really happened: some POSTs were answered 400 (badNonce is the only 400 in this run).
            let rejected = fake.requestLog.filter { $0.method == "POST" && $0.status == 400 }.count
            #expect(rejected > 0, "no nonce was rejected; the test proved nothing")
        }
    }

    @Test("a first run with several certificates registers the account once")
    func oneAccountRegistration() async throws {
        try await withFakeACME { fake in
            let install = try fakeInstallation("oneaccount", fake, certificatesYAML: """
              - {name: a, domains: [a.example.org]}
              - {name: b, domains: [b.example.org]}
              - {name: c, domains: [c.example.org]}
              - {name: d, domains: [d.example.org]}
            """)
            defer { install.directory.remove() }
            let result = try await install.run(["renew", "--no-random-sleep"])
            #expect(result.exitCode == 0, "stdout: \(result.stdout)\nstderr: \(result.stderr)")
            #expect(fake.issuedCertificates.count == 4)
            let registrations = fake.requestLog.filter { $0.path == "/new-account" }
            #expect(registrations.count == 1, "newAccount requests: \(registrations)")
            let logged = result.stderr.split(separator: "\n").filter { $0.contains("ACME account registered") }
            #expect(logged.count == 1, "\(result.stderr)")
            #expect(Set(fake.orders.map(\.account)).count == 1)
        }
    }

    // MARK: Revocation

    @Test("revoke: the fake CA records the revocation and the next renew replaces the certificate")
    func revokeThenRenew() async throws {
        try await withFakeACME { fake in
            let install = try fakeInstallation("fakerevoke", fake, certificatesYAML: "  - {name: web, domains: [revoke.example.org]}")
            defer { install.directory.remove() }
            let first = try await install.run(["renew", "--no-random-sleep"])
            try #require(first.exitCode == 0, "stderr: \(first.stderr)")
            let serial1 = try install.serial("web")

            let revoked = try await install.run(["revoke", "web", "--reason", "superseded"])
            #expect(revoked.exitCode == 0, "stdout: \(revoked.stdout)\nstderr: \(revoked.stderr)")
            #expect(revoked.stdout.contains("revoked web serial \(serial1)"), "\(revoked.stdout)")
            try #require(fake.issuedCertificates.count == 1)
            #expect(fake.issuedCertificates[0].revocationReason == 4)
            #expect(fake.requestLog.contains { $0.path == "/revoke-cert" && $0.status == 200 })

            let renewed = try await install.run(["renew", "--no-random-sleep"])
            #expect(renewed.exitCode == 0, "stdout: \(renewed.stdout)\nstderr: \(renewed.stderr)")
            #expect(renewed.stdout.contains("web: renewed"), "\(renewed.stdout)")
            let serial2 = try install.serial("web")
            #expect(serial2 != serial1)
            #expect(fake.issuedCertificates.count == 2)
            #expect(fake.issuedCertificates.last?.revocationReason == nil)

            // Replaced once: the following run has nothing to do.
            let again = try await install.run(["renew", "--no-random-sleep"])
            #expect(again.exitCode == 0, "stderr: \(again.stderr)")
            #expect(again.stdout.contains("web: not due until"), "\(again.stdout)")
            #expect(fake.issuedCertificates.count == 2)
        }
    }
}

// MARK: - Helpers

/// Runs `body` with a fresh fake ACME server and always stops it before returning, even on failure.
func withFakeACME<T>(_ options: FakeACMEServer.Options = .init(), _ body: (FakeACMEServer) async throws -> T) async throws -> T {
    let fake = try await FakeACMEServer.start(options: options)
    do {
        let result = try await body(fake)
        await fake.stop()
        return result
    } catch {
        await fake.stop()
        throw error
    }
}

/// An installation pointed at `fake`, optionally with `acme.profile` set.
/// The http-01 port is never contacted (the fake CA's authorizations are valid from the start).
private func fakeInstallation(_ name: String, _ fake: FakeACMEServer, certificatesYAML: String, acmeProfile: String? = nil, stateDirectory: String? = nil) throws -> Installation {
    let install = try Installation(
        name: name, directoryURL: fake.directoryURL, caBundle: fake.caBundlePath,
        http01Port: try PortAllocator.shared.allocate(), certificatesYAML: certificatesYAML, stateDirectory: stateDirectory
    )
    if let acmeProfile {
        // Installation writes the acme mapping itself; add the key to it.
        let yaml = try String(contentsOfFile: install.configPath, encoding: .utf8)
        try #require(yaml.components(separatedBy: "\nacme:\n").count == 2, "unexpected config layout:\n\(yaml)")
        let patched = yaml.replacingOccurrences(of: "\nacme:\n", with: "\nacme:\n  profile: \(acmeProfile)\n")
        try Data(patched.utf8).write(to: URL(fileURLWithPath: install.configPath))
    }
    return install
}

/// `state/renewal-<name>.json` as a dictionary.
private func stateRecord(_ install: Installation, _ name: String) throws -> [String: Any] {
    let data = try Data(contentsOf: URL(fileURLWithPath: "\(install.stateDirectory)/state/renewal-\(name).json"))
    return try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
}

/// Sets `ari.nextPoll` in `state/renewal-<name>.json` to a minute ago, so the next run asks ARI again
/// (certkeeper caches ARI answers for the Retry-After, up to 6 h by default).
private func expireARICache(_ install: Installation, _ name: String) throws {
    let path = "\(install.stateDirectory)/state/renewal-\(name).json"
    var record = try stateRecord(install, name)
    var ari = try #require(record["ari"] as? [String: Any], "no ari in \(path): \(record)")
    try #require(ari["nextPoll"] is String, "ari.nextPoll is not a string in \(path): \(ari)")
    ari["nextPoll"] = isoString(Date().addingTimeInterval(-60))
    record["ari"] = ari
    let data = try JSONSerialization.data(withJSONObject: record, options: [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes])
    try (data + Data("\n".utf8)).write(to: URL(fileURLWithPath: path))
}

/// Every file under `live/<name>/` (through the symlink) by name, plus the symlink's target under "->".
private func liveSnapshot(_ install: Installation, _ name: String) throws -> [String: Data] {
    let live = "\(install.stateDirectory)/live/\(name)"
    var files: [String: Data] = [:]
    files["->"] = Data(try FileManager.default.destinationOfSymbolicLink(atPath: live).utf8)
    for file in try FileManager.default.contentsOfDirectory(atPath: live + "/") {
        files[file] = try Data(contentsOf: URL(fileURLWithPath: "\(live)/\(file)"))
    }
    return files
}

/// The rows of `certkeeper status --json`.
private func statusRows(_ stdout: String) throws -> [[String: Any]] {
    try #require(try JSONSerialization.jsonObject(with: Data(stdout.utf8)) as? [[String: Any]], "status output: \(stdout)")
}

/// How many `GET /renewal-info/<certID>` requests the fake CA answered.
private func ariRequests(_ fake: FakeACMEServer, certID: String) -> Int {
    fake.requestLog.filter { $0.method == "GET" && $0.path == "/renewal-info/\(certID)" }.count
}

/// The profile requested by the accepted order for exactly `domain`.
private func profileOrdered(_ fake: FakeACMEServer, domain: String) -> String? {
    fake.orders.first { $0.identifiers.map(\.value) == [domain] && $0.rejectedWith == nil }?.profile
}

/// Checks meta.json's notAfter − notBefore.
private func expectLifetime(_ install: Installation, _ name: String, hours: Double, sourceLocation: SourceLocation = #_sourceLocation) throws {
    let meta = try install.meta(name)
    let notBefore = try #require(isoDate(meta["notBefore"]), sourceLocation: sourceLocation)
    let notAfter = try #require(isoDate(meta["notAfter"]), sourceLocation: sourceLocation)
    #expect(notAfter.timeIntervalSince(notBefore) == hours * 3600, "\(name): \(notBefore) – \(notAfter)", sourceLocation: sourceLocation)
}

private func isoDate(_ value: Any?) -> Date? {
    guard let text = value as? String else { return nil }
    return RFC3339.parse(text)
}

private func isoString(_ date: Date) -> String {
    let formatter = ISO8601DateFormatter()
    formatter.formatOptions = [.withInternetDateTime]
    return formatter.string(from: date)
}

/// The date in `renew`'s "<name>: not due until <date>" line.
private func notDueUntil(_ stdout: String, _ name: String) -> Date? {
    let prefix = "\(name): not due until "
    guard let line = stdout.split(separator: "\n").first(where: { $0.hasPrefix(prefix) }) else { return nil }
    return RFC3339.parse(String(line.dropFirst(prefix.count)).trimmingCharacters(in: .whitespaces))
}

/// Whether `date` lies in `window`, give or take the second that printing drops.
private func within(_ date: Date, _ window: ClosedRange<Date>) -> Bool {
    date >= window.lowerBound.addingTimeInterval(-1) && date <= window.upperBound.addingTimeInterval(1)
}

/// RFC 9773 §4.1 computed here from the PEM: base64url(AKI keyIdentifier) "." base64url(the serial's DER INTEGER
/// content octets), which keep a 0x00 sign byte when the top bit is set (the RFC's example: `AIdlQyE`).
private func rfc9773CertID(pem: String) throws -> String {
    let certificate = try Certificate(pemEncoded: pem)
    let aki = try #require(try certificate.extensions.authorityKeyIdentifier?.keyIdentifier)
    let magnitude = Array(certificate.serialNumber.bytes.drop(while: { $0 == 0 }))
    let content: [UInt8] = magnitude.first.map { $0 & 0x80 != 0 ? [0] + magnitude : magnitude } ?? [0]
    return Base64URL.encode(Array(aki)) + "." + Base64URL.encode(content)
}

private func wholeSeconds(_ date: Date) -> Date {
    Date(timeIntervalSince1970: date.timeIntervalSince1970.rounded(.down))
}
