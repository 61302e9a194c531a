import Foundation
import Testing

@testable import CertkeeperConfig

@Suite("Parsing valid configurations")
struct ConfigParsingTests {
    @Test("a full configuration becomes the expected value")
    func fullConfiguration() throws {
        let yaml = """
            state_dir: /var/lib/certkeeper
            node_name: edge-1
            keep_versions: 7
            acme:
              directory: https://acme-v02.api.letsencrypt.org/directory
              email: ops@example.com
              ca_bundle: /etc/certkeeper/acme-roots.pem
              eab:
                kid: kid-123
                hmac_key: AQID_-8
              profile: tlsserver
              request_timeout: 45s
              order_timeout: 10m
            renew:
              random_sleep: 0
              concurrency: 2
              lock_timeout: 1h30m
              http01_listen: "[::]:8080"
            certificates:
              - name: www
                domains: [WWW.Example.com, example.com]
                key_type: rsa3072
                renew_before: 30d
                profile: classic
                hooks:
                  - /usr/local/bin/notify www
                  - command: systemctl reload nginx
                    timeout: 2m
              - name: wild
                domains: ["*.example.net", example.net]
                challenge:
                  type: dns-01
                  hook: /usr/local/lib/certkeeper/dns-hook
                  propagation_delay: 1.5m
                  timeout: 300
              - name: static
                domains: [static.example.org]
                challenge: {type: http-01, webroot: /srv/www}
              - name: alt-port
                domains: [alt.example.org]
                challenge: {type: http-01, listen: "127.0.0.1:8402"}
            hooks:
              deploy:
                - systemctl reload haproxy
                - {command: /usr/local/bin/push-certs, timeout: 90}
              directory: /etc/certkeeper/deploy.d
              timeout: 2h

            """
        let configuration = try parsed(yaml)
        let expected = CertkeeperConfiguration(
            stateDirectory: "/var/lib/certkeeper",
            nodeName: "edge-1",
            keepVersions: 7,
            acme: ACMESettings(
                directoryURL: "https://acme-v02.api.letsencrypt.org/directory",
                email: "ops@example.com",
                caBundle: "/etc/certkeeper/acme-roots.pem",
                externalAccountBinding: ExternalAccountBinding(keyID: "kid-123", hmacKey: [1, 2, 3, 0xFF, 0xEF]),
                profile: "tlsserver",
                requestTimeout: 45,
                orderTimeout: 600
            ),
            renew: RenewSettings(
                randomSleepMax: 0,
                concurrency: 2,
                lockTimeout: 5400,
                http01Listen: ListenAddress(host: "::", port: 8080)
            ),
            certificates: [
                CertificateSpec(
                    name: "www",
                    domains: ["www.example.com", "example.com"],
                    keyType: .rsa3072,
                    challenge: .http01(HTTP01Settings()),
                    renewBefore: 30 * 86400,
                    profile: "classic",
                    deployHooks: [
                        HookCommand(command: "/usr/local/bin/notify www"),
                        HookCommand(command: "systemctl reload nginx", timeout: 120),
                    ]
                ),
                CertificateSpec(
                    name: "wild",
                    domains: ["*.example.net", "example.net"],
                    challenge: .dns01(DNS01Settings(hook: "/usr/local/lib/certkeeper/dns-hook",
                                                    propagationDelay: 90, timeout: 300))
                ),
                CertificateSpec(
                    name: "static",
                    domains: ["static.example.org"],
                    challenge: .http01(HTTP01Settings(webroot: "/srv/www"))
                ),
                CertificateSpec(
                    name: "alt-port",
                    domains: ["alt.example.org"],
                    challenge: .http01(HTTP01Settings(listen: ListenAddress(host: "127.0.0.1", port: 8402)))
                ),
            ],
            hooks: HookSettings(
                deploy: [
                    HookCommand(command: "systemctl reload haproxy"),
                    HookCommand(command: "/usr/local/bin/push-certs", timeout: 90),
                ],
                directory: "/etc/certkeeper/deploy.d",
                timeout: 7200
            )
        )
        #expect(configuration == expected)
        #expect(configuration.certificate(named: "wild")?.hasWildcard == true)
        #expect(configuration.certificate(named: "www")?.hasWildcard == false)
    }

    @Test("defaults apply when only the required keys are given")
    func defaults() throws {
        let configuration = try parsed(minimalYAML)
        #expect(configuration.stateDirectory == "/var/lib/certkeeper")
        #expect(configuration.nodeName == nil)
        #expect(configuration.keepVersions == 5)
        #expect(configuration.acme == ACMESettings(directoryURL: "https://acme.example.org/directory"))
        #expect(configuration.acme.requestTimeout == 30)
        #expect(configuration.acme.orderTimeout == 300)
        #expect(configuration.acme.email == nil)
        #expect(configuration.acme.externalAccountBinding == nil)
        #expect(configuration.renew.randomSleepMax == 480)
        #expect(configuration.renew.concurrency == 4)
        #expect(configuration.renew.lockTimeout == 600)
        #expect(configuration.renew.http01Listen == ListenAddress(host: "0.0.0.0", port: 80))
        #expect(configuration.certificates.isEmpty)
        #expect(configuration.hooks == HookSettings(deploy: [], directory: nil, timeout: 60))
    }

