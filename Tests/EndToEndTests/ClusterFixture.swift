import CertStore
import CertkeeperTestSupport
import Foundation
import Logging
import Testing

/// Three certkeeper nodes, each in its own network namespace joined by a bridge, each running `certkeeper daemon`
/// (peer API on `<address>:7443`, proxy on `<address>:8443`), with cluster identities made by the CLI itself
/// (`cluster init`, `cluster add-node`, `cluster join`). Nodes that renew get their own Pebble on their loopback, at
/// the same URL in every namespace, so one configuration shape fits every node.
final class ClusterFixture: @unchecked Sendable {
    let network: TestNetwork
    let work: TemporaryDirectory
    let binary: String
    let caDirectory: String
    private var daemons: [Int: ManagedProcess] = [:]
    private var pebbles: [Int: PebbleServer] = [:]
    private var roles: [Int: String] = [:]
    private var clusterExtra = ""
    private var certificatesExtra = ""
    private var topLevelExtra = ""
    private var frontendsExtra = ""

    static let certificateName = "web"
    static let domain = "sync.example"
    static let peerPort = 7443
    static let proxyPort = 8443

    private init(network: TestNetwork, work: TemporaryDirectory, binary: String) {
        self.network = network
        self.work = work
        self.binary = binary
        self.caDirectory = work.path + "/cluster-ca"
    }

    /// Builds the network, the cluster CA and one identity per node; starts nothing yet.
    /// - Parameters:
    ///   - roles: One role per node (`renewer`, `follower`, `standby`).
    ///   - pebbleOn: Node indexes (1-based) that get a Pebble.
    ///   - pebbleOptions: Pebble's options, for every node's Pebble unless `pebbleOptionsByNode` names the node.
    ///   - pebbleOptionsByNode: Options for particular nodes' Pebbles.
    ///   - clusterExtra: Extra YAML lines under `cluster:` (indented two spaces).
    ///   - certificatesExtra: Extra `certificates:` entries (indented two spaces).
    ///   - topLevelExtra: Extra top-level sections (`internal_ca:`, …).
    ///   - frontendsExtra: Extra `proxy.frontends:` entries (indented four spaces); `$ADDRESS` is the node's address.
    static func make(
        label: String, roles: [String], pebbleOn: [Int], pebbleOptions: PebbleServer.Options = PebbleServer.Options(alwaysValid: true),
        pebbleOptionsByNode: [Int: PebbleServer.Options] = [:], clusterExtra: String = "", certificatesExtra: String = "",
        frontendsExtra: String = "", topLevelExtra: String = ""
    ) async throws -> ClusterFixture {
        let network = try await TestNetwork.create(nodes: roles.count, label: label)
        let fixture: ClusterFixture
        do {
            fixture = ClusterFixture(network: network, work: try TemporaryDirectory(name: "cluster-\(label)"), binary: try CLI.executablePath())
            fixture.clusterExtra = clusterExtra
            fixture.certificatesExtra = certificatesExtra
            fixture.topLevelExtra = topLevelExtra
            fixture.frontendsExtra = frontendsExtra
            for (offset, role) in roles.enumerated() { fixture.roles[offset + 1] = role }
            for index in pebbleOn {
                fixture.pebbles[index] = try await PebbleServer.start(
                    in: network.nodes[index - 1], of: network, options: pebbleOptionsByNode[index] ?? pebbleOptions)
            }
            try await fixture.makeIdentities()
        } catch {
            await network.destroy()
            throw error
        }
        return fixture
    }

    /// Stops every daemon and Pebble, then removes the namespaces and files.
    func destroy() async {
        for daemon in daemons.values { await daemon.stop() }
        for pebble in pebbles.values { await pebble.stop() }
        await network.destroy()
        work.remove()
    }

