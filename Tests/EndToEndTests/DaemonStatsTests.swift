import CertStore
import CertkeeperTestSupport
import Foundation
import Logging
import Testing
import X509

/// `certkeeper daemon` with a proxy frontend and a `stats:` listener: /metrics, /status.json and the page, read
/// with curl as an independent client.
@Suite("certkeeper daemon: stats listener", .serialized)
struct DaemonStatsTests {
    /// The subset of /status.json the test reads (decoded independently of the product's types).
    struct Status: Decodable {
        struct Frontend: Decodable {
            struct Backend: Decodable {
                struct Server: Decodable {
                    struct Check: Decodable {
                        let passed: Bool
                        let detail: String
                    }

                    let name: String
                    let state: String
                    let totalConnections: Int
                    let lastCheck: Check?
                }

                let state: String
                let servers: [Server]
            }

            let name: String
            let activeConnections: Int
            let totalConnections: Int
            let backend: Backend
        }

        struct Certificate: Decodable {
            let name: String
            let serial: String
            let secondsLeft: Int
        }

        let frontends: [Frontend]
        let certificates: [Certificate]
    }

    @Test("/metrics shows the served certificate's serial and a connection count that grows; /status.json decodes; 404 elsewhere")
    func statsEndpoints() async throws {
        let directory = try TemporaryDirectory(name: "daemon-stats")
        defer { directory.remove() }
        let state = directory.appending("state")
        let root = try TestCA.make(commonName: "daemon stats test root")
        let rootPath = try directory.write(root.certificatePEM, to: "root.pem")
        let store = CertificateStore(root: state, logger: Logger(label: "daemon-stats-test"))
        let ca = try root.issueIntermediate(commonName: "daemon stats test intermediate")
        let leaf = try ca.issueLeaf(dnsNames: ["stats.example"], notAfter: Date().addingTimeInterval(30 * 86_400))
        let bundle = CertificateBundle(certificatePEM: leaf.certificatePEM, chainPEM: leaf.chainPEM, privateKeyPEM: leaf.privateKeyPEM)
        try store.install(try BundleVerifier().verify(bundle, expectedDomains: ["stats.example"], now: Date()), name: "web", issuedBy: "test", now: Date())

        _ = try directory.write("hello from the backend\n", to: "site/index.html")
        let backend = try await StaticFileServer.start(rootDirectory: directory.appending("site"))
        defer { Task { await backend.stop() } }
        let ports = try PortAllocator.shared.allocate(count: 2)
        let (proxyPort, statsPort) = (ports[0], ports[1])
        let configPath = try directory.write(
            """
            state_dir: \(state)
            acme:
              directory: https://acme.invalid/directory
            certificates:
              - {name: web, domains: [stats.example]}
            proxy:
              threads: 1
              grace: 1s
              frontends:
                - name: web
                  listen: "127.0.0.1:\(proxyPort)"
                  check: {type: tcp, interval: 1s}
                  backends:
                    - {name: site, address: "127.0.0.1:\(backend.port)"}
            stats:
              listen: "127.0.0.1:\(statsPort)"

            """, to: "certkeeper.yaml")

        let daemon = try CLI.start(["daemon", "--config", configPath], logDirectory: directory.path)
        try await withDaemon(daemon) {
            try await daemon.waitForTCPPort(port: proxyPort)
            try await daemon.waitForTCPPort(port: statsPort)
            func get(_ path: String, _ extra: [String] = []) throws -> (status: Int32, output: String) {
                try tool("/usr/bin/curl", ["-sS", "--max-time", "10"] + extra + ["http://127.0.0.1:\(statsPort)\(path)"])
            }
            func sample(_ metric: String) throws -> Int? {
                let line = try get("/metrics").output.split(separator: "\n").first { $0.hasPrefix(#"\#(metric){frontend="web"} "#) }
                return line.flatMap { $0.split(separator: " ").last }.flatMap { Int($0) }
            }
            func frontendTotal() throws -> Int? { try sample("certkeeper_frontend_connections_total") }
            func fetchThroughProxy() throws -> String {
                try tool("/usr/bin/curl", ["-sS", "--max-time", "10", "--cacert", rootPath, "--resolve", "stats.example:\(proxyPort):127.0.0.1",
                                           "https://stats.example:\(proxyPort)/index.html"]).output
            }

            let metrics = try get("/metrics").output
            let serial = hexSerial(leaf.certificate)
            let infoLine = metrics.split(separator: "\n").first { $0.hasPrefix(#"certkeeper_certificate_info{name="web",serial=""#) }
            let shownSerial = infoLine.flatMap { $0.split(separator: "\"").dropFirst(3).first }.map { normalised(String($0)) }
            #expect(shownSerial == serial, "\(metrics)")
            #expect(metrics.contains("# TYPE certkeeper_frontend_connections_total counter"))
            #expect(metrics.contains(#"certkeeper_server_up{frontend="web",server="site",address="127.0.0.1:\#(backend.port)"} 1.0"#), "\(metrics)")
            let before = try #require(try frontendTotal(), "\(metrics)")

            #expect(try fetchThroughProxy() == "hello from the backend\n")
            #expect(try await eventually(seconds: 10) { (try frontendTotal() ?? 0) > before }, "\(daemon.logTail())")

            // A plain-HTTP request to the TLS frontend is a failed handshake.
            let failuresBefore = try #require(try sample("certkeeper_frontend_handshake_failures_total"))
            _ = try tool("/usr/bin/curl", ["-sS", "--max-time", "10", "http://127.0.0.1:\(proxyPort)/"])
            #expect(try await eventually(seconds: 10) { (try sample("certkeeper_frontend_handshake_failures_total") ?? 0) > failuresBefore })

            let json = try get("/status.json")
            let decoder = JSONDecoder()
            decoder.keyDecodingStrategy = .convertFromSnakeCase
            let status = try decoder.decode(Status.self, from: Data(json.output.utf8))
            let frontend = try #require(status.frontends.first { $0.name == "web" }, "\(json.output)")
            #expect(frontend.totalConnections > before)
            #expect(frontend.backend.state == "up")
            #expect(frontend.backend.servers.map(\.name) == ["site"])
            #expect(frontend.backend.servers.first?.totalConnections ?? 0 >= 1)
            let certificate = try #require(status.certificates.first, "\(json.output)")
            #expect(certificate.name == "web")
            #expect(normalised(certificate.serial) == serial)
            #expect((29 * 86_400...30 * 86_400).contains(certificate.secondsLeft))
            // The health check runs every second; its first result shows up.
            #expect(try await eventually(seconds: 15) {
                let again = try decoder.decode(Status.self, from: Data(try get("/status.json").output.utf8))
                return again.frontends.first?.backend.servers.first?.lastCheck?.passed == true
            })

            let page = try get("/")
            #expect(page.output.contains("<td>site (local)</td>"), "\(page.output)")
            #expect(page.output.contains("stats.example"))
            #expect(try get("/nope", ["-o", "/dev/null", "-w", "%{http_code}"]).output == "404")
            #expect(try get("/metrics", ["-o", "/dev/null", "-w", "%{http_code}", "-X", "POST"]).output == "405")
            #expect(try get("/metrics", ["-I"]).output.contains("content-type: text/plain; version=0.0.4"))

        }
    }

    @Test("without a proxy, /status.json and /metrics show the store's certificates (an internal one issued at start)")
    func storeCertificatesWithoutProxy() async throws {
        let directory = try TemporaryDirectory(name: "daemon-stats-store")
        defer { directory.remove() }
        let state = directory.appending("state")
        let statsPort = try PortAllocator.shared.allocate(count: 1)[0]
        let path = try directory.write(
            """
            state_dir: \(state)
            certificates:
              - {name: internal-web, domains: [localhost], issuer: internal}
            stats:
              listen: "127.0.0.1:\(statsPort)"
              path_prefix: /stats

            """, to: "certkeeper.yaml")
        let daemon = try CLI.start(["daemon", "--config", path], logDirectory: directory.path)
        try await withDaemon(daemon) {
            try await daemon.waitForTCPPort(port: statsPort)
            let metaPath = "\(state)/live/internal-web/meta.json"
            #expect(try await eventually(seconds: 30) { FileManager.default.fileExists(atPath: metaPath) }, "\(daemon.logTail())")
            let meta = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: metaPath))) as? [String: Any])
            let serial = try #require(meta["serial"] as? String)