    @Test("certificate defaults: ec256, built-in http-01 responder, no hooks")
    func certificateDefaults() throws {
        let configuration = try parsed(withCertificate("name: web\ndomains: [example.com]"))
        #expect(configuration.certificates == [
            CertificateSpec(name: "web", domains: ["example.com"], keyType: .ec256,
                            challenge: .http01(HTTP01Settings(webroot: nil, listen: nil)),
                            renewBefore: nil, profile: nil, deployHooks: []),
        ])
    }

    @Test("dns-01 defaults: no propagation delay, 120 s timeout")
    func dnsDefaults() throws {
        let configuration = try parsed(withCertificate("""
            name: wild
            domains: ["*.example.com"]
            challenge: {type: dns-01, hook: /usr/bin/dns-hook}
            """))
        #expect(configuration.certificates.first?.challenge
            == .dns01(DNS01Settings(hook: "/usr/bin/dns-hook", propagationDelay: 0, timeout: 120)))
    }

    @Test("empty sections, an empty certificate list and explicit nulls mean defaults")
    func emptySections() throws {
        let configuration = try parsed(minimalYAML + "node_name:\nrenew:\nhooks: {}\ncertificates: []\n")
        #expect(configuration.nodeName == nil)
        #expect(configuration.renew == RenewSettings())
        #expect(configuration.hooks == HookSettings())
        #expect(configuration.certificates.isEmpty)
    }

    @Test("the bare word http-01 is a challenge")
    func challengeShorthand() throws {
        let configuration = try parsed(withCertificate("name: web\ndomains: [example.com]\nchallenge: http-01"))
        #expect(configuration.certificates.first?.challenge == .http01(HTTP01Settings()))
    }

    @Test("padded and unpadded base64url EAB keys decode to the same bytes")
    func eabPadding() throws {
        for key in ["AQID_-8", "AQID_-8="] {
            let configuration = try parsed(minimalYAML.replacingOccurrences(
                of: "  directory:", with: "  eab: {kid: k, hmac_key: \"\(key)\"}\n  directory:"))
            #expect(configuration.acme.externalAccountBinding?.hmacKey == [1, 2, 3, 0xFF, 0xEF])
        }
    }

    @Test("the EAB MAC key never appears in printed values")
    func eabRedacted() throws {
        let configuration = try parsed(minimalYAML.replacingOccurrences(
            of: "  directory:", with: "  eab: {kid: my-kid, hmac_key: c2VjcmV0LWtleQ}\n  directory:"))
        let binding = try #require(configuration.acme.externalAccountBinding)
        #expect(binding.hmacKey == Array("secret-key".utf8))
        var dumped = ""
        dump(configuration, to: &dumped)
        for text in ["\(configuration)", String(reflecting: configuration), "\(binding)", dumped] {
            #expect(text.contains("my-kid"))
            #expect(text.contains("10 bytes redacted"))
            #expect(!text.contains("115, 101, 99"), "key bytes leaked: \(text)")  // "sec"
        }
    }

    @Test("YAML anchors, aliases and merge keys work")
    func anchorsAndMerges() throws {
        let yaml = minimalYAML + """
            certificates:
              - &base
                name: one
                domains: [one.example.com]
                key_type: ec384
              - <<: *base
                name: two
                domains: [two.example.com]

            """
        let configuration = try parsed(yaml)
        #expect(configuration.certificates.map(\.name) == ["one", "two"])
        #expect(configuration.certificates.map(\.keyType) == [.ec384, .ec384])
        #expect(configuration.certificates[1].domains == ["two.example.com"])
    }

    @Test("durations accept seconds and unit strings", arguments: [
        ("90", 90.0), ("0", 0), ("2.5", 2.5), ("\"90\"", 90), ("90s", 90), ("10m", 600), ("2h", 7200),
        ("30d", 2_592_000), ("1h30m", 5400), ("1.5h", 5400), ("1d2h3m4s", 93784), ("0s", 0),
    ])
    func durations(text: String, seconds: Double) throws {
        let configuration = try parsed(minimalYAML + "renew:\n  random_sleep: \(text)\n")
        #expect(configuration.renew.randomSleepMax == seconds)
    }

    @Test("listen addresses", arguments: [
        ("0.0.0.0:80", "0.0.0.0", 80), ("127.0.0.1:8080", "127.0.0.1", 8080), ("localhost:1", "localhost", 1),
        ("[::1]:80", "::1", 80), ("[::]:65535", "::", 65535), ("[2001:db8::5]:443", "2001:db8::5", 443),
    ])
    func listenAddresses(text: String, host: String, port: Int) throws {
        let configuration = try parsed(minimalYAML + "renew:\n  http01_listen: \"\(text)\"\n")
        #expect(configuration.renew.http01Listen == ListenAddress(host: host, port: port))
        #expect(configuration.renew.http01Listen.description == text)
    }
}