    func node(_ index: Int) -> TestNode { network.nodes[index - 1] }
    func stateDirectory(_ index: Int) -> String { "\(work.path)/n\(index)/state" }
    func configPath(_ index: Int) -> String { "\(work.path)/n\(index)/certkeeper.yaml" }
    func identityFile(_ index: Int) -> String { "\(work.path)/n\(index).pem" }

    private func makeIdentities() async throws {
        try expectSuccess(await CLI.run(["cluster", "init", "--name", "test", "--ca-dir", caDirectory]), "cluster init")
        for node in network.nodes {
            try FileManager.default.createDirectory(atPath: "\(work.path)/n\(node.index)", withIntermediateDirectories: true)
            try writeConfig(node.index)
            try expectSuccess(
                await CLI.run(["cluster", "add-node", "n\(node.index)", "--address", node.address, "--ca-dir", caDirectory, "--out", identityFile(node.index)]),
                "cluster add-node n\(node.index)")
            try expectSuccess(await CLI.run(["cluster", "join", identityFile(node.index), "--config", configPath(node.index)]), "cluster join n\(node.index)")
        }
    }

    /// Writes node `index`'s configuration.
    func writeConfig(_ index: Int) throws {
        let me = node(index)
        let caBundle = (pebbles[index] ?? pebbles.values.first)?.caBundlePath ?? "/etc/ssl/certs/ca-certificates.crt"
        let peers = network.nodes.filter { $0.index != index }
            .map { "    - {name: n\($0.index), address: \"\($0.address):\(Self.peerPort)\", role: \(roles[$0.index] ?? "follower")}" }.joined(separator: "\n")
        let yaml = """
            state_dir: \(stateDirectory(index))
            node_name: n\(index)
            acme:
              directory: https://127.0.0.1:14000/dir
              ca_bundle: \(caBundle)
            renew:
              random_sleep: 0
              http01_listen: "127.0.0.1:5002"
              lock_timeout: 30s
            \(topLevelExtra)
            certificates:
              - name: \(Self.certificateName)
                domains: [\(Self.domain)]
            \(certificatesExtra)
            cluster:
              role: \(roles[index] ?? "follower")
              listen: "\(me.address):\(Self.peerPort)"
              long_poll: 30s
            \(clusterExtra)
              peers:
            \(peers)
            proxy:
              frontends:
                - {name: https, listen: "\(me.address):\(Self.proxyPort)", backends: ["127.0.0.1:9"]}
            \(frontendsExtra.replacingOccurrences(of: "$ADDRESS", with: me.address))

            """
        try yaml.write(toFile: configPath(index), atomically: true, encoding: .utf8)
    }

    /// Starts node `index`'s daemon and waits until its peer API and proxy listen.
    func startDaemon(_ index: Int) async throws {
        let me = node(index)
        let daemon = try network.spawn(
            on: me, name: "daemon-n\(index)-\(daemons.count)", executable: binary,
            arguments: ["daemon", "--config", configPath(index), "--log-level", "debug"], logDirectory: "\(work.path)/n\(index)")
        daemons[index] = daemon
        try await network.waitForTCPPort(from: me, host: me.address, port: Self.peerPort, process: daemon, timeout: 30)
        try await network.waitForTCPPort(from: me, host: me.address, port: Self.proxyPort, process: daemon, timeout: 30)
    }

    /// Stops node `index`'s daemon (SIGTERM, then SIGKILL).
    func stopDaemon(_ index: Int) async {
        await daemons.removeValue(forKey: index)?.stop(gracePeriod: 10)
    }

    /// The daemon log of node `index`, for failure messages.
    func daemonLog(_ index: Int) -> String {
        (daemons[index]?.logTail(lines: 60) ?? "(not running)").split(separator: "\n").filter { !$0.contains("backend unreachable") && !$0.contains("client connection error") }.joined(separator: "\n")
    }

    /// The whole daemon log of node `index` (empty when it never ran).
    func fullDaemonLog(_ index: Int) -> String {
        daemons[index]?.logTail(lines: 1_000_000) ?? ""
    }

