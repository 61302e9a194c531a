import CertkeeperTestSupport
import Foundation
import NIOSSL
import Prometheus
import Testing

@testable import CertProxy
@testable import CertStats

/// A fixed snapshot: two frontends (one balanced over a checked up server, a down server and a backup; one http
/// frontend without servers) and one certificate expiring 10 days after the fixed clock.
enum Fixture {
    static let now = Date(timeIntervalSince1970: 1_800_000_000)
    static let notAfter = now.addingTimeInterval(10 * 86_400 + 0.75)

    static func frontends() -> [ProxyFrontendSnapshot] {
        let checkedUp = ProxyServerSnapshot(
            name: "node-a", address: "10.0.0.1:8080", state: .up, checked: true, backup: false, local: true, weight: 1,
            activeConnections: 2, totalConnections: 40, connectFailures: 1, bytesToServer: 1_000, bytesFromServer: 50_000,
            lastCheck: ProxyCheckResult(passed: true, detail: "status 200", time: now.addingTimeInterval(-1), duration: .milliseconds(250)))
        let down = ProxyServerSnapshot(
            name: "node-<b>", address: "10.0.0.2:8080", state: .down, checked: true, backup: false, local: false, weight: 2,
            activeConnections: 0, totalConnections: 3, connectFailures: 7, bytesToServer: 24, bytesFromServer: 0,
            lastCheck: ProxyCheckResult(passed: false, detail: "connection refused", time: now.addingTimeInterval(-2)))
        let backup = ProxyServerSnapshot(
            name: "spare", address: "10.0.0.3:8080", state: .up, checked: false, backup: true, local: false, weight: 1,
            activeConnections: 0, totalConnections: 0, connectFailures: 0, bytesToServer: 0, bytesFromServer: 0, lastCheck: nil)
        return [
            ProxyFrontendSnapshot(
                name: "web", port: 8443, activeConnections: 2, totalConnections: 45, refusedConnections: 3, noServerClosures: 1,
                handshakeFailures: 4, maxConnections: 100, balance: .roundRobin, servers: [checkedUp, down, backup]),
            ProxyFrontendSnapshot(
                name: "acme", port: 8080, activeConnections: 0, totalConnections: 9, refusedConnections: 0, noServerClosures: 0,
                handshakeFailures: 0, maxConnections: nil, balance: .first, servers: []),
        ]
    }

    static func certificate() throws -> CertificateEntry {
        let leaf = try TestCA.make().issueLeaf(dnsNames: ["www.example.org"])
        return CertificateEntry(
            name: "www", certificateChain: [try NIOSSLCertificate(bytes: Array(leaf.certificatePEM.utf8), format: .pem)],
            privateKey: try NIOSSLPrivateKey(bytes: Array(leaf.privateKeyPEM.utf8), format: .pem), dnsNames: ["www.example.org"],
            serialHex: "0a1b2c3d", sha256Hex: "ab".padding(toLength: 64, withPad: "ab", startingAt: 0), notAfter: notAfter)
    }

    static func report() throws -> StatsReport {
        StatsReport(frontends: frontends(), certificates: [try certificate()], now: now)
    }
}