            let json = try tool("/usr/bin/curl", ["-sS", "--max-time", "10", "http://127.0.0.1:\(statsPort)/stats/status.json"]).output
            let decoder = JSONDecoder()
            decoder.keyDecodingStrategy = .convertFromSnakeCase
            let status = try decoder.decode(Status.self, from: Data(json.utf8))
            #expect(status.frontends.isEmpty)
            #expect(status.certificates.map(\.name) == ["internal-web"], "\(json)")
            #expect(status.certificates.first?.serial == serial)
            #expect(status.certificates.first.map { $0.secondsLeft > 0 } == true)
            let metrics = try tool("/usr/bin/curl", ["-sS", "--max-time", "10", "http://127.0.0.1:\(statsPort)/stats/metrics"]).output
            #expect(metrics.contains(#"certkeeper_certificate_info{name="internal-web",serial="\#(serial)""#), "\(metrics)")

        }
    }

    @Test("a public stats address is refused at start with one line naming the key")
    func publicAddressRefused() async throws {
        let directory = try TemporaryDirectory(name: "daemon-stats-public")
        defer { directory.remove() }
        let path = try directory.write(
            """
            state_dir: \(directory.appending("state"))
            certificates:
              - {name: web, domains: [stats.example], issuer: internal}
            stats:
              listen: "0.0.0.0:7000"

            """, to: "certkeeper.yaml")
        let result = try await CLI.run(["daemon", "--config", path])
        #expect(result.exitCode == 2, "\(result.stderr)")
        #expect(result.stderr.contains("stats.listen"), "\(result.stderr)")
        #expect(result.stderr.contains("allow_public"), "\(result.stderr)")
    }
}
