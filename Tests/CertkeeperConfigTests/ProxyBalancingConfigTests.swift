import Testing

@testable import CertkeeperConfig

@Suite("proxy.frontends[]: servers, balance, health checks, PROXY protocol")
struct ProxyBalancingConfigTests {
    static let frontends = """
        proxy:
          frontends:
            - name: web
              listen: "0.0.0.0:443"
              balance: leastconn
              prefer_local: true
              on_marked_down: shutdown_sessions
              maxconn: 2000
              check: {type: http, path: /health, expect_status: 204, interval: 1s, fall: 2, rise: 3}
              backends:
                - "10.0.0.1:8080"
                - {address: "10.0.0.2:8080", name: node2, weight: 3, maxconn: 100, local: false}
                - {address: "10.0.0.3:8080", backup: true, check: false}
                - {address: "10.0.0.4:8080", check: {type: tls, port: 8443, timeout: 0.5}}
            - name: mqtt
              listen: "0.0.0.0:8883"
              proxy_protocol: v2
              check: true
              backends:
                - "127.0.0.1:1883"
                - {address: "127.0.0.2:1883", proxy_protocol: none}

        """

    @Test("servers may be strings or mappings; every key is read, defaults fill the rest")
    func parses() throws {
        let proxy = try #require(try parsed(minimalYAML + Self.frontends).proxy)
        let web = proxy.frontends[0]
        #expect(web.balance == .leastconn)
        #expect(web.preferLocal)
        #expect(web.onMarkedDown == .shutdownSessions)
        #expect(web.maxConnections == 2000)
        #expect(web.check == HealthCheckSettings(kind: .http, path: "/health", expectStatus: 204, interval: 1, fall: 2, rise: 3))
        #expect(web.servers[0] == BackendServerSettings(address: ListenAddress(host: "10.0.0.1", port: 8080)))
        #expect(web.servers[1] == BackendServerSettings(
            address: ListenAddress(host: "10.0.0.2", port: 8080), name: "node2", weight: 3, local: false, maxConnections: 100))
        #expect(web.servers[2].backup)
        #expect(web.servers[2].check == .disabled)
        #expect(web.servers[3].check == .custom(HealthCheckSettings(kind: .tls, port: 8443, timeout: 0.5)))
        #expect(web.backends.count == 4)

        let mqtt = proxy.frontends[1]
        #expect(mqtt.balance == .roundrobin)
        #expect(mqtt.proxyProtocol)
        #expect(mqtt.check == HealthCheckSettings())
        #expect(mqtt.servers[1].proxyProtocol == false)
        #expect(mqtt.servers[0].proxyProtocol == nil)
        #expect(mqtt.onMarkedDown == .keepSessions)
    }

    static let prefix = "proxy:\n  frontends:\n    - {name: a, listen: \"127.0.0.1:1\", "

    @Test("mistakes are reported with their key paths", arguments: [
        (prefix + "balance: random, backends: [\"127.0.0.1:2\"]}\n", "proxy.frontends[0].balance", "'random' is not one of: roundrobin, leastconn, first"),
        (prefix + "proxy_protocol: v1, backends: [\"127.0.0.1:2\"]}\n", "proxy.frontends[0].proxy_protocol", "'v1' is not a PROXY protocol version; use v2 or none"),
        (prefix + "maxconn: 0, backends: [\"127.0.0.1:2\"]}\n", "proxy.frontends[0].maxconn", "must be between 1 and 1000000, got 0"),
        (prefix + "prefer_local: yes please, backends: [\"127.0.0.1:2\"]}\n", "proxy.frontends[0].prefer_local", "expected true or false, got a string ('yes please')"),
        (prefix + "on_marked_down: drop, backends: [\"127.0.0.1:2\"]}\n", "proxy.frontends[0].on_marked_down", "'drop' is not one of: keep_sessions, shutdown_sessions"),
        (prefix + "backends: [{name: x}]}\n", "proxy.frontends[0].backends[0].address", "required key is missing"),
        (prefix + "backends: [{address: \"127.0.0.1:2\", weight: 300}]}\n", "proxy.frontends[0].backends[0].weight", "must be between 0 and 256, got 300"),
        (prefix + "backends: [{address: \"127.0.0.1:2\", wieght: 3}]}\n", "proxy.frontends[0].backends[0].wieght", "unknown key; did you mean 'weight'?"),
        (prefix + "backends: [\"127.0.0.1:2\", \"127.0.0.1:2\"]}\n", "proxy.frontends[0].backends[1]", "duplicate backend '127.0.0.1:2' (also proxy.frontends[0].backends[0]); give one a different name"),
        (prefix + "check: {type: smtp}, backends: [\"127.0.0.1:2\"]}\n", "proxy.frontends[0].check.type", "'smtp' is not one of: tcp, http, tls"),
        (prefix + "check: {path: /x}, backends: [\"127.0.0.1:2\"]}\n", "proxy.frontends[0].check.path", "only applies to type: http"),
        (prefix + "check: {type: http, path: x}, backends: [\"127.0.0.1:2\"]}\n", "proxy.frontends[0].check.path", "'x' is not an HTTP path: it must start with / and contain no spaces or line breaks"),
        (prefix + "check: {type: http, method: get}, backends: [\"127.0.0.1:2\"]}\n", "proxy.frontends[0].check.method", "'get' is not an HTTP method: use upper-case letters, like GET or HEAD"),
        (prefix + "check: {interval: 1s, timeout: 2s}, backends: [\"127.0.0.1:2\"]}\n", "proxy.frontends[0].check.timeout", "must be at most the interval (1s)"),
        (prefix + "backends: [{address: \"127.0.0.1:2\", check: {fall: 0}}]}\n", "proxy.frontends[0].backends[0].check.fall", "must be between 1 and 100, got 0"),
        (prefix + "backends: [{address: \"127.0.0.1:2\", check: {port: 70000}}]}\n", "proxy.frontends[0].backends[0].check.port", "must be between 1 and 65535, got 70000"),
    ])
    func mistakes(yaml: String, path: String, message: String) {
        let issue = singleIssue(in: minimalYAML + yaml)
        #expect(issue?.keyPath == path)
        #expect(issue?.message == message)
    }
}
