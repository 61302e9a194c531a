import Testing

@testable import CertkeeperConfig

@Suite("cluster: and proxy: sections")
struct DaemonConfigTests {
    static let cluster = """
        node_name: n1
        cluster:
          role: standby
          listen: "10.9.0.1:7443"
          long_poll: 30s
          takeover_after: 10m
          takeover_margin: 0
          peers:
            - {name: n2, address: "10.9.0.2:7443"}
            - {name: n3, address: "10.9.0.3:7443"}

        """

    static let proxy = """
        certificates:
          - {name: web, domains: [example.com]}
        proxy:
          threads: 2
          grace: 5s
          default_certificate: web
          frontends:
            - name: https
              listen: "0.0.0.0:8443"
              alpn: [h2, http/1.1]
              min_tls: "1.3"
              backends: ["127.0.0.1:8080", "127.0.0.2:8080"]
              idle_timeout: 1m
            - {name: raw, listen: "0.0.0.0:18083", mode: tcp, backends: ["127.0.0.1:18083"]}

        """

    @Test("a cluster section parses with its defaults")
    func clusterParses() throws {
        let configuration = try parsed(minimalYAML + Self.cluster)
        let cluster = try #require(configuration.cluster)
        #expect(cluster.role == .standby)
        #expect(cluster.listen == ListenAddress(host: "10.9.0.1", port: 7443))
        #expect(cluster.peers.map(\.name) == ["n2", "n3"])
        #expect(cluster.peers[1].address == ListenAddress(host: "10.9.0.3", port: 7443))
        #expect(cluster.longPollTimeout == 30)
        #expect(cluster.antiEntropyInterval == ClusterSettings.defaultAntiEntropyInterval)
        #expect(cluster.takeoverAfter == 600)
        #expect(cluster.takeoverMargin == 0)
        #expect(cluster.identityFile(stateDirectory: "/s") == "/s/cluster/identity.pem")
    }

    @Test("no cluster and no proxy section means a single node without a proxy")
    func absentSections() throws {
        let configuration = try parsed(minimalYAML)
        #expect(configuration.cluster == nil)
        #expect(configuration.proxy == nil)
    }

    @Test("cluster mistakes are reported with their key paths", arguments: [
        ("cluster:\n  role: leader\n  listen: \"10.0.0.1:7443\"\n", "cluster.role", "'leader' is not one of: renewer, follower, standby"),
        ("cluster:\n  role: renewer\n", "cluster.listen", "required key is missing"),
        ("cluster:\n  role: renewer\n  listen: \"10.0.0.1\"\n", "cluster.listen", "'10.0.0.1' is not a valid listen address: no port; write host:port, for example 0.0.0.0:80 or [::1]:80"),
        ("node_name: n1\ncluster:\n  role: renewer\n  listen: \"10.0.0.1:1\"\n  peers: [{name: n1, address: \"10.0.0.2:1\"}]\n", "cluster.peers[0].name", "'n1' is this node's own node_name"),
        ("cluster:\n  role: renewer\n  listen: \"10.0.0.1:1\"\n  peers: [{name: a, address: \"10.0.0.2:1\"}, {name: A, address: \"10.0.0.3:1\"}]\n", "cluster.peers[1].name", "duplicate peer name 'A' (also used by cluster.peers[0])"),
        ("cluster:\n  role: renewer\n  listen: \"10.0.0.1:1\"\n  peers: [{name: ../x, address: \"10.0.0.2:1\"}]\n", "cluster.peers[0].name", nil),
        ("cluster:\n  role: renewer\n  listen: \"10.0.0.1:1\"\n  long_poll: 1h\n", "cluster.long_poll", "must be at most 10m"),
    ])
    func clusterMistakes(yaml: String, path: String, message: String?) {
        let issue = singleIssue(in: minimalYAML + yaml)
        #expect(issue?.keyPath == path)
        if let message { #expect(issue?.message == message) }
    }

    @Test("a proxy section parses")
    func proxyParses() throws {
        let configuration = try parsed(minimalYAML + Self.proxy)
        let proxy = try #require(configuration.proxy)
        #expect(proxy.threads == 2)
        #expect(proxy.grace == 5)
        #expect(proxy.defaultCertificate == "web")
        #expect(proxy.frontends.map(\.name) == ["https", "raw"])
        let https = proxy.frontends[0]
        #expect(https.mode == .tls)
        #expect(https.alpn == ["h2", "http/1.1"])
        #expect(https.minimumTLS13)
        #expect(https.backends.count == 2)
        #expect(https.idleTimeout == 60)
        #expect(https.handshakeTimeout == FrontendSettings.defaultHandshakeTimeout)
        #expect(proxy.frontends[1].mode == .tcp)
        #expect(!proxy.frontends[1].minimumTLS13)
    }

    @Test("proxy mistakes are reported with their key paths", arguments: [
        ("proxy:\n  threads: 0\n", "proxy.threads", "must be between 1 and 256, got 0"),
        ("proxy:\n  default_certificate: nope\n", "proxy.default_certificate", "'nope' is not one of the certificates' names"),
        ("proxy:\n  frontends: [{name: a, listen: \"127.0.0.1:1\"}]\n", "proxy.frontends[0].backends", "required key is missing"),
        ("proxy:\n  frontends: [{name: a, listen: \"127.0.0.1:1\", backends: []}]\n", "proxy.frontends[0].backends", "must list at least one backend"),
        ("proxy:\n  frontends: [{name: a, listen: \"127.0.0.1:1\", backends: [\"127.0.0.1\"]}]\n", "proxy.frontends[0].backends[0]", nil),
        ("proxy:\n  frontends: [{name: a, listen: \"127.0.0.1:1\", mode: udp, backends: [\"127.0.0.1:2\"]}]\n", "proxy.frontends[0].mode", "'udp' is not one of: tls, tcp, http"),
        ("proxy:\n  frontends: [{name: a, listen: \"127.0.0.1:1\", min_tls: \"1.1\", backends: [\"127.0.0.1:2\"]}]\n", "proxy.frontends[0].min_tls", "'1.1' is not a TLS version; use \"1.2\" or \"1.3\""),
        ("proxy:\n  frontends: [{name: a, listen: \"127.0.0.1:1\", alpn: [\"\"], backends: [\"127.0.0.1:2\"]}]\n", "proxy.frontends[0].alpn[0]", nil),
        ("proxy:\n  frontends: [{name: a, listen: \"127.0.0.1:1\", mode: tcp, alpn: [h2], backends: [\"127.0.0.1:2\"]}]\n", "proxy.frontends[0].alpn", "only applies to mode: tls"),
        ("proxy:\n  frontends: [{name: a, listen: \"127.0.0.1:1\", backends: [\"127.0.0.1:2\"]}, {name: a, listen: \"127.0.0.1:3\", backends: [\"127.0.0.1:2\"]}]\n", "proxy.frontends[1].name", "duplicate frontend name 'a' (also used by proxy.frontends[0])"),
        ("proxy:\n  frontends: [{name: a, listen: \"127.0.0.1:1\", backends: [\"127.0.0.1:2\"]}, {name: b, listen: \"127.0.0.1:1\", backends: [\"127.0.0.1:2\"]}]\n", "proxy.frontends[1].listen", "127.0.0.1:1 is already used by proxy.frontends[0]"),
    ])
    func proxyMistakes(yaml: String, path: String, message: String?) {
        let issue = singleIssue(in: minimalYAML + yaml)
        #expect(issue?.keyPath == path)
        if let message { #expect(issue?.message == message) }
    }
}