@Suite("Stats rendering")
struct StatsRenderingTests {
    @Test("the report derives backend state, byte totals and seconds left from the fixed clock")
    func reportFromSnapshot() throws {
        let report = try Fixture.report()
        #expect(report.generatedAt == Fixture.now)
        let web = try #require(report.frontends.first)
        #expect(web.backend.state == .up)
        #expect(web.state == .open)
        #expect(web.backend.serversUp == 2)
        #expect(web.bytesIn == 1_024)
        #expect(web.bytesOut == 50_000)
        #expect(web.handshakeFailures == 4)
        #expect(report.frontends[1].backend.state == .none)
        #expect(web.backend.servers[0].lastCheck?.durationSeconds == 0.25)
        #expect(report.certificates == [
            CertificateStatus(
                name: "www", serial: "0a1b2c3d", sha256: String(repeating: "ab", count: 32), dnsNames: ["www.example.org"],
                notAfter: Fixture.notAfter, secondsLeft: 864_000)
        ])
    }

    @Test("a backend whose servers are all down is down")
    func allDown() {
        let server = ServerStatus(
            name: "a", address: "127.0.0.1:1", state: .down, checked: true, backup: false, local: false, weight: 1,
            activeConnections: 0, totalConnections: 0, connectFailures: 0, bytesToServer: 0, bytesFromServer: 0, lastCheck: nil)
        #expect(BackendStatus(balance: "roundrobin", servers: [server, server]).state == .down)
    }

    @Test("a frontend with maxconn connections open is full")
    func full() {
        func frontend(active: Int, max: Int?) -> FrontendStatus {
            FrontendStatus(
                name: "f", port: 1, activeConnections: active, totalConnections: active, refusedConnections: 0, noServerClosures: 0,
                handshakeFailures: 0, maxConnections: max, bytesIn: 0, bytesOut: 0, backend: BackendStatus(balance: "first", servers: []))
        }
        #expect(frontend(active: 2, max: 2).state == .full)
        #expect(frontend(active: 1, max: 2).state == .open)
        #expect(frontend(active: 5, max: nil).state == .open)
    }

    @Test("the Prometheus text has one line per frontend, server and certificate value")
    func prometheusLines() throws {
        let text = PrometheusExposition.render(try Fixture.report())
        let lines = Set(text.split(separator: "\n").map(String.init))
        let expected = [
            "# TYPE certkeeper_frontend_connections gauge",
            #"certkeeper_frontend_connections{frontend="web"} 2.0"#,
            "# TYPE certkeeper_frontend_connections_total counter",
            #"certkeeper_frontend_connections_total{frontend="web"} 45"#,
            #"certkeeper_frontend_connections_total{frontend="acme"} 9"#,
            #"certkeeper_frontend_handshake_failures_total{frontend="web"} 4"#,
            #"certkeeper_frontend_refused_connections_total{frontend="web"} 3"#,
            #"certkeeper_frontend_bytes_in_total{frontend="web"} 1024"#,
            #"certkeeper_frontend_bytes_out_total{frontend="web"} 50000"#,
            #"certkeeper_frontend_max_connections{frontend="web"} 100.0"#,
            #"certkeeper_backend_up{frontend="web"} 1.0"#,
            #"certkeeper_backend_servers_up{frontend="web"} 2.0"#,
            #"certkeeper_server_up{frontend="web",server="node-a",address="10.0.0.1:8080"} 1.0"#,
            #"certkeeper_server_up{frontend="web",server="node-<b>",address="10.0.0.2:8080"} 0.0"#,
            #"certkeeper_server_connections{frontend="web",server="node-a"} 2.0"#,
            #"certkeeper_server_connections_total{frontend="web",server="node-a"} 40"#,
            #"certkeeper_server_connect_failures_total{frontend="web",server="node-<b>"} 7"#,
            #"certkeeper_server_bytes_received_total{frontend="web",server="node-a"} 50000"#,
            #"certkeeper_server_check_success{frontend="web",server="node-a"} 1.0"#,
            #"certkeeper_server_check_success{frontend="web",server="node-<b>"} 0.0"#,
            #"certkeeper_server_check_duration_seconds{frontend="web",server="node-a"} 0.25"#,
            #"certkeeper_certificate_expiry_seconds{name="www"} 864000.0"#,
            #"certkeeper_certificate_info{name="www",serial="0a1b2c3d",sha256="\#(String(repeating: "ab", count: 32))"} 1.0"#,
        ]
        for line in expected {
            #expect(lines.contains(line), "missing: \(line)\n\(text)")
        }
        // Unchecked servers and serverless frontends have no check or backend samples.
        #expect(!text.contains(#"certkeeper_server_check_success{frontend="web",server="spare"}"#))
        #expect(!text.contains(#"certkeeper_backend_up{frontend="acme"}"#))
        // Every sample line is `name{labels} value` with a number as the value.
        for line in lines where !line.hasPrefix("#") {
            let value = line.split(separator: " ").last.map(String.init) ?? ""
            #expect(Double(value) != nil, "not a sample: \(line)")
        }
    }

    @Test("label values with quotes and backslashes are escaped")
    func escapedLabels() {
        let report = StatsReport(
            generatedAt: Fixture.now, frontends: [],
            certificates: [CertificateStatus(name: #"a"b\c"#, serial: "01", sha256: "00", dnsNames: [], notAfter: Fixture.now, secondsLeft: 0)])
        let text = PrometheusExposition.render(report)
        #expect(text.contains(#"certkeeper_certificate_expiry_seconds{name="a\"b\\c"} 0.0"#), "\(text)")
    }

    @Test("swift-metrics values in the long-lived registry follow the report's")
    func extraRegistry() throws {
        let registry = PrometheusCollectorRegistry()
        RequestCounter(registry: registry).count(status: 200)
        RequestCounter(registry: registry).count(status: 200)
        let text = PrometheusExposition.render(try Fixture.report(), extra: registry)
        #expect(text.contains(#"certkeeper_stats_requests_total{status="200"} 2"#), "\(text)")
        #expect(text.contains("certkeeper_frontend_connections"))
    }

    @Test("the JSON decodes back into the same report")
    func jsonRoundTrip() throws {
        let report = try Fixture.report()
        let data = StatusJSON.render(report)
        let decoded = try StatusJSON.makeDecoder().decode(StatsReport.self, from: data)
        // ISO 8601 keeps whole seconds; compare the rest exactly.
        #expect(decoded.frontends == report.frontends.map { frontend in
            var copy = frontend
            copy.backend.servers = copy.backend.servers.map { server in
                var server = server
                if let time = server.lastCheck?.time {
                    server.lastCheck?.time = Date(timeIntervalSince1970: time.timeIntervalSince1970.rounded(.down))
                }
                return server
            }
            return copy
        })
        #expect(decoded.certificates.map(\.serial) == ["0a1b2c3d"])
        #expect(decoded.certificates.map(\.secondsLeft) == [864_000])
        let object = try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
        let frontends = try #require(object["frontends"] as? [[String: Any]])
        #expect(frontends.first?["active_connections"] as? Int == 2)
        let backend = try #require(frontends.first?["backend"] as? [String: Any])
        #expect(backend["state"] as? String == "up")
    }

    @Test("the status page names every frontend, server and certificate, escaped")
    func htmlPage() throws {
        let html = StatusPage.render(try Fixture.report(), pathPrefix: "/stats")
        #expect(html.hasPrefix("<!DOCTYPE html>"))
        for text in ["web", "acme", "open, backend up (2/3 up, roundrobin)", "node-a", "node-&lt;b&gt;", "spare (backup)", "10.0.0.2:8080", "0a1b2c3d", "864000",
                     "passed: status 200 (250 ms", "failed: connection refused", "href=\"/stats/metrics\""] {
            #expect(html.contains(text), "missing \(text)")
        }
        #expect(!html.contains("node-<b>"))
    }
}

