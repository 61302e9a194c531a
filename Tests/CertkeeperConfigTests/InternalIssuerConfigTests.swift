import Foundation
import Testing

@testable import CertkeeperConfig

/// `certificates[].issuer`, the optional `acme:` section and `internal_ca:`.
@Suite("issuer: internal, internal_ca and the optional acme section")
struct InternalIssuerConfigTests {
    static let internalOnly = """
        state_dir: /var/lib/certkeeper
        certificates:
          - name: local
            issuer: internal
            domains: [LocalHost, 127.0.0.1, "0:0:0:0:0:0:0:1", "*.dev.internal", nas]

        """

    @Test("a file with only internal certificates needs no acme section; defaults apply")
    func acmeOptional() throws {
        let configuration = try parsed(Self.internalOnly)
        #expect(configuration.acmeSettings == nil)
        #expect(configuration.acme == .unconfigured)
        #expect(configuration.acme.directoryURL == "")
        let spec = try #require(configuration.certificates.first)
        #expect(spec.issuer == .internalCA)
        #expect(spec.domains == ["localhost", "127.0.0.1", "::1", "*.dev.internal", "nas"])
        #expect(configuration.internalCA == InternalCASettings())
        #expect(configuration.internalCA.leafLifetime == 7 * 86_400)
        #expect(configuration.internalCA.rootLifetime == 3650 * 86_400)
        #expect(configuration.internalCertificates.map(\.name) == ["local"])
    }

    @Test("renew_before at or above internal_ca.leaf_lifetime is refused: the leaf would be due again at issuance")
    func renewBeforeShorterThanLeafLifetime() throws {
        let tooLong = """
            state_dir: /var/lib/certkeeper
            internal_ca: {leaf_lifetime: 2d}
            certificates:
              - {name: fine, issuer: internal, domains: [a.internal], renew_before: 1d}
              - {name: loops, issuer: internal, domains: [b.internal], renew_before: 2d}

            """
        let found = issues(in: tooLong)
        #expect(found.map(\.keyPath) == ["certificates[1].renew_before"], "\(found)")
        #expect(found.first?.message.contains("internal_ca.leaf_lifetime (172800s)") == true, "\(found)")
    }

    @Test("the issuer defaults to acme, and an ACME certificate still needs the acme section")
    func acmeRequiredForACMECertificates() throws {
        let withACME = try parsed(withCertificate("name: web\ndomains: [example.com]"))
        #expect(withACME.certificates.first?.issuer == .acme)
        #expect(withACME.acmeSettings?.directoryURL == "https://acme.example.org/directory")

        let missing = singleIssue(in: "state_dir: /s\ncertificates:\n  - {name: local, issuer: internal, domains: [localhost]}\n  - {name: web, domains: [example.com]}\n")
        #expect(missing?.keyPath == "acme")
        #expect(missing?.message == "required key is missing: certificates[1] ('web') uses issuer: acme (the default); add an acme: section with a directory, or set issuer: internal")
        #expect(missing.map { !$0.description.contains("\n") } == true)

        let explicit = singleIssue(in: "state_dir: /s\nacme:\ncertificates:\n  - {name: web, issuer: acme, domains: [example.com]}\n")
        #expect(explicit?.keyPath == "acme")

        // A present acme section is still checked in full.
        #expect(issuePaths(in: "state_dir: /s\nacme: {}\n") == ["acme.directory"])
        #expect(try parsed("state_dir: /s\n").acmeSettings == nil)
    }

    @Test("an unknown issuer gets a suggestion")
    func unknownIssuer() {
        let issue = singleIssue(in: withCertificate("name: w\ndomains: [example.com]\nissuer: interal"))
        #expect(issue?.keyPath == "certificates[0].issuer")
        #expect(issue?.message == "'interal' is not one of acme, internal; did you mean 'internal'?")
    }

    @Test("ACME-only keys on an internal certificate are errors")
    func acmeKeysOnInternal() {
        let issues = issues(in: withCertificate("name: w\nissuer: internal\ndomains: [localhost]\nchallenge: http-01\nprofile: shortlived"))
        #expect(issues.map(\.keyPath) == ["certificates[0].challenge", "certificates[0].profile"])
        #expect(issues.first?.message == "only used with issuer: acme; this certificate uses issuer: internal")
    }