    /// Runs `certkeeper <arguments> --config <node's config>` inside node `index`.
    func cli(_ index: Int, _ arguments: [String], timeout: Double = 120) async throws -> (exitCode: Int32, stdout: String, stderr: String) {
        try await network.run(on: node(index), executable: binary, arguments: arguments + ["--config", configPath(index)], timeout: timeout)
    }

    /// The certificate node `index` has installed, read from its store.
    func installed(_ index: Int) -> CertificateMeta? {
        let store = CertificateStore(root: stateDirectory(index), logger: Logger(label: "cluster-test"))
        return (try? store.meta(name: Self.certificateName)) ?? nil
    }

    /// The serial (normalised hex) node `index`'s proxy serves, asked with `openssl s_client` from inside the node.
    func servedSerial(_ index: Int) async -> String? {
        let me = node(index)
        let command = "openssl s_client -connect \(me.address):\(Self.proxyPort) -servername \(Self.domain) </dev/null 2>/dev/null | openssl x509 -noout -serial"
        guard let result = try? await network.run(on: me, executable: "/bin/sh", arguments: ["-c", command], timeout: 20),
              result.exitCode == 0, let line = result.stdout.split(separator: "\n").first(where: { $0.hasPrefix("serial=") }) else { return nil }
        return Self.normalised(String(line.dropFirst("serial=".count)))
    }

    /// Waits (at most `timeout` seconds, polling every 100 ms) until node `index`'s proxy serves `serial`.
    func waitUntilServed(_ index: Int, serial: String, timeout: Double = 30) async -> Bool {
        let wanted = Self.normalised(serial)
        let deadline = ContinuousClock.now + .milliseconds(Int(timeout * 1000))
        while ContinuousClock.now < deadline {
            if await servedSerial(index) == wanted { return true }
            try? await Task.sleep(for: .milliseconds(100))
        }
        return false
    }

    /// Waits (bounded) until `condition` holds.
    func eventually(timeout: Double, _ condition: () async -> Bool) async -> Bool {
        let deadline = ContinuousClock.now + .milliseconds(Int(timeout * 1000))
        while ContinuousClock.now < deadline {
            if await condition() { return true }
            try? await Task.sleep(for: .milliseconds(200))
        }
        return await condition()
    }

    /// Lowercase hex without leading zeros or colons.
    static func normalised(_ serial: String) -> String {
        let hex = serial.lowercased().filter { $0 != ":" }.drop { $0 == "0" }
        return hex.isEmpty ? "0" : String(hex)
    }

    private func expectSuccess(_ result: (exitCode: Int32, stdout: String, stderr: String), _ what: String) throws {
        guard result.exitCode == 0 else {
            throw TestSupportError.certificate(what: what, reason: "exit \(result.exitCode): \(result.stderr.suffix(600))")
        }
    }
}

/// Runs `body` with a fixture and always destroys it.
func withCluster(
    label: String, roles: [String], pebbleOn: [Int], pebbleOptions: PebbleServer.Options = PebbleServer.Options(alwaysValid: true),
    pebbleOptionsByNode: [Int: PebbleServer.Options] = [:], clusterExtra: String = "", certificatesExtra: String = "",
    frontendsExtra: String = "", topLevelExtra: String = "", _ body: (ClusterFixture) async throws -> Void
) async throws {
    let fixture = try await ClusterFixture.make(
        label: label, roles: roles, pebbleOn: pebbleOn, pebbleOptions: pebbleOptions, pebbleOptionsByNode: pebbleOptionsByNode,
        clusterExtra: clusterExtra, certificatesExtra: certificatesExtra, frontendsExtra: frontendsExtra, topLevelExtra: topLevelExtra)
    do {
        try await body(fixture)
    } catch {
        await fixture.destroy()
        throw error
    }
    await fixture.destroy()
}
