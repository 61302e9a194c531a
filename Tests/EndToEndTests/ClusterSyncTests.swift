import CertStore
import Logging
import CertkeeperTestSupport
import Foundation
import Testing

/// Issue #4 end to end: three `certkeeper daemon` nodes in network namespaces, the renewer issuing from Pebble,
/// the followers pulling over mutual TLS and serving through their proxies (checked with `openssl s_client`).
@Suite("Three-node cluster in network namespaces", .serialized)
struct ClusterSyncTests {
    @Test("force-renew reaches both followers; a partitioned follower catches up; an empty node converges from any peer; strangers get nothing")
    func syncPartitionAndConvergence() async throws {
        try await withCluster(label: "sync", roles: ["renewer", "follower", "follower"], pebbleOn: [1]) { cluster in
            for index in 1...3 { try await cluster.startDaemon(index) }

            // 1. A renewal on the renewer reaches both followers' proxies.
            let first = try await cluster.cli(1, ["force-renew", ClusterFixture.certificateName])
            #expect(first.exitCode == 0, "force-renew: \(first.stderr)")
            let s1 = try #require(cluster.installed(1), "renewer installed nothing: \(first.stderr)").serial
            #expect(await cluster.waitUntilServed(2, serial: s1), "n2 does not serve \(s1):\n\(cluster.daemonLog(2))")
            #expect(await cluster.waitUntilServed(3, serial: s1), "n3 does not serve \(s1):\n\(cluster.daemonLog(3))")
            #expect(cluster.installed(2)?.issuedBy == "n1")

            // 2. n3's link is down during a renewal: it keeps serving the old certificate, then catches up.
            try await cluster.network.setLink(cluster.node(3), up: false)
            // notBefore has one-second resolution, and certificates issued in the same second are ordered by their
            // (random) serials: let the clock move on so the second certificate is unambiguously newer.
            try await Task.sleep(for: .milliseconds(1100))
            let second = try await cluster.cli(1, ["force-renew", ClusterFixture.certificateName])
            #expect(second.exitCode == 0, "force-renew: \(second.stderr)")
            let s2 = try #require(cluster.installed(1)).serial
            #expect(s2 != s1)
            #expect(await cluster.waitUntilServed(2, serial: s2), "n2 does not serve \(s2)")
            #expect(await cluster.servedSerial(3) == ClusterFixture.normalised(s1), "n3 should still serve the old certificate")
            try await cluster.network.setLink(cluster.node(3), up: true)
            #expect(await cluster.waitUntilServed(3, serial: s2, timeout: 45), "n3 did not catch up:\n\(cluster.daemonLog(3))")

            // 3. n2 restarts from an empty state directory while the renewer is down: it converges from n3.
            await cluster.stopDaemon(1)
            await cluster.stopDaemon(2)
            try FileManager.default.removeItem(atPath: cluster.stateDirectory(2))
            let join = try await CLI.run(["cluster", "join", cluster.identityFile(2), "--config", cluster.configPath(2)])
            #expect(join.exitCode == 0, "join: \(join.stderr)")
            #expect(cluster.installed(2) == nil)
            try await cluster.startDaemon(2)
            #expect(await cluster.waitUntilServed(2, serial: s2, timeout: 45), "the emptied n2 did not converge from n3:\n\(cluster.daemonLog(2))")
            #expect(cluster.installed(2)?.issuedBy == "n1")

            // 4. The peer API: a cluster identity gets the catalogue; no certificate, or another cluster's, gets nothing.
            let otherCA = cluster.work.path + "/other-ca"
            #expect(try await CLI.run(["cluster", "init", "--name", "other", "--ca-dir", otherCA]).exitCode == 0)
            let stranger = cluster.work.path + "/stranger.pem"
            #expect(try await CLI.run(["cluster", "add-node", "n2", "--address", cluster.node(2).address, "--ca-dir", otherCA, "--out", stranger]).exitCode == 0)
            let url = "https://\(cluster.node(3).address):\(ClusterFixture.peerPort)/v1/catalog"
            let caFile = cluster.caDirectory + "/ca.pem"
            func curl(_ extra: [String]) async throws -> (exitCode: Int32, stdout: String, stderr: String) {
                try await cluster.network.run(
                    on: cluster.node(2), executable: "/usr/bin/curl",
                    arguments: ["-sS", "--max-time", "10", "--cacert", caFile] + extra + [url], timeout: 30)
            }
            let member = try await curl(["--cert", cluster.identityFile(2), "--key", cluster.identityFile(2)])
            #expect(member.exitCode == 0, "curl with n2's identity: \(member.stderr)")
            #expect(member.stdout.contains("\"node\":\"n3\""))
            let anonymous = try await curl([])
            #expect(anonymous.exitCode != 0 && !anonymous.stdout.contains("\"node\""), "no client certificate: \(anonymous.stdout)")
            let foreign = try await curl(["--cert", stranger, "--key", stranger])
            #expect(foreign.exitCode != 0 && !foreign.stdout.contains("\"node\""), "another cluster's certificate: \(foreign.stdout)")
            // This cluster's CA, but not an allowed peer: a node in nobody's peers, and n1's identity used from n2's
            // address. Both get 403 before any route, and no key.
            let outsider = cluster.work.path + "/n9.pem"
            #expect(try await CLI.run(["cluster", "add-node", "n9", "--address", cluster.node(2).address, "--ca-dir", cluster.caDirectory, "--out", outsider]).exitCode == 0)
            let bundleURL = "https://\(cluster.node(3).address):\(ClusterFixture.peerPort)/v1/certificates/\(ClusterFixture.certificateName)"
            for (label, identity, reason) in [
                ("a node in no peers list", outsider, "failed check: peers"),
                ("n1's identity from n2's address", cluster.identityFile(1), "failed check: address"),
            ] {
                let refused = try await cluster.network.run(
                    on: cluster.node(2), executable: "/usr/bin/curl",
                    arguments: ["-sS", "--max-time", "10", "--cacert", caFile, "--cert", identity, "--key", identity, "-w", "\n%{http_code}", bundleURL],
                    timeout: 30)
                #expect(refused.stdout.hasSuffix("\n403"), "\(label): \(refused.stdout.suffix(300)) \(refused.stderr)")
                #expect(refused.stdout.contains(reason), "\(label): \(refused.stdout)")
                #expect(!refused.stdout.contains("PRIVATE KEY"), "\(label) got key material")
            }

            // 5. status --cluster on n3 sees n2 and n3 agree and n1 down.
            let status = try await cluster.cli(3, ["status", "--cluster"])
            #expect(status.exitCode == 1, "n1 is down, so the nodes do not all agree")
            #expect(status.stdout.contains("unreachable"))
            #expect(status.stdout.components(separatedBy: s2).count - 1 == 2, "n2 and n3 should both list \(s2):\n\(status.stdout)")
        }
    }

