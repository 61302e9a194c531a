import CertkeeperTestSupport
import Foundation
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// The network-namespace harness the cluster tests build on: real TCP between nodes, partitions, clean teardown.
/// Needs root and iproute2 (both present in CI).
@Suite("TestNetwork: namespaces, bridge, partitions")
struct TestNetworkTests {
    /// Each node has its own network stack, so a fixed port cannot clash with anything else on the machine.
    private static let port = 4433

    @Test("a TLS listener on n2 answers n1 over the bridge; nodes have only lo and eth0, the host none of their addresses")
    func tcpBetweenNodes() async throws {
        let directory = try TemporaryDirectory(name: "netns-tcp")
        defer { directory.remove() }
        try await withTestNetwork(nodes: 3, label: "tcp") { net in
            let (n1, n2) = (net.nodes[0], net.nodes[1])
            #expect(net.nodes.map(\.address).count == Set(net.nodes.map(\.address)).count)
            let (server, leaf) = try startListener(on: n2, in: net, directory: directory)
            try await net.waitForTCPPort(from: n2, host: n2.address, port: Self.port, process: server)

            // A real TLS handshake across the bridge: the client in n1 receives the certificate n2 serves.
            let client = try await net.run(
                on: n1, executable: "/usr/bin/openssl",
                arguments: ["s_client", "-connect", "\(n2.address):\(Self.port)", "-servername", "n2.test"],
                timeout: 30)
            #expect(client.stdout.contains(leaf.certificatePEM.trimmingCharacters(in: .whitespacesAndNewlines)),
                    "s_client from \(n1): status \(client.exitCode), \(client.stderr)")
            #expect(await net.canConnect(from: n1, to: n2.address, port: Self.port))

            // Each node sees exactly lo (up) and its eth0; nothing was added to the host's namespace. (A connect
            // from the host proves nothing: some sandboxes accept every outgoing TCP connection.)
            for node in net.nodes {
                let links = try await net.run(on: node, executable: "/bin/bash", arguments: ["-c", "ip -o link show"])
                let names = links.stdout.split(separator: "\n").compactMap { $0.split(separator: ":").dropFirst().first }
                    .map { $0.trimmingCharacters(in: .whitespaces).split(separator: "@").first.map(String.init) ?? "" }
                #expect(names.sorted() == ["eth0", "lo"], "links in \(node): \(links.stdout)")
                #expect(links.stdout.contains("1: lo: <LOOPBACK,UP"), "lo in \(node): \(links.stdout)")
            }
            let hostAddresses = try await OneShotProcess.run(executable: "/bin/bash", arguments: ["-c", "ip -o addr show"])
            for node in net.nodes {
                #expect(!hostAddresses.stdout.contains(node.address + "/"), "host namespace has \(node.address)")
            }
        }
    }

    @Test("a partitioned node is unreachable while its link is down and reachable again after")
    func partition() async throws {
        let directory = try TemporaryDirectory(name: "netns-partition")
        defer { directory.remove() }
        try await withTestNetwork(nodes: 3, label: "part") { net in
            let (n1, n3) = (net.nodes[0], net.nodes[2])
            let (server, _) = try startListener(on: n3, in: net, directory: directory)
            try await net.waitForTCPPort(from: n1, host: n3.address, port: Self.port, process: server)

            try await net.setLink(n3, up: false)
            #expect(!(await net.canConnect(from: n1, to: n3.address, port: Self.port, timeoutMilliseconds: 1000)))
            // The partitioned node still serves itself.
            #expect(await net.canConnect(from: n3, to: n3.address, port: Self.port))

            try await net.setLink(n3, up: true)
            try await net.waitForTCPPort(from: n1, host: n3.address, port: Self.port, process: server, timeout: 30)
        }
    }

    @Test("destroy kills what runs inside and removes every namespace, also when the body throws")
    func destroyLeavesNothing() async throws {
        struct Planned: Error {}
        var prefix = ""
        var strayPID: pid_t = 0
        await #expect(throws: Planned.self) {
            try await withTestNetwork(nodes: 2, label: "gone") { net in
                prefix = net.prefix
                // A daemon the test never tracked, detached inside n2: only `ip netns pids` can find it.
                let started = try await net.run(
                    on: net.nodes[1], executable: "/bin/bash",
                    arguments: ["-c", "setsid sleep 600 </dev/null >/dev/null 2>&1 & echo $!"])
                strayPID = pid_t(started.stdout.trimmingCharacters(in: .whitespacesAndNewlines)) ?? 0
                let namespaces = try await TestNetwork.existingNamespaces()
                #expect(namespaces.filter { $0.hasPrefix(net.prefix) }.count == 3)
                throw Planned()
            }
        }
        #expect(!prefix.isEmpty)
        let left = try await TestNetwork.existingNamespaces().filter { $0.hasPrefix(prefix) }
        #expect(left.isEmpty, "left behind: \(left)")
        #expect(strayPID > 0)
        #expect(!isAlive(strayPID), "process \(strayPID) started inside the network still runs")
    }

    /// Whether `pid` exists and is not a zombie (a killed orphan stays one until the container's init reaps it).
    private func isAlive(_ pid: pid_t) -> Bool {
        guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
              let afterName = stat.range(of: ") ") else { return false }
        return !stat[afterName.upperBound...].hasPrefix("Z")
    }

    /// `openssl s_server` on `node`'s address with a fresh test certificate.
    private func startListener(
        on node: TestNode, in net: TestNetwork, directory: TemporaryDirectory
    ) throws -> (ManagedProcess, TestCertificate) {
        let ca = try TestCA.make(commonName: "netns test CA \(node.index)")
        let leaf = try ca.issueLeaf(dnsNames: ["n\(node.index).test"], ipAddresses: [node.address])
        let certPath = try directory.write(leaf.fullChainPEM, to: "n\(node.index)-cert.pem")
        let keyPath = try directory.write(leaf.privateKeyPEM, to: "n\(node.index)-key.pem")
        let server = try net.spawn(
            on: node, name: "s_server-n\(node.index)", executable: "/usr/bin/openssl",
            arguments: ["s_server", "-accept", "\(node.address):\(Self.port)", "-cert", certPath, "-key", keyPath, "-www", "-quiet"],
            logDirectory: directory.path)
        return (server, leaf)
    }
}
