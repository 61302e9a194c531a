import Testing

@testable import CertkeeperConfig

@Suite("stats: section")
struct StatsConfigTests {
    @Test("absent means no listener; a loopback listen parses with the defaults")
    func defaults() throws {
        #expect(try parsed(minimalYAML).stats == nil)
        let stats = try parsed(minimalYAML + "stats:\n  listen: \"127.0.0.1:7000\"\n").stats
        #expect(stats == StatsSettings(listen: ListenAddress(host: "127.0.0.1", port: 7000)))
    }

    @Test("every key", arguments: [
        ("stats:\n  listen: \"10.1.2.3:7000\"\n  path_prefix: /stats/\n", StatsSettings(listen: ListenAddress(host: "10.1.2.3", port: 7000), pathPrefix: "/stats")),
        ("stats:\n  listen: \"[fd00::5]:7000\"\n  path_prefix: /\n", StatsSettings(listen: ListenAddress(host: "fd00::5", port: 7000))),
        ("stats:\n  listen: \"0.0.0.0:7000\"\n  allow_public: true\n", StatsSettings(listen: ListenAddress(host: "0.0.0.0", port: 7000), allowPublic: true)),
        ("stats:\n  listen: \"localhost:7000\"\n  path_prefix: /a/b-c\n", StatsSettings(listen: ListenAddress(host: "localhost", port: 7000), pathPrefix: "/a/b-c")),
    ])
    func keys(yaml: String, expected: StatsSettings) throws {
        #expect(try parsed(minimalYAML + yaml).stats == expected)
    }

    @Test("wildcard and public addresses are refused without allow_public", arguments: [
        ("0.0.0.0:7000", "listens on every interface"),
        ("[::]:7000", "listens on every interface"),
        ("203.0.113.5:7000", "203.0.113.5 is a public address"),
        ("[2001:db8::1]:7000", "is a public address"),
        ("172.32.0.1:7000", "is a public address"),
    ])
    func publicRefused(listen: String, message: String) throws {
        let issue = try #require(singleIssue(in: minimalYAML + "stats:\n  listen: \"\(listen)\"\n"))
        #expect(issue.keyPath == "stats.listen")
        #expect(issue.message.contains(message), "\(issue.message)")
        #expect(issue.message.contains("allow_public: true"))
        #expect(!issue.message.contains("\n"))
    }

    @Test("loopback and private ranges are classified as such")
    func exposure() {
        for host in ["127.0.0.1", "127.8.9.10", "::1", "localhost"] {
            #expect(StatsSettings.exposure(of: host) == .loopback, "\(host)")
        }
        for host in ["10.0.0.1", "172.16.0.1", "172.31.255.255", "192.168.1.1", "100.64.0.1", "169.254.1.1", "fd12::1", "fe80::1", "::ffff:10.0.0.1"] {
            #expect(StatsSettings.exposure(of: host) == .privateNetwork, "\(host)")
        }
        for host in ["0.0.0.0", "::"] {
            #expect(StatsSettings.exposure(of: host) == .everyInterface, "\(host)")
        }
        for host in ["8.8.8.8", "100.128.0.1", "2001:db8::1", "::ffff:8.8.8.8", "192.169.0.1"] {
            #expect(StatsSettings.exposure(of: host) == .publicNetwork, "\(host)")
        }
    }

    @Test("listen is required, and other mistakes are reported with key paths", arguments: [
        ("stats:\n  path_prefix: /x\n", "stats.listen", "required key is missing"),
        ("stats:\n  listen: \"127.0.0.1\"\n", "stats.listen", "no port"),
        ("stats:\n  listen: \"127.0.0.1:7000\"\n  allow_public: yes please\n", "stats.allow_public", "expected true or false"),
        ("stats:\n  listen: \"127.0.0.1:7000\"\n  path_prefix: metrics\n", "stats.path_prefix", "is not a path prefix"),
        ("stats:\n  listen: \"127.0.0.1:7000\"\n  path_prefix: /a b\n", "stats.path_prefix", "is not a path prefix"),
        ("stats:\n  listen: \"127.0.0.1:7000\"\n  port: 7000\n", "stats.port", "unknown key"),
        ("stats: 7000\n", "stats", "expected a mapping"),
    ])
    func mistakes(yaml: String, keyPath: String, message: String) throws {
        let issue = try #require(singleIssue(in: minimalYAML + yaml))
        #expect(issue.keyPath == keyPath)
        #expect(issue.message.contains(message), "\(issue.message)")
    }

    @Test("the stats address may not be a frontend's or the peer API's")
    func addressClash() throws {
        let yaml = minimalYAML + """
            proxy:
              frontends:
                - name: web
                  listen: "0.0.0.0:8443"
                  backends: ["127.0.0.1:8080"]
            stats:
              listen: "127.0.0.1:8443"

            """
        let issue = try #require(singleIssue(in: yaml))
        #expect(issue.keyPath == "stats.listen")
        #expect(issue.message.contains("already used by proxy.frontends[0]"), "\(issue.message)")
    }
}