    @Test("a 20 s silent partition is noticed within the heartbeat bound, logged once, and converges within seconds of the heal")
    func silentPartition() async throws {
        try await withCluster(label: "silent", roles: ["renewer", "follower"], pebbleOn: [1]) { cluster in
            for index in 1...2 { try await cluster.startDaemon(index) }
            let first = try await cluster.cli(1, ["force-renew", ClusterFixture.certificateName])
            #expect(first.exitCode == 0, "force-renew: \(first.stderr)")
            let s1 = try #require(cluster.installed(1)).serial
            #expect(await cluster.waitUntilServed(2, serial: s1), "n2 does not serve \(s1):\n\(cluster.daemonLog(2))")
            // n2's long-poll on n1 is parked (30 s); the link goes down with no RST.
            try await Task.sleep(for: .seconds(2))
            func lostLines() -> Int {
                cluster.fullDaemonLog(2).split(separator: "\n").filter { $0.contains("peer unreachable; retrying") && $0.contains("peer=n1") }.count
            }
            let before = lostLines()
            let cut = ContinuousClock.now
            try await cluster.network.setLink(cluster.node(2), up: false)
            let noticed = await cluster.eventually(timeout: 15) { lostLines() > before }
            let noticedAfter = ContinuousClock.now - cut
            #expect(noticed, "the loss of n1 was not logged within 15 s:\n\(cluster.daemonLog(2))")
            // The stated bound: three missed 2 s heartbeats, plus polling slack.
            #expect(noticedAfter < .seconds(10), "noticed after \(noticedAfter)")

            // A renewal during the partition, then the heal at 20 s.
            try await Task.sleep(for: .milliseconds(1100))
            let second = try await cluster.cli(1, ["force-renew", ClusterFixture.certificateName])
            #expect(second.exitCode == 0, "force-renew: \(second.stderr)")
            let s2 = try #require(cluster.installed(1)).serial
            while ContinuousClock.now - cut < .seconds(20) { try await Task.sleep(for: .milliseconds(200)) }
            #expect(lostLines() == before + 1, "the loss was logged more than once:\n\(cluster.daemonLog(2))")
            try await cluster.network.setLink(cluster.node(2), up: true)
            let healed = ContinuousClock.now
            #expect(await cluster.waitUntilServed(2, serial: s2, timeout: 15), "n2 did not converge after the heal:\n\(cluster.daemonLog(2))")
            let converged = ContinuousClock.now - healed
            // Retries at most every second, a 3 s connect timeout for a try that started before the heal.
            #expect(converged < .seconds(8), "converged \(converged) after the heal")
            #expect(cluster.fullDaemonLog(2).contains("peer reachable"))
        }
    }

