import ClusterTrust
import CertkeeperTestSupport
import Foundation
import Testing

/// The operator's three-node bootstrap through the built `certkeeper` binary, then a handshake between two of
/// the installed identities.
@Suite("certkeeper cluster commands", .serialized)
struct ClusterCLITests {
    /// One node's configuration and state directory.
    struct Node {
        let name: String
        let state: String
        let config: String

        init(_ name: String, in directory: TemporaryDirectory) throws {
            self.name = name
            state = directory.appending("\(name)/state")
            config = try directory.write("""
            state_dir: \(state)
            node_name: \(name)
            acme:
              directory: https://127.0.0.1:1/directory
            certificates: []
            """, to: "\(name)/certkeeper.yaml")
        }

        var identityPath: String { state + "/cluster/identity.pem" }
    }

    @Test("init, add-node for three nodes, join, show; refusals exit 1 or 2 with one line")
    func bootstrap() async throws {
        let directory = try TemporaryDirectory(name: "cluster-cli")
        defer { directory.remove() }
        let nodes = try ["node1", "node2", "node3"].map { try Node($0, in: directory) }
        let (node1, node2, node3) = (nodes[0], nodes[1], nodes[2])

        let initialized = try await CLI.run(["cluster", "init", "--name", "prod", "--config", node1.config])
        #expect(initialized.exitCode == 0, "\(initialized.stderr)")
        #expect(initialized.stdout.contains("created cluster CA 'prod'"))
        let again = try await CLI.run(["cluster", "init", "--name", "prod", "--config", node1.config])
        #expect(again.exitCode == 1)
        #expect(again.stderr.contains("ca.key: a cluster CA already exists here"), "\(again.stderr)")
        #expect(again.stderr.split(separator: "\n").count == 1, "\(again.stderr)")

        let self1 = try await CLI.run(["cluster", "add-node", "node1", "--address", "127.0.0.1", "--install", "--config", node1.config])
        #expect(self1.exitCode == 0, "\(self1.stderr)")
        for (node, address) in [(node2, "127.0.0.2"), (node3, "127.0.0.3")] {
            let issued = try await CLI.run(
                ["cluster", "add-node", node.name, "--address", address, "--address", "\(node.name).internal",
                 "--out", "\(node.name).pem", "--config", node1.config],
                currentDirectory: directory.path)
            #expect(issued.exitCode == 0, "\(issued.stderr)")
            #expect(mode(directory.appending("\(node.name).pem")) == 0o600)
        }
        // add-node does not overwrite an output file unless asked to.
        let overwrite = try await CLI.run(
            ["cluster", "add-node", "node2", "--address", "127.0.0.2", "--out", directory.appending("node2.pem"), "--config", node1.config])
        #expect(overwrite.exitCode == 1)
        #expect(overwrite.stderr.contains("already exists"), "\(overwrite.stderr)")

        // The copied files are installed on their nodes; a second join of the same file changes nothing.
        for node in [node2, node3] {
            let joined = try await CLI.run(["cluster", "join", directory.appending("\(node.name).pem"), "--config", node.config])
            #expect(joined.exitCode == 0, "\(joined.stderr)")
            #expect(mode(node.identityPath) == 0o600)
        }
        let rejoin = try await CLI.run(["cluster", "join", directory.appending("node2.pem"), "--config", node2.config])
        #expect(rejoin.exitCode == 0)
        #expect(rejoin.stdout.contains("already installed"))
        // The wrong node's file is refused before anything is written.
        let wrongNode = try await CLI.run(["cluster", "join", directory.appending("node3.pem"), "--config", node2.config])
        #expect(wrongNode.exitCode == 2)
        #expect(wrongNode.stderr.contains("identity is for node 'node3' but this node is 'node2'"), "\(wrongNode.stderr)")

        // Every node shows the same CA fingerprint.
        var fingerprints: Set<String> = []
        for node in nodes {
            let shown = try await CLI.run(["cluster", "show", "--config", node.config])
            #expect(shown.exitCode == 0, "\(node.name): \(shown.stderr)")
            #expect(shown.stdout.contains("node:        \(node.name)"), "\(shown.stdout)")
            let line = shown.stdout.split(separator: "\n").first { $0.hasPrefix("CA SHA-256:") }
            fingerprints.insert(String(line ?? ""))
        }
        #expect(fingerprints.count == 1 && !fingerprints.contains(""), "\(fingerprints)")
        let ca = try ClusterCA.load(directory: node1.state + "/cluster-ca")
        #expect(fingerprints.first?.contains(ca.fingerprint) == true)

        // Usage errors exit 2 with the field named.
        let badName = try await CLI.run(["cluster", "add-node", "../x", "--address", "10.0.0.1", "--config", node1.config])
        #expect(badName.exitCode == 2)
        #expect(badName.stderr.contains("'../x' is not a valid node name"), "\(badName.stderr)")
        let badAddress = try await CLI.run(["cluster", "add-node", "node4", "--address", "10.0.0.999", "--config", node1.config])
        #expect(badAddress.exitCode == 2)
        #expect(badAddress.stderr.contains("--address: '10.0.0.999'"), "\(badAddress.stderr)")
        let noCA = try await CLI.run(["cluster", "add-node", "node4", "--address", "10.0.0.4", "--config", node2.config])
        #expect(noCA.exitCode == 1)
        #expect(noCA.stderr.contains("no cluster CA here"), "\(noCA.stderr)")
        let noIdentity = try await CLI.run(["cluster", "show", "--config", try Node("node5", in: directory).config])
        #expect(noIdentity.exitCode == 1)

        // Two installed identities talk to each other.
        let server = try await PeerTestServer.start(identity: try ClusterIdentity.load(path: node1.identityPath))
        do {
            let client = try ClusterIdentity.load(path: node3.identityPath)
            let body = try await fetch("https://127.0.0.1:\(server.port)/", tls: client.makeClientTLSConfiguration())
            #expect(body == "hello node3\n")
        } catch {
            await server.stop()
            throw error
        }
        await server.stop()
    }

