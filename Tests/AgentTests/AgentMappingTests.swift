import Agent
import CertProxy
import CertkeeperConfig
import NIOCore
import Testing

@Suite("The agent's configuration → runtime mapping and the SIGHUP reload plan")
struct AgentMappingTests {
    static func configuration(_ proxyYAML: String, certificates: String = "  - {name: web, issuer: internal, domains: [web.internal]}") throws -> CertkeeperConfiguration {
        try ConfigLoader.parse(yaml: """
            state_dir: /tmp/certkeeper-agent-test
            certificates:
            \(certificates)
            proxy:
              frontends:
            \(proxyYAML)
            """, source: "test.yaml")
    }

    @Test("every configured balance maps to the proxy's own; checks are inherited, disabled or a server's own; timeouts carry over")
    func frontendMapping() throws {
        let configuration = try Self.configuration("""
                - name: a
                  listen: "127.0.0.1:18443"
                  balance: leastconn
                  handshake_timeout: 2.5s
                  check: {type: tcp, interval: 3s, fall: 4, rise: 5}
                  backends:
                    - "127.0.0.1:9001"
                    - {address: "127.0.0.1:9002", check: false, weight: 3, backup: true}
                    - {address: "127.0.0.1:9003", check: {type: http, path: /health, interval: 1s}}
                - {name: b, listen: "127.0.0.1:18444", balance: first, backends: ["127.0.0.1:9004"]}
                - {name: c, listen: "127.0.0.1:18445", backends: ["127.0.0.1:9005"]}
            """)
        let settings = try #require(configuration.proxy)
        let frontends = DaemonProxy.frontends(settings)
        #expect(frontends.map(\.pool.balance) == [.leastConnections, .first, .roundRobin])
        for balance in FrontendSettings.Balance.allCases {
            #expect(ProxyBalance(rawValue: balance.rawValue) != nil, "the proxy lacks balance \(balance)")
        }
        let servers = frontends[0].pool.servers
        #expect(servers[0].check?.kind == .tcp && servers[0].check?.fall == 4 && servers[0].check?.rise == 5)
        #expect(servers[0].check?.interval == .seconds(3))
        #expect(servers[1].check == nil && servers[1].weight == 3 && servers[1].backup)
        guard case .http(_, let path, _)? = servers[2].check?.kind else {
            Issue.record("the server's own http check was not kept: \(String(describing: servers[2].check))")
            return
        }
        #expect(path == "/health" && servers[2].check?.interval == .seconds(1))
        #expect(frontends[0].timeouts.handshake == .milliseconds(2500))
        #expect(frontends[0].host == "127.0.0.1" && frontends[0].port == 18443)
    }

    @Test("the reload plan: a proxy-only change applies; another setting waits for a restart; a proxy added to a daemon without one waits too")
    func reloadPlan() throws {
        let running = try Self.configuration("""
                - {name: a, listen: "127.0.0.1:18443", backends: ["127.0.0.1:9001"]}
            """)
        let proxyOnly = try Self.configuration("""
                - {name: a, listen: "127.0.0.1:18443", backends: ["127.0.0.1:9001", "127.0.0.1:9002"]}
            """)
        let plan = ReloadPlan.plan(running: running, next: proxyOnly, proxyRunning: true)
        #expect(plan.proxyFrontends == proxyOnly.proxy && !plan.otherSettingsChanged && !plan.proxyAddedWhileStopped)

        let otherToo = try Self.configuration("""
                - {name: a, listen: "127.0.0.1:18443", backends: ["127.0.0.1:9001"]}
            """, certificates: "  - {name: web, issuer: internal, domains: [web.internal, www.internal]}")
        #expect(ReloadPlan.plan(running: running, next: otherToo, proxyRunning: true).otherSettingsChanged)
        #expect(!ReloadPlan.plan(running: running, next: running, proxyRunning: true).otherSettingsChanged)

        let added = ReloadPlan.plan(running: running, next: proxyOnly, proxyRunning: false)
        #expect(added.proxyFrontends == nil && added.proxyAddedWhileStopped)
    }

    @Test("the node name is node_name, else the host name, in one place")
    func nodeName() throws {
        var configuration = try Self.configuration("""
                - {name: a, listen: "127.0.0.1:18443", backends: ["127.0.0.1:9001"]}
            """)
        configuration.nodeName = "n7"
        #expect(NodeContext.nodeName(configuration) == "n7")
        configuration.nodeName = nil
        #expect(!NodeContext.nodeName(configuration).isEmpty)
    }
}
