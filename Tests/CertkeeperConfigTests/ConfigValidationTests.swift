import Testing

@testable import CertkeeperConfig

@Suite("Validation issues name the exact key path")
struct ConfigValidationTests {
    @Test("YAML 1.1 sexagesimal integers: 1:30 is 90 s; one too large for an Int is an issue at its key, not a crash")
    func sexagesimalIntegers() throws {
        #expect(try parsed(minimalYAML + "renew:\n  lock_timeout: 1:30\n").renew.lockTimeout == 90)
        let paths = issuePaths(in: minimalYAML + "renew:\n  concurrency: 1:0:0:0:0:0:0:0:0:0:0:0\n  lock_timeout: 3000000000000000000:0\n")
        #expect(paths.contains("renew.concurrency"), "\(paths)")
        #expect(paths.contains("renew.lock_timeout"), "\(paths)")
    }

    // MARK: Keys

    @Test("an unknown key near a known one gets a suggestion")
    func unknownKeyWithSuggestion() {
        let issue = singleIssue(in: withCertificate("name: web\ndomains: [example.com]\nrenew_befor: 30d"))
        #expect(issue?.keyPath == "certificates[0].renew_befor")
        #expect(issue?.message == "unknown key; did you mean 'renew_before'?")
    }

    @Test("suggestions cover case, dashes and swapped letters", arguments: [
        ("State_Dir", "state_dir"), ("keep-versions", "keep_versions"), ("acem", "acme"), ("certficates", "certificates"), ("keepversion", "keep_versions"),
    ])
    func suggestions(key: String, suggestion: String) {
        let issue = singleIssue(in: minimalYAML + "\(key): 1\n")
        #expect(issue?.keyPath == key)
        #expect(issue?.message == "unknown key; did you mean '\(suggestion)'?")
    }

    @Test("an unknown key with no near match lists the valid keys")
    func unknownKeyWithoutSuggestion() {
        let issue = singleIssue(in: minimalYAML + "renew:\n  frobnicate: true\n")
        #expect(issue?.keyPath == "renew.frobnicate")
        #expect(issue?.message == "unknown key; expected one of: random_sleep, concurrency, lock_timeout, http01_listen")
    }

    @Test("missing required keys", arguments: [
        ("acme:\n  directory: https://a.example/d\n", "state_dir"),
        ("state_dir: /s\nacme: {}\n", "acme.directory"),
    ])
    func missingRequired(yaml: String, path: String) {
        let issue = singleIssue(in: yaml)
        #expect(issue?.keyPath == path)
        #expect(issue?.message == "required key is missing")
    }