    @Test("init and add-node work without a configuration file when --ca-dir and --out are given")
    func withoutConfiguration() async throws {
        let directory = try TemporaryDirectory(name: "cluster-cli-noconf")
        defer { directory.remove() }
        let environment = ["CERTKEEPER_CONFIG": directory.appending("missing.yaml")]
        let caDirectory = directory.appending("ca")
        let initialized = try await CLI.run(["cluster", "init", "--ca-dir", caDirectory], environment: environment)
        #expect(initialized.exitCode == 0, "\(initialized.stderr)")
        let out = directory.appending("edge.pem")
        let issued = try await CLI.run(
            ["cluster", "add-node", "edge", "--address", "fd00::7", "--ca-dir", caDirectory, "--out", out, "--days", "30"],
            environment: environment)
        #expect(issued.exitCode == 0, "\(issued.stderr)")
        let identity = try ClusterIdentity.load(path: out)
        #expect(identity.addresses == ["edge", "fd00::7"])
        #expect(identity.clusterName == "certkeeper")
        // join needs the configuration (it installs into state_dir): usage error naming the file.
        let joined = try await CLI.run(["cluster", "join", out], environment: environment)
        #expect(joined.exitCode == 2)
        #expect(joined.stderr.contains("missing.yaml"), "\(joined.stderr)")
    }

    @Test("help shows the three-node bootstrap")
    func help() async throws {
        let help = try await CLI.run(["cluster", "--help"])
        #expect(help.exitCode == 0)
        for line in ["certkeeper cluster init --name prod", "cluster add-node node2 --address 10.0.0.2", "cluster join /root/node2.pem"] {
            #expect(help.stdout.contains(line), "\(help.stdout)")
        }
    }
}