@Suite("Finding and reading the file")
struct ConfigLoadingTests {
    @Test("resolvePath: --config wins, then CERTKEEPER_CONFIG, then the default")
    func resolvePathPrecedence() {
        let environment = ["CERTKEEPER_CONFIG": "/from/env.yaml"]
        #expect(ConfigLoader.resolvePath(explicit: "/from/flag.yaml", environment: environment) == "/from/flag.yaml")
        #expect(ConfigLoader.resolvePath(explicit: nil, environment: environment) == "/from/env.yaml")
        #expect(ConfigLoader.resolvePath(explicit: nil, environment: [:]) == "/etc/certkeeper/certkeeper.yaml")
        #expect(ConfigLoader.resolvePath(explicit: "", environment: environment) == "/from/env.yaml")
        #expect(ConfigLoader.resolvePath(explicit: nil, environment: ["CERTKEEPER_CONFIG": ""])
            == ConfigLoader.defaultPath)
        #expect(ConfigLoader.resolvePath(explicit: nil, environment: ["OTHER": "/x.yaml"]) == ConfigLoader.defaultPath)
    }

    @Test("load reads a file from disk")
    func loadFromDisk() throws {
        let directory = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let path = directory + "/certkeeper.yaml"
        try minimalYAML.write(toFile: path, atomically: true, encoding: .utf8)
        let configuration = try ConfigLoader.load(path: path)
        #expect(configuration.stateDirectory == "/var/lib/certkeeper")
    }

    @Test("a missing file names the path and the reason")
    func missingFile() throws {
        let directory = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let path = directory + "/absent.yaml"
        let error = #expect(throws: ConfigError.self) { try ConfigLoader.load(path: path) }
        #expect(error?.kind == .unreadable(reason: "No such file or directory"))
        #expect(error?.description == "\(path): cannot read configuration: No such file or directory")
    }

    @Test("a directory is not a configuration file")
    func directoryInsteadOfFile() throws {
        let directory = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let error = #expect(throws: ConfigError.self) { try ConfigLoader.load(path: directory) }
        #expect(error?.kind == .unreadable(reason: "it is a directory"))
    }

    @Test("a file that is not UTF-8 is reported as such")
    func notUTF8() throws {
        let directory = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let path = directory + "/latin1.yaml"
        try Data([0x61, 0x3A, 0x20, 0xE9, 0x0A]).write(to: URL(fileURLWithPath: path))
        let error = #expect(throws: ConfigError.self) { try ConfigLoader.load(path: path) }
        #expect(error?.kind == .unreadable(reason: "it is not valid UTF-8 text"))
    }

    @Test("YAML syntax errors carry line and column")
    func syntaxError() {
        let yaml = "state_dir: /x\nacme:\n  directory: [unclosed\nrenew: {}\n"
        let error = #expect(throws: ConfigError.self) { try ConfigLoader.parse(yaml: yaml, source: "/etc/c.yaml") }
        guard case .invalidYAML(let problem, let line?, let column?) = error?.kind else {
            Issue.record("expected invalidYAML with a position, got \(String(describing: error))")
            return
        }
        #expect(line == 4)
        #expect(column >= 1)
        #expect(!problem.isEmpty)
        let description = error?.description ?? ""
        #expect(description.hasPrefix("/etc/c.yaml: invalid YAML at line 4, column \(column): "))
        #expect(!description.contains("\n"))
    }

    @Test("a key given twice is a YAML error naming the key")
    func duplicateKey() {
        let yaml = minimalYAML + "state_dir: /other\n"
        let error = #expect(throws: ConfigError.self) { try ConfigLoader.parse(yaml: yaml, source: "c.yaml") }
        guard case .invalidYAML(let problem, _, _) = error?.kind else {
            Issue.record("expected invalidYAML, got \(String(describing: error))")
            return
        }
        #expect(problem.contains("'state_dir'"))
        #expect(!(error?.description.contains("\n") ?? true))
    }

    @Test("an empty file lacks the required key (acme: is only needed by ACME certificates)")
    func emptyFile() {
        #expect(issuePaths(in: "") == ["state_dir"])
        #expect(issuePaths(in: "# only a comment\n") == ["state_dir"])
    }

    @Test("a top level that is not a mapping is one issue")
    func topLevelNotMapping() {
        let issue = singleIssue(in: "- a\n- b\n")
        #expect(issue?.keyPath == "")
        #expect(issue?.message == "expected a mapping of settings at the top level, got a list")
    }

    private func temporaryDirectory() throws -> String {
        let path = NSTemporaryDirectory() + "certkeeper-config-tests-" + UUID().uuidString
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        return path
    }
}