    @Test("two nodes left at role: renewer: an error on every node, status --cluster exits 1, and no node installs a leaf of a root it does not trust")
    func twoRenewers() async throws {
        let internalCertificate = "  - {name: local, issuer: internal, domains: [local.internal]}"
        // Each namespace has its own loopback: the same stats address on every node.
        try await withCluster(
            label: "tworen", roles: ["renewer", "renewer", "follower"], pebbleOn: [], certificatesExtra: internalCertificate,
            topLevelExtra: "stats: {listen: \"127.0.0.1:19180\"}"
        ) { cluster in
            // Two roots for certain: each renewer issues from its own before any daemon can hand the other's over.
            for index in 1...2 {
                let issued = try await cluster.cli(index, ["force-renew", "local"])
                #expect(issued.exitCode == 0, "n\(index): \(issued.stderr)")
            }
            for index in 1...3 { try await cluster.startDaemon(index) }
            func liveRoot(_ index: Int) -> String? {
                // The internal chain is leaf + root: the root is the last certificate of fullchain.pem.
                guard let text = try? String(contentsOfFile: "\(cluster.stateDirectory(index))/live/local/fullchain.pem", encoding: .utf8) else { return nil }
                return text.components(separatedBy: "-----BEGIN CERTIFICATE-----").last
            }
            func ownRoot(_ index: Int) -> String? {
                let path = "\(cluster.stateDirectory(index))/internal-ca/root.pem"
                return (try? String(contentsOfFile: path, encoding: .utf8))?.components(separatedBy: "-----BEGIN CERTIFICATE-----").last
            }
            func pinnedRoot(_ index: Int) -> String? {
                let path = "\(cluster.stateDirectory(index))/internal-ca/peer-root.pem"
                return (try? String(contentsOfFile: path, encoding: .utf8))?.components(separatedBy: "-----BEGIN CERTIFICATE-----").last
            }
            // Each renewer either issues from a root of its own or, asking its peers before it orders, installs the
            // other's first certificate and pins that root; the follower pins the first root it installs.
            let issued = await cluster.eventually(timeout: 30) { liveRoot(1) != nil && liveRoot(2) != nil && liveRoot(3) != nil }
            #expect(issued, "\(cluster.daemonLog(3))")
            let conflictLogged = await cluster.eventually(timeout: 30) {
                (1...3).allSatisfy { cluster.fullDaemonLog($0).contains("more than one node is the renewer") }
            }
            #expect(conflictLogged, "n1: \(cluster.daemonLog(1))\nn3: \(cluster.daemonLog(3))")
            // Give the long-polls a few rounds: no node installs a leaf of a root it does not trust.
            try await Task.sleep(for: .seconds(3))
            for index in 1...3 {
                let accepted = ownRoot(index) ?? pinnedRoot(index)
                #expect(accepted != nil && liveRoot(index) == accepted, "n\(index) serves a leaf of a root it does not trust")
            }
            #expect(ownRoot(1) != nil && ownRoot(2) != nil && ownRoot(1) != ownRoot(2), "two renewers, two roots")
            // The renewer with the older leaf is offered the other's newer one and refuses it (and so does the
            // follower when the newer leaf is not from the root it pinned).
            let refusals = (1...3).filter { cluster.fullDaemonLog($0).contains("chains to another root") }
            #expect(!refusals.isEmpty, "no node refused a leaf of the other root")
            let status = try await cluster.cli(3, ["status", "--cluster"])
            #expect(status.exitCode == 1, "\(status.stdout)")
            #expect(status.stdout.contains("2 nodes are the renewer (n1, n2)"), "\(status.stdout)")
            // The metric an alert watches, on the follower and on a renewer.
            for index in [1, 3] {
                let metrics = try await cluster.network.run(
                    on: cluster.node(index), executable: "/usr/bin/curl", arguments: ["-sS", "--max-time", "10", "http://127.0.0.1:19180/metrics"], timeout: 30)
                #expect(metrics.stdout.split(separator: "\n").contains { $0.hasPrefix("certkeeper_cluster_renewers ") && Double($0.split(separator: " ").last ?? "") == 2 },
                        "n\(index): \(metrics.stdout.split(separator: "\n").filter { $0.contains("cluster") }) \(metrics.stderr)")
            }
        }
    }

    @Test("revoke-node: every peer refuses the node within seconds, a replacement under its name is served; then the cluster CA rotates with sync working at every step")
    func revokeAndRotate() async throws {
        try await withCluster(label: "revoke", roles: ["renewer", "follower", "follower"], pebbleOn: [1]) { cluster in
            for index in 1...3 { try await cluster.startDaemon(index) }
            var serial = ""
            /// A renewal on n1 reaches both followers' proxies.
            func renewReachesAll(_ step: String) async throws {
                try await Task.sleep(for: .milliseconds(1100))
                let renewed = try await cluster.cli(1, ["force-renew", ClusterFixture.certificateName])
                #expect(renewed.exitCode == 0, "\(step): force-renew: \(renewed.stderr)")
                serial = try #require(cluster.installed(1)).serial
                for index in 2...3 {
                    #expect(await cluster.waitUntilServed(index, serial: serial, timeout: 45), "\(step): n\(index) does not serve \(serial):\n\(cluster.daemonLog(index))")
                }
            }
            /// What node `from` gets for its bundle request to node `to`'s peer API with identity file `identity`.
            func ask(from: Int, to: Int, identity: String, caFile: String) async throws -> (exitCode: Int32, stdout: String, stderr: String) {
                try await cluster.network.run(
                    on: cluster.node(from), executable: "/usr/bin/curl",
                    arguments: ["-sS", "--max-time", "10", "--cacert", caFile, "--cert", identity, "--key", identity, "-w", "\n%{http_code}",
                                "https://\(cluster.node(to).address):\(ClusterFixture.peerPort)/v1/certificates/\(ClusterFixture.certificateName)"],
                    timeout: 30)
            }
            let oldCA = cluster.caDirectory + "/ca.pem"
            try await renewReachesAll("start")

            // 1. n3 is revoked on n1 (where the CA is): n2 installs the list from n1, and both refuse n3's identity.
            let revoked = try await cluster.cli(1, ["cluster", "revoke-node", "n3", "--ca-dir", cluster.caDirectory, "--reason", "test"])
            #expect(revoked.exitCode == 0, "revoke-node: \(revoked.stdout) \(revoked.stderr)")
            let spread = await cluster.eventually(timeout: 20) { cluster.fullDaemonLog(2).contains("installed the cluster's revocation list from a peer") }
            #expect(spread, "n2 did not install the list:\n\(cluster.daemonLog(2))")
            for peer in [1, 2] {
                let answer = try await ask(from: 3, to: peer, identity: cluster.identityFile(3), caFile: oldCA)
                #expect(answer.stdout.hasSuffix("\n403") && answer.stdout.contains("failed check: revoked") && !answer.stdout.contains("PRIVATE KEY"),
                        "n\(peer) serves the revoked n3: \(answer.stdout.suffix(300)) \(answer.stderr)")
            }
            let refusedLogged = await cluster.eventually(timeout: 20) { cluster.fullDaemonLog(3).contains("peer refuses this node (403)") }
            #expect(refusedLogged, "n3 does not say it is refused:\n\(cluster.daemonLog(3))")
            let shown = try await cluster.cli(2, ["cluster", "show"])
            #expect(shown.stdout.contains("revoked:     n3"), "\(shown.stdout)")

            // A replacement n3 (a new identity issued after the revocation) is served again, without a restart.
            let replacement = cluster.work.path + "/n3-replacement.pem"
            let added = try await cluster.cli(1, ["cluster", "add-node", "n3", "--address", cluster.node(3).address, "--ca-dir", cluster.caDirectory, "--out", replacement])
            #expect(added.exitCode == 0, "add-node: \(added.stderr)")
            let joined = try await CLI.run(["cluster", "join", "--force", replacement, "--config", cluster.configPath(3)])
            #expect(joined.exitCode == 0, "join: \(joined.stderr)")
            let back = try await ask(from: 3, to: 1, identity: replacement, caFile: oldCA)
            #expect(back.stdout.hasSuffix("\n200"), "the replacement n3 is refused: \(back.stdout.suffix(300)) \(back.stderr)")
            try await renewReachesAll("after the replacement")

            // 2. CA rotation, no daemon restarted: every node trusts the new CA, then moves to it one by one.
            let newCADirectory = cluster.work.path + "/new-ca"
            #expect(try await CLI.run(["cluster", "init", "--name", "test", "--ca-dir", newCADirectory]).exitCode == 0)
            let newCA = newCADirectory + "/ca.pem"
            for index in 1...3 {
                let trusted = try await cluster.cli(index, ["cluster", "trust-ca", newCA])
                #expect(trusted.exitCode == 0, "trust-ca on n\(index): \(trusted.stderr)")
            }
            var oldFingerprint = ""
            for index in [2, 1, 3] {
                let file = cluster.work.path + "/n\(index)-new.pem"
                let added = try await cluster.cli(1, ["cluster", "add-node", "n\(index)", "--address", cluster.node(index).address, "--ca-dir", newCADirectory, "--out", file])
                #expect(added.exitCode == 0, "add-node n\(index): \(added.stderr)")
                let joined = try await cluster.cli(index, ["cluster", "join", "--force", file])
                #expect(joined.exitCode == 0 && joined.stdout.contains("stays trusted"), "join n\(index): \(joined.stdout) \(joined.stderr)")
                if let range = joined.stdout.range(of: "untrust-ca ") { oldFingerprint = String(joined.stdout[range.upperBound...].prefix { !$0.isWhitespace }) }
                try await renewReachesAll("n\(index) moved to the new CA")
            }
            // The window closes: the old CA is no longer trusted anywhere; sync goes on; an old identity gets nothing.
            #expect(!oldFingerprint.isEmpty)
            for index in 1...3 {
                let untrusted = try await cluster.cli(index, ["cluster", "untrust-ca", oldFingerprint])
                #expect(untrusted.exitCode == 0, "untrust-ca on n\(index): \(untrusted.stdout) \(untrusted.stderr)")
            }
            try await renewReachesAll("after the rotation window")
            let stale = try await ask(from: 2, to: 1, identity: cluster.identityFile(2), caFile: newCA)
            #expect(!stale.stdout.contains("PRIVATE KEY") && !stale.stdout.hasSuffix("\n200"), "an identity from the old CA is still served: \(stale.stdout.suffix(200))")
            for index in 1...3 {
                #expect(!cluster.fullDaemonLog(index).contains("cluster credentials not reloaded"), "n\(index):\n\(cluster.daemonLog(index))")
            }
        }
    }

    @Test("a standby bootstrapped as the README says gets the renewer's internal CA and takes over an internal certificate on its first try")
    func standbyTakesOverInternal() async throws {
        // 1-hour leaves (the shortest allowed) due 30 s after issuance: renew_before 59m30s.
        let internalCertificate = "  - {name: local, issuer: internal, domains: [local.internal], renew_before: 59m30s}"
        try await withCluster(
            label: "stbyint", roles: ["renewer", "follower", "standby"], pebbleOn: [],
            clusterExtra: "  takeover_after: 4s\n  takeover_margin: 0", certificatesExtra: internalCertificate,
            topLevelExtra: "internal_ca: {leaf_lifetime: 1h}"
        ) { cluster in
            for index in 1...3 { try await cluster.startDaemon(index) }
            func live(_ index: Int) -> CertificateMeta? {
                (try? CertificateStore(root: cluster.stateDirectory(index), logger: Logger(label: "test")).meta(name: "local")) ?? nil
            }
            func rootPEM(_ index: Int) -> String? { try? String(contentsOfFile: "\(cluster.stateDirectory(index))/internal-ca/root.pem", encoding: .utf8) }
            // The renewer issues at start; the standby, listed by the renewer with role: standby, adopts its CA.
            let adopted = await cluster.eventually(timeout: 30) { rootPEM(3) != nil && live(3) != nil }
            #expect(adopted, "n3: \(cluster.daemonLog(3))")
            #expect(rootPEM(3) == rootPEM(1), "the standby's root is not the renewer's")
            #expect(cluster.fullDaemonLog(3).contains("adopted the renewer's internal CA"))
            #expect(rootPEM(2) == nil, "a follower got the internal CA")
            // Asked outright with its own identity, the follower gets 403 and no key.
            let asked = try await cluster.network.run(
                on: cluster.node(2), executable: "/usr/bin/curl",
                arguments: ["-sS", "--max-time", "10", "--cacert", cluster.caDirectory + "/ca.pem", "--cert", cluster.identityFile(2),
                            "--key", cluster.identityFile(2), "-w", "\n%{http_code}", "https://\(cluster.node(1).address):\(ClusterFixture.peerPort)/v1/internal-ca"],
                timeout: 30)
            #expect(asked.stdout.hasSuffix("\n403") && !asked.stdout.contains("PRIVATE KEY"), "\(asked.stdout.suffix(300)) \(asked.stderr)")
            let s1 = try #require(live(1)).serial

            // The renewer stops; once the certificate is due the standby renews it from the same root, first try.
            await cluster.stopDaemon(1)
            let tookOver = await cluster.eventually(timeout: 60) { live(3)?.issuedBy == "n3" }
            #expect(tookOver, "the standby did not take over:\n\(cluster.daemonLog(3))")
            #expect(!cluster.fullDaemonLog(3).contains("no internal CA here"), "\(cluster.daemonLog(3))")
            let s2 = try #require(live(3)).serial
            #expect(s2 != s1)
            let followerGot = await cluster.eventually(timeout: 30) { live(2)?.serial == s2 }
            #expect(followerGot, "the follower did not install the standby's certificate:\n\(cluster.daemonLog(2))")

            // The renewer returns: it asks its peers before issuing and adopts the standby's certificate, issuing none.
            try await cluster.startDaemon(1)
            let back = await cluster.eventually(timeout: 20) { live(1)?.issuedBy == "n3" }
            #expect(back, "n1 holds \(live(1).map { "\($0.serial) from \($0.issuedBy)" } ?? "nothing"):\n\(cluster.daemonLog(1))")
            #expect(!cluster.fullDaemonLog(1).split(separator: "\n").contains { $0.contains("renewing cert.domains=local.internal") },
                     "the returning renewer issued instead of adopting:\n\(cluster.daemonLog(1))")
        }
    }

    @Test("a standby takes over while the renewer is stopped, not while it answers; the newer certificate wins everywhere")
    func standbyTakeover() async throws {
        // The renewer's 60-second certificates are due 30 s after issuance (half the lifetime under 10 days). The
        // standby's own CA issues 20-minute ones, so its takeover certificate cannot fall due again (and be renewed
        // again, legitimately, while the returning renewer is not yet seen) during a slow run of the rest of the test.
        try await withCluster(
            label: "standby", roles: ["renewer", "follower", "standby"], pebbleOn: [1, 3],
            pebbleOptions: PebbleServer.Options(alwaysValid: true, certificateValidityPeriod: 60),
            pebbleOptionsByNode: [3: PebbleServer.Options(alwaysValid: true, certificateValidityPeriod: 1200)],
            clusterExtra: "  takeover_after: 4s\n  takeover_margin: 0"
        ) { cluster in
            for index in 1...3 { try await cluster.startDaemon(index) }
            let first = try await cluster.cli(1, ["force-renew", ClusterFixture.certificateName])
            #expect(first.exitCode == 0, "force-renew: \(first.stderr)")
            let s1 = try #require(cluster.installed(1)).serial
            let issuedAt = Date()
            #expect(await cluster.waitUntilServed(3, serial: s1), "the standby does not serve \(s1):\n\(cluster.daemonLog(3))")

            // Past the renewal time (30 s) with the renewer answering: the standby does not order.
            while Date().timeIntervalSince(issuedAt) < 35 { try await Task.sleep(for: .milliseconds(500)) }
            #expect(cluster.installed(3)?.serial == s1, "the standby renewed while the renewer answered")
            #expect(cluster.installed(1)?.serial == s1)

            // The renewer stops: after takeover_after the standby renews, and the follower gets it from the standby.
            await cluster.stopDaemon(1)
            let tookOver = await cluster.eventually(timeout: 60) { cluster.installed(3)?.issuedBy == "n3" }
            #expect(tookOver, "the standby did not take over:\n\(cluster.daemonLog(3))")
            let s2 = try #require(cluster.installed(3)).serial
            #expect(await cluster.waitUntilServed(2, serial: s2), "the follower does not serve the standby's \(s2):\n\(cluster.daemonLog(2))")

            // With its daemon still down, the renewer's cron `renew` finds its own certificate due: it asks the
            // reachable peers first, adopts the standby's newer one, and orders nothing.
            let cron = try await cluster.cli(1, ["renew", "--no-random-sleep"])
            #expect(cron.exitCode == 0, "renew on n1: \(cron.stdout) \(cron.stderr)")
            #expect(cluster.installed(1)?.serial == s2, "n1 ordered instead of adopting the standby's certificate: \(cron.stdout) \(cron.stderr.suffix(800))")
            #expect(cron.stdout.contains("not due"), "\(cron.stdout)")
            #expect(cron.stderr.contains("asked the peers before ordering"), "\(cron.stderr.suffix(800))")

            // The renewer returns: it pulls the standby's newer certificate; the standby does not order again.
            try await cluster.startDaemon(1)
            #expect(await cluster.waitUntilServed(1, serial: s2), "the renewer does not serve \(s2):\n\(cluster.daemonLog(1))")
            #expect(cluster.installed(3)?.serial == s2, "the standby renewed again with the renewer back")

            // Renewing is the renewer's again: its next certificate reaches every node, the standby included. X.509
            // times have one-second resolution and two certificates with the same notBefore are ordered by serial,
            // so the renewer orders only once the standby's certificate is more than a second old (a fast start
            // of the renewer once made both fall in the same second, and the standby's won by serial).
            let s2NotBefore = try #require(cluster.installed(3)).notBefore
            while Date().timeIntervalSince(s2NotBefore) < 2.1 { try await Task.sleep(for: .milliseconds(200)) }
            let third = try await cluster.cli(1, ["force-renew", ClusterFixture.certificateName])
            #expect(third.exitCode == 0, "force-renew: \(third.stderr)")
            let s3 = try #require(cluster.installed(1)).serial
            for index in 2...3 {
                #expect(await cluster.waitUntilServed(index, serial: s3),
                        "n\(index) does not serve \(s3); it holds \(cluster.installed(index).map { "\($0.serial) from \($0.issuedBy)" } ?? "nothing"):\n\(cluster.daemonLog(index))\nn1:\n\(cluster.daemonLog(1))")
            }
            #expect(cluster.installed(3)?.issuedBy == "n1", "the standby should hold the renewer's certificate")
        }
    }
}
