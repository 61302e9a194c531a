import CertStore
import CertkeeperTestSupport
import Foundation
import Logging
import Testing

/// Issue #5, item 5, end to end: the http-01 answer on port 80 of a follower, checked against Pebble issuing for a
/// name whose A record (pebble-challtestsrv) points at the follower.
///
/// Two nodes in network namespaces. The renewer (n1) runs Pebble with real validation; each node's daemon has a
/// `mode: http` frontend on `<its address>:5002` (Pebble's http-01 port). The renewer first registers its ACME
/// account (a certificate for a name on its own loopback, answered by its built-in responder), the follower adopts
/// the account through peer sync, then the renewer orders `follower.example` with `stateless: true`: it publishes
/// nothing, and Pebble, resolving the name to the follower, gets `token.thumbprint` from the follower's daemon.
@Suite("Stateless http-01 answered by a follower's proxy (Pebble, network namespaces)", .serialized)
struct StatelessHTTP01Tests {
    static let followerName = "follower.example"
    static let certificate = "acme80"

    @Test("Pebble validates follower.example against the follower's mode: http frontend; the renewer publishes nothing")
    func followerAnswersChallenge() async throws {
        let certificates = """
              - name: \(Self.certificate)
                domains: [\(Self.followerName)]
                challenge: {type: http-01, stateless: true}
            """
        let frontends = """
                - {name: acme, listen: "$ADDRESS:5002", mode: http, https_port: 8443}
            """
        try await withCluster(
            label: "acme80", roles: ["renewer", "follower"], pebbleOn: [1],
            pebbleOptions: PebbleServer.Options(alwaysValid: false), certificatesExtra: certificates, frontendsExtra: frontends
        ) { cluster in
            for index in 1...2 { try await cluster.startDaemon(index) }
            let follower = cluster.node(2)

            // 1. The renewer registers its ACME account (sync.example resolves to 127.0.0.1: its own responder answers).
            let first = try await cluster.cli(1, ["force-renew", ClusterFixture.certificateName])
            try #require(first.exitCode == 0, "force-renew web: \(first.stderr)")

            // 2. The follower adopts the account through peer sync.
            let renewerAccount = try #require(Self.account(cluster, 1), "the renewer stored no account")
            let adopted = await cluster.eventually(timeout: 45) { Self.account(cluster, 2) == renewerAccount }
            try #require(adopted, "the follower did not adopt the ACME account:\n\(cluster.daemonLog(2))")

            // Before the order, the follower already answers any token from the replicated account alone.
            let probe = try await cluster.network.run(
                on: follower, executable: "/usr/bin/curl",
                arguments: ["-sS", "--max-time", "10", "http://\(follower.address):5002/.well-known/acme-challenge/probeToken_-1"], timeout: 20)
            #expect(probe.stdout.hasPrefix("probeToken_-1."), "follower's answer: \(probe.stdout) \(probe.stderr)")

            // 3. follower.example resolves to the follower (challtestsrv runs on the renewer's loopback).
            let addA = try await cluster.network.run(
                on: cluster.node(1), executable: "/usr/bin/curl",
                arguments: [
                    "-sS", "--max-time", "10", "-X", "POST", "-d", "{\"host\":\"\(Self.followerName).\",\"addresses\":[\"\(follower.address)\"]}",
                    "http://127.0.0.1:8055/add-a",
                ], timeout: 20)
            try #require(addA.exitCode == 0, "add-a: \(addA.stderr)")

            // 4. The stateless order: nothing is published on the renewer; Pebble asks the follower.
            let renewerAnswersBefore = Self.answers(in: cluster.fullDaemonLog(1))
            let second = try await cluster.cli(1, ["force-renew", Self.certificate])
            #expect(second.exitCode == 0, "force-renew acme80: \(second.stderr)\nfollower:\n\(cluster.daemonLog(2))")
            let store = CertificateStore(root: cluster.stateDirectory(1), logger: Logger(label: "acme80-test"))
            let issued = try #require((try? store.meta(name: Self.certificate)) ?? nil, "no certificate issued: \(second.stderr)")
            #expect(issued.domains == [Self.followerName])

            // The follower's daemon logged the answer; the renewer's own frontend answered nothing.
            #expect(Self.answers(in: cluster.fullDaemonLog(2)) >= 1, "follower log:\n\(cluster.daemonLog(2))")
            #expect(Self.answers(in: cluster.fullDaemonLog(1)) == renewerAnswersBefore)

            // 5. Everything else on the follower's port 80 frontend is redirected to https.
            let redirect = try await cluster.network.run(
                on: follower, executable: "/usr/bin/curl",
                arguments: ["-sS", "--max-time", "10", "-o", "/dev/null", "-w", "%{http_code} %{redirect_url}",
                            "-H", "Host: \(Self.followerName)", "http://\(follower.address):5002/app?x=1"], timeout: 20)
            #expect(redirect.stdout == "301 https://\(Self.followerName):8443/app?x=1", "\(redirect.stdout) \(redirect.stderr)")
        }
    }

    /// The account key node `index` stores for the cluster's ACME directory, if registered.
    static func account(_ cluster: ClusterFixture, _ index: Int) -> String? {
        let store = CertificateStore(root: cluster.stateDirectory(index), logger: Logger(label: "acme80-test"))
        guard let account = (try? store.loadAccount(directoryURL: "https://127.0.0.1:14000/dir")) ?? nil, account.record != nil else { return nil }
        return account.keyPEM
    }

    /// How many http-01 answers a daemon log records.
    static func answers(in log: String) -> Int {
        log.components(separatedBy: "answered an http-01 challenge").count - 1
    }
}
