import Testing

@testable import CertkeeperConfig

@Suite("proxy.frontends[] mode: http and challenge stateless: true")
struct HTTPFrontendConfigTests {
    @Test("mode: http needs no backends; https_port is read; idle_timeout defaults to 30s")
    func parses() throws {
        let yaml = minimalYAML + """
            proxy:
              frontends:
                - {name: acme, listen: "0.0.0.0:80", mode: http, https_port: 8443, maxconn: 500}
                - {name: acme6, listen: "[::]:80", mode: http, idle_timeout: 5s}

            """
        let frontends = try #require(try parsed(yaml).proxy).frontends
        #expect(frontends[0].mode == .http)
        #expect(frontends[0].servers.isEmpty)
        #expect(frontends[0].httpsPort == 8443)
        #expect(frontends[0].maxConnections == 500)
        #expect(frontends[0].idleTimeout == FrontendSettings.defaultHTTPIdleTimeout)
        #expect(frontends[1].httpsPort == nil)
        #expect(frontends[1].idleTimeout == 5)
    }

    @Test("keys that do not apply to mode: http, https_port elsewhere, and bad ports are reported with their key paths")
    func refusals() {
        let yaml = minimalYAML + """
            proxy:
              frontends:
                - {name: acme, listen: "0.0.0.0:80", mode: http, backends: ["127.0.0.1:8080"], alpn: [h2], check: true}
                - {name: web, listen: "0.0.0.0:443", https_port: 443, backends: ["127.0.0.1:8080"]}
                - {name: bad, listen: "0.0.0.0:81", mode: http, https_port: 70000}

            """
        let paths = Set(issuePaths(in: yaml))
        #expect(paths == [
            "proxy.frontends[0].backends", "proxy.frontends[0].alpn", "proxy.frontends[0].check",
            "proxy.frontends[1].https_port", "proxy.frontends[2].https_port",
        ])
    }

    @Test("challenge {type: http-01, stateless: true}; not together with webroot or listen; a boolean")
    func stateless() throws {
        let configuration = try parsed(withCertificate("name: web\ndomains: [www.example.com]\nchallenge: {type: http-01, stateless: true}"))
        #expect(configuration.certificates[0].challenge == .http01(HTTP01Settings(stateless: true)))
        let plain = try parsed(withCertificate("name: web\ndomains: [www.example.com]\nchallenge: {type: http-01}"))
        #expect(plain.certificates[0].challenge == .http01(HTTP01Settings()))

        let both = singleIssue(in: withCertificate("name: web\ndomains: [www.example.com]\nchallenge: {type: http-01, stateless: true, webroot: /var/www}"))
        #expect(both?.keyPath == "certificates[0].challenge.stateless")
        let notBool = singleIssue(in: withCertificate("name: web\ndomains: [www.example.com]\nchallenge: {type: http-01, stateless: yes please}"))
        #expect(notBool?.keyPath == "certificates[0].challenge.stateless")
        let dns = singleIssue(in: withCertificate("name: web\ndomains: [www.example.com]\nchallenge: {type: dns-01, hook: /bin/true, stateless: true}"))
        #expect(dns?.keyPath == "certificates[0].challenge.stateless")
    }
}