    @Test("internal names: bad DNS names, bad IP literals, repeats (after canonical IPv6 form) are refused", arguments: [
        ("exa mple.com", "'exa mple.com' is not a valid DNS name or IP address: label 'exa mple' contains a space"),
        ("1234", "'1234' is not a valid DNS name or IP address: it is a number, neither a DNS name nor an IPv4 address"),
        ("256.1.1.1", "'256.1.1.1' is not a valid DNS name or IP address: it is not a valid IPv4 address (four decimal numbers 0-255, no leading zeros)"),
        ("::g", "'::g' is not a valid DNS name or IP address: it is not a valid IPv6 address"),
        ("-host", "'-host' is not a valid DNS name or IP address: label '-host' starts or ends with a hyphen"),
    ])
    func badInternalNames(name: String, message: String) {
        let issue = singleIssue(in: withCertificate("name: w\nissuer: internal\ndomains: [\"\(name)\"]"))
        #expect(issue?.keyPath == "certificates[0].domains[0]")
        #expect(issue?.message == message)
    }

    @Test("an IPv6 address written twice in different forms is a repeat")
    func ipv6Repeat() {
        let issue = singleIssue(in: withCertificate("name: w\nissuer: internal\ndomains: [\"::1\", \"0:0::1\"]"))
        #expect(issue?.keyPath == "certificates[0].domains[1]")
        #expect(issue?.message == "'0:0::1' is listed twice (also at certificates[0].domains[0])")
    }

    @Test("an ACME certificate still refuses single-label names and IP addresses")
    func acmeNamesUnchanged() {
        #expect(issuePaths(in: withCertificate("name: w\ndomains: [localhost]")) == ["certificates[0].domains[0]"])
        #expect(issuePaths(in: withCertificate("name: w\ndomains: [127.0.0.1]")) == ["certificates[0].domains[0]"])
    }

    @Test("internal_ca values, and its limits with key paths")
    func internalCASection() throws {
        let configuration = try parsed(Self.internalOnly + "internal_ca:\n  name: Lab CA\n  leaf_lifetime: 24h\n  root_lifetime: 5y\n".replacingOccurrences(of: "5y", with: "1825d"))
        #expect(configuration.internalCA == InternalCASettings(name: "Lab CA", leafLifetime: 86_400, rootLifetime: 1825 * 86_400))

        let short = singleIssue(in: Self.internalOnly + "internal_ca: {leaf_lifetime: 30m}\n")
        #expect(short?.keyPath == "internal_ca.leaf_lifetime")
        #expect(short?.message == "must be at least 1h (leaves are backdated 5 minutes for clock skew)")

        let rootShort = singleIssue(in: Self.internalOnly + "internal_ca: {leaf_lifetime: 30d, root_lifetime: 10d}\n")
        #expect(rootShort?.keyPath == "internal_ca.root_lifetime")
        #expect(rootShort?.message == "must be at least internal_ca.leaf_lifetime (2592000s)")

        #expect(singleIssue(in: Self.internalOnly + "internal_ca: {name: \"  \"}\n")?.keyPath == "internal_ca.name")
        #expect(singleIssue(in: Self.internalOnly + "internal_ca: {name: \"\(String(repeating: "x", count: 65))\"}\n")?.keyPath == "internal_ca.name")
        let typo = singleIssue(in: Self.internalOnly + "internal_ca: {leaf_lifetme: 1d}\n")
        #expect(typo?.keyPath == "internal_ca.leaf_lifetme")
        #expect(typo?.message == "unknown key; did you mean 'leaf_lifetime'?")
        #expect(singleIssue(in: Self.internalOnly + "internal_ca: {root_lifetime: 0}\n")?.message == "must be greater than 0")
    }

    @Test("Config/internal.yaml, the embedded default, parses once @STATE@ is filled in")
    func embeddedDefault() throws {
        let path = ConfigDocumentationTests.repositoryRoot.appendingPathComponent("Config/internal.yaml").path
        let text = try String(contentsOfFile: path, encoding: .utf8)
        #expect(text.contains("state_dir: @STATE@"))
        let configuration = try parsed(text.replacingOccurrences(of: "@STATE@", with: "/tmp/certkeeper-quickstart/state"))
        #expect(configuration.acmeSettings == nil)
        #expect(configuration.certificates.map(\.issuer) == [.internalCA])
        #expect(configuration.certificates.first?.domains == ["localhost", "127.0.0.1"])
        #expect(configuration.proxy?.frontends.first?.listen == ListenAddress(host: "127.0.0.1", port: 8443))
        #expect(configuration.proxy?.frontends.first?.backends == [ListenAddress(host: "127.0.0.1", port: 8080)])
    }
}
