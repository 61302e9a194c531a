import CertStore
import CertkeeperTestSupport
import Foundation
import Logging
import Testing
import X509

/// `certkeeper daemon` with a `proxy:` section and no cluster: frontends from the YAML file, certificates from the
/// store, SIGHUP re-reading the file without closing connections, SIGTERM draining.
@Suite("certkeeper daemon: the proxy from the configuration file", .serialized)
struct DaemonProxyTests {
    @Test("serves the store's certificate, hot-swaps a new install, applies SIGHUP without dropping a download, refuses a broken file, exits 0 on SIGTERM")
    func proxyFromConfiguration() async throws {
        let directory = try TemporaryDirectory(name: "daemon-proxy")
        defer { directory.remove() }
        let state = directory.appending("state")
        let root = try TestCA.make(commonName: "daemon proxy test root")
        let ca = try root.issueIntermediate(commonName: "daemon proxy test intermediate")
        let rootPath = try directory.write(root.certificatePEM, to: "root.pem")
        let store = CertificateStore(root: state, logger: Logger(label: "daemon-proxy-test"))
        func install(_ leaf: TestCertificate) throws {
            let bundle = CertificateBundle(certificatePEM: leaf.certificatePEM, chainPEM: leaf.chainPEM, privateKeyPEM: leaf.privateKeyPEM)
            try store.install(try BundleVerifier().verify(bundle, expectedDomains: ["daemon.example"], now: Date()), name: "web", issuedBy: "test", now: Date())
        }
        let first = try ca.issueLeaf(dnsNames: ["daemon.example"])
        try install(first)

        // A 4 MiB file, downloaded slowly across the SIGHUP.
        _ = try directory.write("hello from the backend\n", to: "site/index.html")
        _ = try directory.write(String(repeating: "0123456789abcdef", count: 256 * 1024), to: "site/large.bin")
        let backend = try await StaticFileServer.start(rootDirectory: directory.appending("site"))
        defer { Task { await backend.stop() } }
        let ports = try PortAllocator.shared.allocate(count: 2)
        func config(frontends: String) -> String {
            """
            state_dir: \(state)
            acme:
              directory: https://acme.invalid/directory
            certificates:
              - {name: web, domains: [daemon.example]}
            proxy:
              threads: 1
              grace: 5s
              default_certificate: web
              frontends:
            \(frontends)

            """
        }
        let frontendA = "    - {name: a, listen: \"127.0.0.1:\(ports[0])\", backends: [\"127.0.0.1:\(backend.port)\"]}"
        let frontendB = "    - {name: b, listen: \"127.0.0.1:\(ports[1])\", alpn: [http/1.1], backends: [\"127.0.0.1:\(backend.port)\"]}"
        let configPath = try directory.write(config(frontends: frontendA), to: "certkeeper.yaml")

        let daemon = try CLI.start(["daemon", "--config", configPath], logDirectory: directory.path)
        try await withDaemon(daemon) {
            try await daemon.waitForTCPPort(port: ports[0])
            func fetch(_ port: Int, _ path: String = "index.html") throws -> (status: Int32, output: String) {
                try tool("/usr/bin/curl", ["-sS", "--max-time", "10", "--cacert", rootPath, "--resolve", "daemon.example:\(port):127.0.0.1", "https://daemon.example:\(port)/\(path)"])
            }
            #expect(try fetch(ports[0]).output == "hello from the backend\n")
            #expect(try servedSerial(port: ports[0], serverName: "daemon.example") == hexSerial(first.certificate))

            // A new install into the store is served to the next handshakes.
            let second = try ca.issueLeaf(dnsNames: ["daemon.example"])
            try install(second)
            #expect(try await eventually(seconds: 10) { try servedSerial(port: ports[0], serverName: "daemon.example") == hexSerial(second.certificate) },
                    "the new install is not served: \(daemon.logTail())")

            // A slow download runs while SIGHUP adds frontend b; it finishes intact.
            let download = try ManagedProcess.start(
                name: "slow-download", executable: "/usr/bin/curl",
                arguments: ["-sS", "--max-time", "60", "--limit-rate", "512K", "--cacert", rootPath, "--resolve", "daemon.example:\(ports[0]):127.0.0.1",
                            "-o", directory.appending("downloaded.bin"), "https://daemon.example:\(ports[0])/large.bin"],
                logDirectory: directory.path)
            try await Task.sleep(for: .milliseconds(500))
            _ = try directory.write(config(frontends: frontendA + "\n" + frontendB), to: "certkeeper.yaml")
            daemon.send(signal: SIGHUP)
            try await daemon.waitForTCPPort(port: ports[1])
            #expect(try fetch(ports[1]).output == "hello from the backend\n")
            let alpn = try tool("/bin/sh", ["-c", "openssl s_client -connect 127.0.0.1:\(ports[1]) -servername daemon.example -alpn http/1.1 </dev/null 2>/dev/null"])
            #expect(alpn.output.contains("ALPN protocol: http/1.1"))

            // A broken file is refused: both frontends keep serving.
            _ = try directory.write(config(frontends: "    - {name: a, listen: nowhere}"), to: "certkeeper.yaml")
            daemon.send(signal: SIGHUP)
            #expect(try await eventually(seconds: 10) { daemon.logTail(lines: 50).contains("configuration refused") }, "\(daemon.logTail())")
            #expect(try fetch(ports[0]).output == "hello from the backend\n")
            #expect(try fetch(ports[1]).output == "hello from the backend\n")

            // SIGHUP removing frontend b: its listener closes, a keeps serving.
            _ = try directory.write(config(frontends: frontendA), to: "certkeeper.yaml")
            daemon.send(signal: SIGHUP)
            #expect(try await eventually(seconds: 10) { !TCPProbe.canConnect(host: "127.0.0.1", port: ports[1]) }, "\(daemon.logTail())")
            #expect(try fetch(ports[0]).output == "hello from the backend\n")

            #expect(await download.waitForExit(timeout: 60) == 0, "the download across SIGHUP failed: \(download.logTail())")
            let size = (try FileManager.default.attributesOfItem(atPath: directory.appending("downloaded.bin"))[.size] as? NSNumber)?.intValue
            #expect(size == 4 * 1024 * 1024)

        }
    }

    @Test("started on an empty state directory, the daemon serves the first certificate installed afterwards")
    func emptyStateDirectory() async throws {
        let directory = try TemporaryDirectory(name: "daemon-empty-state")
        defer { directory.remove() }
        let state = directory.appending("state")   // does not exist yet: nothing has been issued or synced
        let port = try PortAllocator.shared.allocate()
        let configPath = try directory.write(
            """
            state_dir: \(state)
            acme:
              directory: https://acme.invalid/directory
            certificates:
              - {name: web, domains: [daemon.example]}
            proxy:
              threads: 1
              grace: 1s
              frontends:
                - {name: a, listen: "127.0.0.1:\(port)", backends: ["127.0.0.1:9"]}

            """, to: "certkeeper.yaml")
        let daemon = try CLI.start(["daemon", "--config", configPath], logDirectory: directory.path)
        try await withDaemon(daemon) {
            try await daemon.waitForTCPPort(port: port)
            // The first certificate arrives later (a renew, a peer): the proxy must be watching live/ already.
            let leaf = try TestCA.make().issueIntermediate().issueLeaf(dnsNames: ["daemon.example"])
            let store = CertificateStore(root: state, logger: Logger(label: "daemon-empty-state-test"))
            let bundle = CertificateBundle(certificatePEM: leaf.certificatePEM, chainPEM: leaf.chainPEM, privateKeyPEM: leaf.privateKeyPEM)
            try store.install(try BundleVerifier().verify(bundle, expectedDomains: ["daemon.example"], now: Date()), name: "web", issuedBy: "test", now: Date())
            #expect(try await eventually(seconds: 15) { (try? servedSerial(port: port, serverName: "daemon.example")) == hexSerial(leaf.certificate) },
                    "the first certificate is not served: \(daemon.logTail())")
            #expect(!daemon.logTail(lines: 200).contains("certificate watch stopped"), "\(daemon.logTail())")
        }
    }

    @Test("a daemon with nothing to run, or a cluster without an identity, exits 2 with one line")
    func refusesNothingToRun() async throws {
        let directory = try TemporaryDirectory(name: "daemon-empty")
        defer { directory.remove() }
        let base = "state_dir: \(directory.appending("state"))\nacme:\n  directory: https://acme.invalid/directory\n"
        let empty = try directory.write(base, to: "empty.yaml")
        let result = try await CLI.run(["daemon", "--config", empty])
        #expect(result.exitCode == 2)
        #expect(result.stderr.contains("nothing to run"), "\(result.stderr)")

        let cluster = try directory.write(base + "node_name: n1\ncluster:\n  role: follower\n  listen: \"127.0.0.1:1\"\n", to: "cluster.yaml")
        let missing = try await CLI.run(["daemon", "--config", cluster])
        #expect(missing.exitCode == 2)
        #expect(missing.stderr.contains("cluster.identity"), "\(missing.stderr)")
        #expect(missing.stderr.split(separator: "\n").count == 1, "\(missing.stderr)")
    }
}