@Suite("Stats endpoints")
struct StatsEndpointTests {
    static let endpoints = StatsEndpoints(pathPrefix: "/stats/", collect: { (try? Fixture.report()) ?? StatsReport(generatedAt: Fixture.now, frontends: [], certificates: []) })

    @Test("paths under the prefix map to the three endpoints; others are 404")
    func routing() {
        let endpoints = Self.endpoints
        #expect(endpoints.pathPrefix == "/stats")
        #expect(endpoints.endpoint(for: "/stats/metrics") == .metrics)
        #expect(endpoints.endpoint(for: "/stats/metrics?name[]=x") == .metrics)
        #expect(endpoints.endpoint(for: "/stats/status.json") == .json)
        #expect(endpoints.endpoint(for: "/stats/") == .page)
        #expect(endpoints.endpoint(for: "/stats") == .page)
        #expect(endpoints.endpoint(for: "/metrics") == nil)
        #expect(endpoints.endpoint(for: "/stats/metrics/") == nil)
        #expect(endpoints.endpoint(for: "/statsx/metrics") == nil)
        #expect(StatsEndpoints(collect: { StatsReport(generatedAt: Fixture.now, frontends: [], certificates: []) }).endpoint(for: "/") == .page)
    }

    @Test("only GET and HEAD are answered")
    func methods() {
        let post = Self.endpoints.respond(method: "POST", target: "/stats/metrics")
        #expect(post.status == 405)
        #expect(post.headers.contains { $0.0 == "Allow" && $0.1 == "GET, HEAD" })
        #expect(Self.endpoints.respond(method: "GET", target: "/nope").status == 404)
        let metrics = Self.endpoints.respond(method: "HEAD", target: "/stats/metrics")
        #expect(metrics.status == 200)
        #expect(metrics.contentType == PrometheusExposition.contentType)
        #expect(Self.endpoints.respond(method: "GET", target: "/stats/status.json").contentType == StatusJSON.contentType)
    }
}