    @Test("missing certificate fields")
    func missingCertificateFields() {
        #expect(issuePaths(in: withCertificate("key_type: ec256")) == ["certificates[0].name", "certificates[0].domains"])
        let hookless = singleIssue(in: withCertificate("name: w\ndomains: ['*.example.com']\nchallenge: {type: dns-01}"))
        #expect(hookless?.keyPath == "certificates[0].challenge.hook")
        #expect(hookless?.message == "required key is missing")
        let typeless = singleIssue(in: withCertificate("name: w\ndomains: [a.example.com]\nchallenge: {webroot: /srv}"))
        #expect(typeless?.keyPath == "certificates[0].challenge.type")
        #expect(issuePaths(in: withCertificate("name: w\ndomains: [a.example.com]\nhooks: [{timeout: 5}]"))
            == ["certificates[0].hooks[0].command"])
    }

    @Test("a required key with an empty value")
    func emptyRequiredValue() {
        let issue = singleIssue(in: "state_dir:\nacme: {directory: https://a.example/d}\n")
        #expect(issue?.keyPath == "state_dir")
        #expect(issue?.message == "required value is empty")
    }

    // MARK: Types

    @Test("wrong types say what was expected and what was found")
    func wrongTypes() {
        let domains = singleIssue(in: withCertificate("name: web\ndomains: {a: b}"))
        #expect(domains?.keyPath == "certificates[0].domains")
        #expect(domains?.message == "expected a list of strings, got a mapping")

        let renew = singleIssue(in: minimalYAML + "renew: [1, 2]\n")
        #expect(renew?.keyPath == "renew")
        #expect(renew?.message == "expected a mapping, got a list")

        let concurrency = singleIssue(in: minimalYAML + "renew:\n  concurrency: \"4\"\n")
        #expect(concurrency?.keyPath == "renew.concurrency")
        #expect(concurrency?.message == "expected an integer, got a string ('4')")

        let stateDir = singleIssue(in: "state_dir: [/a]\nacme: {directory: https://a.example/d}\n")
        #expect(stateDir?.message == "expected a string, got a list")

        let certificates = singleIssue(in: minimalYAML + "certificates: web\n")
        #expect(certificates?.keyPath == "certificates")
        #expect(certificates?.message == "expected a list of certificates, got a string ('web')")

        let hook = singleIssue(in: minimalYAML + "hooks:\n  deploy:\n    - [a, b]\n")
        #expect(hook?.keyPath == "hooks.deploy[0]")
        #expect(hook?.message == "expected a command string or a mapping with 'command', got a list")
    }

    @Test("integers outside their range", arguments: [
        ("keep_versions: 0", "keep_versions", "must be between 1 and 100, got 0"),
        ("keep_versions: 101", "keep_versions", "must be between 1 and 100, got 101"),
        ("renew: {concurrency: 65}", "renew.concurrency", "must be between 1 and 64, got 65"),
        ("keep_versions: 2.5", "keep_versions", "expected an integer, got a number (2.5)"),
    ])
    func integerRanges(line: String, path: String, message: String) {
        let issue = singleIssue(in: minimalYAML + line + "\n")
        #expect(issue?.keyPath == path)
        #expect(issue?.message == message)
    }

    // MARK: Domains and names

    @Test("invalid DNS names", arguments: [
        "exa mple.com", "example", "example.com.", "-a.example.com", "a-.example.com", "a..example.com",
        "under_score.example.com", "b\u{00FC}cher.example", "a.*.example.com", "192.168.1.1",
        String(repeating: "a", count: 64) + ".example.com",
        String(repeating: "abcdefghi.", count: 26) + "com",
    ])
    func badDomain(domain: String) {
        let issue = singleIssue(in: withCertificate("name: web\ndomains: [example.org, \"\(domain)\"]"))
        #expect(issue?.keyPath == "certificates[0].domains[1]")
        #expect(issue?.message.contains("' is not a valid DNS name: ") == true, "\(String(describing: issue))")
        #expect(issue?.message.hasPrefix("'\(domain.prefix(20))") == true)
    }

    @Test("the DNS name message explains the fault")
    func domainMessage() {
        let issue = singleIssue(in: minimalYAML + """
            certificates:
              - name: a
                domains: [a.example.com]
              - name: b
                domains: ["exa mple.com"]

            """)
        #expect(issue?.description == "certificates[1].domains[0]: 'exa mple.com' is not a valid DNS name: "
            + "label 'exa mple' contains a space")
    }

    @Test("domains are lower-cased and duplicates are reported on the repeat")
    func duplicateDomain() {
        let issue = singleIssue(in: withCertificate("name: web\ndomains: [example.com, www.example.com, EXAMPLE.com]"))
        #expect(issue?.keyPath == "certificates[0].domains[2]")
        #expect(issue?.message == "'EXAMPLE.com' is listed twice (also at certificates[0].domains[0])")
    }

    @Test("an empty domain list is an issue")
    func emptyDomains() {
        let issue = singleIssue(in: withCertificate("name: web\ndomains: []"))
        #expect(issue?.keyPath == "certificates[0].domains")
        #expect(issue?.message == "must list at least one domain")
    }

    @Test("a wildcard needs dns-01, explicit or default http-01 alike")
    func wildcardWithHTTP01() {
        let implicit = singleIssue(in: withCertificate("name: w\ndomains: [example.com, \"*.example.com\"]"))
        #expect(implicit?.keyPath == "certificates[0].domains[1]")
        #expect(implicit?.message == "wildcard '*.example.com' requires challenge type dns-01; this certificate uses http-01")
        let explicit = singleIssue(in: withCertificate(
            "name: w\ndomains: [\"*.example.com\"]\nchallenge: {type: http-01, webroot: /srv/www}"))
        #expect(explicit?.keyPath == "certificates[0].domains[0]")
    }

    @Test("duplicate certificate names, compared without case")
    func duplicateNames() {
        let yaml = minimalYAML + """
            certificates:
              - {name: web, domains: [a.example.com]}
              - {name: api, domains: [b.example.com]}
              - {name: Web, domains: [c.example.com]}

            """
        let issue = singleIssue(in: yaml)
        #expect(issue?.keyPath == "certificates[2].name")
        #expect(issue?.message == "duplicate certificate name 'Web' (also used by certificates[0])")
    }

    @Test("bad certificate and node names", arguments: [".", "..", "-web", "web/site", "a b", "a..b", String(repeating: "n", count: 65)])
    func badNames(name: String) {
        let certificate = singleIssue(in: withCertificate("name: \"\(name)\"\ndomains: [example.com]"))
        #expect(certificate?.keyPath == "certificates[0].name")
        #expect(certificate?.message.hasPrefix("'\(name)' is not a valid name: ") == true)
        let node = singleIssue(in: minimalYAML + "node_name: \"\(name)\"\n")
        #expect(node?.keyPath == "node_name")
    }

    @Test("bad key_type suggests the closest")
    func badKeyType() {
        let issue = singleIssue(in: withCertificate("name: web\ndomains: [example.com]\nkey_type: rsa2049"))
        #expect(issue?.keyPath == "certificates[0].key_type")
        #expect(issue?.message == "'rsa2049' is not one of ec256, ec384, rsa2048, rsa3072, rsa4096; did you mean 'rsa2048'?")
        let far = singleIssue(in: withCertificate("name: web\ndomains: [example.com]\nkey_type: ed25519"))
        #expect(far?.message == "'ed25519' is not one of ec256, ec384, rsa2048, rsa3072, rsa4096")
    }

    // MARK: Challenges

    @Test("challenge keys of the other type, webroot with listen, bad type")
    func challengeShapes() {
        let misplaced = singleIssue(in: withCertificate(
            "name: w\ndomains: [a.example.com]\nchallenge: {type: dns-01, hook: /bin/h, webroot: /srv}"))
        #expect(misplaced?.keyPath == "certificates[0].challenge.webroot")
        #expect(misplaced?.message == "only http-01 challenges use this key; this one is dns-01")

        let both = singleIssue(in: withCertificate(
            "name: w\ndomains: [a.example.com]\nchallenge: {type: http-01, webroot: /srv, listen: \"0.0.0.0:81\"}"))
        #expect(both?.keyPath == "certificates[0].challenge")

        let type = singleIssue(in: withCertificate("name: w\ndomains: [a.example.com]\nchallenge: {type: tls-alpn-01}"))
        #expect(type?.keyPath == "certificates[0].challenge.type")
        #expect(type?.message == "'tls-alpn-01' is not one of http-01, dns-01")

        let shorthand = singleIssue(in: withCertificate("name: w\ndomains: [a.example.com]\nchallenge: dns-01"))
        #expect(shorthand?.keyPath == "certificates[0].challenge")
    }

    // MARK: Durations

    @Test("bad durations", arguments: [
        ("renew: {random_sleep: 10x}", "renew.random_sleep"),
        ("renew: {random_sleep: 30m1h}", "renew.random_sleep"),
        ("renew: {random_sleep: 1h30}", "renew.random_sleep"),
        ("renew: {random_sleep: -5}", "renew.random_sleep"),
        ("renew: {lock_timeout: .inf}", "renew.lock_timeout"),
        ("renew: {lock_timeout: true}", "renew.lock_timeout"),
        ("renew: {lock_timeout: 3651d}", "renew.lock_timeout"),
        ("acme: {directory: \"https://a.example/d\", request_timeout: 0}", "acme.request_timeout"),
        ("hooks: {timeout: \"\"}", "hooks.timeout"),
        ("hooks: {deploy: [{command: x, timeout: 5 min}]}", "hooks.deploy[0].timeout"),
    ])
    func badDurations(line: String, path: String) {
        let base = line.hasPrefix("acme") ? "state_dir: /s\n" : minimalYAML
        let issue = singleIssue(in: base + line + "\n")
        #expect(issue?.keyPath == path)
    }

    @Test("a duration message shows the accepted forms")
    func durationMessage() {
        let issue = singleIssue(in: withCertificate("name: w\ndomains: [a.example.com]\nrenew_before: 2 weeks"))
        #expect(issue?.keyPath == "certificates[0].renew_before")
        #expect(issue?.message == "'2 weeks' is not a valid duration; use seconds (90) or a number with units from "
            + "largest to smallest: 90s, 10m, 2h, 30d, 1h30m, 1.5h")
    }

    @Test("order_timeout shorter than request_timeout")
    func orderShorterThanRequest() {
        let issue = singleIssue(in: "state_dir: /s\nacme: {directory: \"https://a.example/d\", request_timeout: 1m, "
            + "order_timeout: 30s}\n")
        #expect(issue?.keyPath == "acme.order_timeout")
        #expect(issue?.message == "must be at least acme.request_timeout (60s)")
    }

    // MARK: URLs, e-mail, profiles

    @Test("bad ACME directory URLs", arguments: [
        ("http://acme.example/dir", "it must use https://, not http://"),
        ("https:///dir", "it has no host"),
        ("acme.example/dir", "it is not a URL; expected https://host/path"),
        ("https://exa mple/dir", "it is not a URL; expected https://host/path"),
    ])
    func badDirectoryURL(url: String, reason: String) {
        let issue = singleIssue(in: "state_dir: /s\nacme:\n  directory: \"\(url)\"\n")
        #expect(issue?.keyPath == "acme.directory")
        #expect(issue?.message == "'\(url)' is not a valid ACME directory URL: \(reason)")
    }

    @Test("bad e-mail addresses", arguments: ["ops", "mailto:ops@example.com", "ops@localhost", "a b@example.com",
                                            "ops@@example.com", ".ops@example.com"])
    func badEmail(email: String) {
        let issue = singleIssue(in: minimalYAML + "  email: \"\(email)\"\n")
        #expect(issue?.keyPath == "acme.email")
        #expect(issue?.message.hasPrefix("'\(email)' is not a valid email address: ") == true)
    }

    @Test("bad profile names", arguments: ["TLSServer", "tls server", ""])
    func badProfile(profile: String) {
        let issue = singleIssue(in: minimalYAML + "  profile: \"\(profile)\"\n")
        #expect(issue?.keyPath == "acme.profile")
    }

    // MARK: Paths

    @Test("paths must be absolute, without '..'", arguments: [
        ("state_dir: var/lib/certkeeper\nacme: {directory: \"https://a.example/d\"}\n", "state_dir"),
        (minimalYAML + "  ca_bundle: roots.pem\n", "acme.ca_bundle"),
        (minimalYAML + "hooks: {directory: /etc/../tmp}\n", "hooks.directory"),
        (withCertificate("name: w\ndomains: [a.example.com]\nchallenge: {type: http-01, webroot: ./www}"),
         "certificates[0].challenge.webroot"),
        (withCertificate("name: w\ndomains: [a.example.com]\nchallenge: {type: dns-01, hook: bin/hook}"),
         "certificates[0].challenge.hook"),
        (withCertificate("name: w\ndomains: [a.example.com]\nchallenge: {type: dns-01, hook: \"/bin/a\\0b\"}"),
         "certificates[0].challenge.hook"),
    ])
    func badPaths(yaml: String, path: String) {
        let issue = singleIssue(in: yaml)
        #expect(issue?.keyPath == path)
        #expect(issue?.message.contains("is not a valid path: it") == true)
    }

    @Test("relative path message")
    func relativePathMessage() {
        let issue = singleIssue(in: "state_dir: var/lib/certkeeper\nacme: {directory: \"https://a.example/d\"}\n")
        #expect(issue?.message == "'var/lib/certkeeper' is not a valid path: it is not an absolute path (it must start with '/')")
    }

    // MARK: Listen addresses

    @Test("bad listen addresses", arguments: [
        "0.0.0.0", "0.0.0.0:0", "0.0.0.0:65536", "0.0.0.0:http", "::1:80", "[::1]80", "[::1:80", "[1.2.3.4]:80",
        "example.com:80", "256.1.1.1:80", "010.0.0.1:80", ":80", "*:80",
    ])
    func badListen(text: String) {
        let issue = singleIssue(in: minimalYAML + "renew:\n  http01_listen: \"\(text)\"\n")
        #expect(issue?.keyPath == "renew.http01_listen")
        #expect(issue?.message.hasPrefix("'\(text)' is not a valid listen address: ") == true)
    }

    @Test("an unbracketed IPv6 address gets a hint")
    func ipv6Hint() {
        let issue = singleIssue(in: withCertificate(
            "name: w\ndomains: [a.example.com]\nchallenge: {type: http-01, listen: \"::1:80\"}"))
        #expect(issue?.keyPath == "certificates[0].challenge.listen")
        #expect(issue?.message == "'::1:80' is not a valid listen address: an IPv6 address must be in brackets, "
            + "for example [::1]:80")
    }

    // MARK: EAB

    @Test("bad EAB settings, without ever quoting the key", arguments: [
        ("{kid: k, hmac_key: \"ab+/cd\"}", "acme.eab.hmac_key"),
        ("{kid: k, hmac_key: \"a\"}", "acme.eab.hmac_key"),
        ("{kid: k, hmac_key: \"abc$\"}", "acme.eab.hmac_key"),
        ("{kid: k, hmac_key: \"\"}", "acme.eab.hmac_key"),
        ("{kid: k, hmac_key: \"abc==\"}", "acme.eab.hmac_key"),
        ("{kid: k}", "acme.eab.hmac_key"),
        ("{hmac_key: AQID}", "acme.eab.kid"),
        ("{kid: \" \", hmac_key: AQID}", "acme.eab.kid"),
        ("AQIDBAUG", "acme.eab"),
    ])
    func badEAB(eab: String, path: String) {
        let issue = singleIssue(in: minimalYAML + "  eab: \(eab)\n")
        #expect(issue?.keyPath == path)
        if path.hasSuffix("hmac_key"), let message = issue?.message {
            #expect(!message.contains("ab+/cd") && !message.contains("abc$"), "key quoted: \(message)")
        }
        #expect(issue?.message.contains("AQIDBAUG") == false)
    }

    @Test("standard base64 in hmac_key gets a precise hint")
    func standardBase64Hint() {
        let issue = singleIssue(in: minimalYAML + "  eab: {kid: k, hmac_key: \"AQID/+8=\"}\n")
        #expect(issue?.message == "the MAC key is not valid: it must be base64url ('-' and '_'), not standard base64 "
            + "('+' and '/')")
    }

    // MARK: Hooks

    @Test("blank hook commands")
    func blankCommand() {
        #expect(issuePaths(in: minimalYAML + "hooks:\n  deploy: [\"  \", {command: \"\"}]\n")
            == ["hooks.deploy[0]", "hooks.deploy[1].command"])
    }

    // MARK: Many at once

    @Test("every issue in the file is reported together, in file order")
    func manyIssues() {
        let yaml = """
            state_dir: relative/dir
            keep_versions: 0
            acme:
              directory: http://acme.example/dir
              emial: ops@example.com
            renew:
              concurrency: 100
              http01_listen: "0.0.0.0"
            certificates:
              - name: web
                domains: ["exa mple.com", "*.example.com"]
                key_type: rsa1024
              - name: web
                domains: [b.example.com]
                challenge: {type: dns-01}
            hooks:
              timeout: soon

            """
        let found = issues(in: yaml)
        #expect(found.map(\.keyPath) == [
            "state_dir",
            "keep_versions",
            "acme.directory",
            "acme.emial",
            "renew.concurrency",
            "renew.http01_listen",
            "certificates[0].domains[0]",
            "certificates[0].domains[1]",
            "certificates[0].key_type",
            "certificates[1].name",
            "certificates[1].challenge.hook",
            "hooks.timeout",
        ])
        #expect(found[3].message == "unknown key; did you mean 'email'?")
        let error = ConfigError(source: "/etc/certkeeper/certkeeper.yaml", issues: found)
        let lines = error.description.split(separator: "\n")
        #expect(lines.count == found.count)
        #expect(lines.allSatisfy { $0.hasPrefix("/etc/certkeeper/certkeeper.yaml: ") })
        #expect(lines[6] == "/etc/certkeeper/certkeeper.yaml: certificates[0].domains[0]: 'exa mple.com' is not a "
            + "valid DNS name: label 'exa mple' contains a space")
    }
}
