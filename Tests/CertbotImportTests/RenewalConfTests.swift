import CertkeeperConfig
import Testing

@testable import CertbotImport

/// Renewal configurations as certbot 2.1 wrote them against Pebble (paths shortened), plus older and hand-edited forms.
enum RenewalFixtures {
    static let standalone = """
    # renew_before_expiry = 30 days
    version = 2.1.0
    archive_dir = /etc/letsencrypt/archive/web.example.org
    cert = /etc/letsencrypt/live/web.example.org/cert.pem
    privkey = /etc/letsencrypt/live/web.example.org/privkey.pem
    chain = /etc/letsencrypt/live/web.example.org/chain.pem
    fullchain = /etc/letsencrypt/live/web.example.org/fullchain.pem

    # Options used in the renewal process
    [renewalparams]
    account = fe401493dd43c4229483f27ea04a735c
    http01_port = 35002
    config_dir = /etc/letsencrypt
    work_dir = /var/lib/letsencrypt
    logs_dir = /var/log/letsencrypt
    server = https://127.0.0.1:34000/dir
    authenticator = standalone
    key_type = ecdsa
    """

    static let webroot = """
    renew_before_expiry = 2 weeks
    version = 2.1.0
    archive_dir = /etc/letsencrypt/archive/site.example.org
    cert = /etc/letsencrypt/live/site.example.org/cert.pem
    privkey = /etc/letsencrypt/live/site.example.org/privkey.pem
    chain = /etc/letsencrypt/live/site.example.org/chain.pem
    fullchain = /etc/letsencrypt/live/site.example.org/fullchain.pem

    # Options used in the renewal process
    [renewalparams]
    account = fe401493dd43c4229483f27ea04a735c
    rsa_key_size = 3072
    key_type = rsa
    renew_hook = systemctl reload nginx
    pre_hook = None
    server = https://acme-v02.api.letsencrypt.org/directory
    authenticator = webroot
    webroot_path = /var/www/html,
    [[webroot_map]]
    alt.example.org = /var/www/html
    site.example.org = /var/www/html
    """

    static let manualDNS = """
    version = 2.1.0
    archive_dir = /etc/letsencrypt/archive/wild.example.org
    cert = /etc/letsencrypt/live/wild.example.org/cert.pem
    privkey = /etc/letsencrypt/live/wild.example.org/privkey.pem
    chain = /etc/letsencrypt/live/wild.example.org/chain.pem
    fullchain = /etc/letsencrypt/live/wild.example.org/fullchain.pem

    [renewalparams]
    account = fe401493dd43c4229483f27ea04a735c
    key_type = ecdsa
    elliptic_curve = secp384r1
    pref_challs = dns-01,
    server = https://acme-v02.api.letsencrypt.org/directory
    authenticator = manual
    manual_auth_hook = /etc/letsencrypt/auth.sh
    manual_cleanup_hook = /etc/letsencrypt/clean.sh
    """

    /// certbot 1.x: no key_type (RSA), quoted values, a post hook, must-staple and a preferred chain.
    static let oldNginx = """
    version = 1.12.0
    cert = /etc/letsencrypt/live/old.example.org/cert.pem
    privkey = /etc/letsencrypt/live/old.example.org/privkey.pem
    chain = /etc/letsencrypt/live/old.example.org/chain.pem
    fullchain = /etc/letsencrypt/live/old.example.org/fullchain.pem
    [renewalparams]
    authenticator = nginx
    installer = nginx
    account = 0123456789abcdef0123456789abcdef
    server = https://acme-v02.api.letsencrypt.org/directory
    rsa_key_size = 4096
    post_hook = "systemctl restart postfix, dovecot"
    must_staple = True
    preferred_chain = ISRG Root X1
    """
}

@Suite("certbot renewal configuration")
struct RenewalConfTests {
    @Test("standalone on another port")
    func standalone() throws {
        let conf = try CertbotRenewalConf.parse(RenewalFixtures.standalone, lineage: "web.example.org", path: "renewal/web.example.org.conf")
        #expect(conf.version == "2.1.0")
        #expect(conf.archiveDirectory == "/etc/letsencrypt/archive/web.example.org")
        #expect(conf.fullchainPath == "/etc/letsencrypt/live/web.example.org/fullchain.pem")
        #expect(conf.renewBeforeExpiry == nil, "certbot writes its default commented out")
        #expect(conf.parameters.account == "fe401493dd43c4229483f27ea04a735c")
        #expect(conf.parameters.server == "https://127.0.0.1:34000/dir")
        #expect(conf.parameters.authenticator == "standalone")
        #expect(conf.parameters.http01Port == 35002)
        #expect(conf.parameters.keyType == "ecdsa")
        #expect(conf.parameters.configDirectory == "/etc/letsencrypt")
    }

    @Test("webroot with a webroot map, deploy hook, RSA size, None as absent")
    func webroot() throws {
        let conf = try CertbotRenewalConf.parse(RenewalFixtures.webroot, lineage: "site.example.org", path: "x.conf")
        let parameters = conf.parameters
        #expect(conf.renewBeforeExpiry == "2 weeks")
        #expect(parameters.webrootPaths == ["/var/www/html"])
        #expect(parameters.webrootMap == [.init(domain: "alt.example.org", webroot: "/var/www/html"), .init(domain: "site.example.org", webroot: "/var/www/html")])
        #expect(parameters.rsaKeySize == 3072)
        #expect(parameters.deployHook == "systemctl reload nginx")
        #expect(parameters.preHook == nil)
    }

    @Test("manual dns-01 hooks and an old certbot's file")
    func manualAndOld() throws {
        let manual = try CertbotRenewalConf.parse(RenewalFixtures.manualDNS, lineage: "wild.example.org", path: "x.conf")
        #expect(manual.parameters.preferredChallenges == ["dns-01"])
        #expect(manual.parameters.ellipticCurve == "secp384r1")
        #expect(manual.parameters.manualAuthHook == "/etc/letsencrypt/auth.sh")
        #expect(manual.parameters.manualCleanupHook == "/etc/letsencrypt/clean.sh")

        let old = try CertbotRenewalConf.parse(RenewalFixtures.oldNginx, lineage: "old.example.org", path: "x.conf")
        #expect(old.archiveDirectory == nil)
        #expect(old.parameters.keyType == nil)
        #expect(old.parameters.postHook == "systemctl restart postfix, dovecot")
        #expect(old.parameters.mustStaple)
        #expect(old.parameters.preferredChain == "ISRG Root X1")
    }

    @Test("problems name the file and, where there is one, the line", arguments: [
        ("cert = /a\nprivkey = /b\nchain = /c\nfullchain = /d\n", "no [renewalparams]"),
        ("privkey = /b\nchain = /c\nfullchain = /d\n[renewalparams]\n", "cert is missing"),
        ("cert = /a\nprivkey = /b\nchain = /c\nfullchain = /d\n[renewalparams]\nhttp01_port = eighty\n", "line 6: http01_port = \"eighty\" is not a whole number"),
        ("cert = /a\nprivkey = /b\nchain = /c\nfullchain = /d\n[renewalparams]\nserver = a, b\n", "line 6: server has 2 comma-separated values"),
        ("cert = /a\nprivkey = /b\nchain = /c\nfullchain = /d\n[renewalparams]\nmust_staple = maybe\n", "is not True or False"),
        ("cert = /a\n[renewalparams\n", "line 2: section header"),
    ])
    func problems(text: String, fragment: String) {
        #expect {
            _ = try CertbotRenewalConf.parse(text, lineage: "x", path: "/etc/letsencrypt/renewal/x.conf")
        } throws: { error in
            guard let error = error as? CertbotImportError else { return false }
            return error.code == .malformed && error.description.hasPrefix("/etc/letsencrypt/renewal/x.conf: ")
                && error.description.contains(fragment) && !error.description.contains("\n")
        }
    }
}

@Suite("renew_before_expiry durations")
struct CertbotDurationTests {
    static let texts: [(String, Double)] = [
        ("30 days", 2_592_000), ("2 weeks", 1_209_600), ("1 week 3 days", 864_000), ("12 hours", 43_200),
        ("1 day, 12 hours", 129_600), ("10days", 864_000), ("1 month", 2_592_000), ("90 minutes", 5_400),
    ]

    @Test("certbot's texts", arguments: texts)
    func parses(text: String, seconds: Double) {
        #expect(CertbotDuration.seconds(text) == seconds)
    }

    @Test("not durations", arguments: ["", "soon", "30", "days", "0 days", "-1 days", "3 fortnights", "4000000000000 months", "3651 days"])
    func refuses(text: String) {
        #expect(CertbotDuration.seconds(text) == nil)
    }

    @Test("written as certkeeper durations")
    func configText() {
        #expect(CertbotDuration.configText(seconds: 30 * 86_400) == "30d")
        #expect(CertbotDuration.configText(seconds: 129_600) == "1d12h")
        #expect(CertbotDuration.configText(seconds: 5_400) == "1h30m")
        #expect(CertbotDuration.configText(seconds: 61) == "1m1s")
    }
}

@Suite("suggested certificates: entries")
struct SuggestedEntryTests {
    static let directory = "https://acme-v02.api.letsencrypt.org/directory"

    func entry(_ text: String, lineage: String, domains: [String], keyType: String) throws -> SuggestedEntry {
        let conf = try CertbotRenewalConf.parse(text, lineage: lineage, path: "x.conf")
        return SuggestedEntry.translate(conf, domains: domains, certificateKeyType: keyType, configuredDirectory: Self.directory)
    }

    @Test("each authenticator becomes a challenge, with notes where certkeeper differs")
    func translations() throws {
        let standalone = try entry(RenewalFixtures.standalone, lineage: "web.example.org", domains: ["web.example.org", "www.example.org"], keyType: "ec256")
        #expect(standalone.challenge == .http01Listen("0.0.0.0:35002"))
        #expect(standalone.keyType == "ec256")
        #expect(standalone.notes.contains { $0.contains("certbot renewed this at https://127.0.0.1:34000/dir") })

        let webroot = try entry(RenewalFixtures.webroot, lineage: "site.example.org", domains: ["site.example.org", "alt.example.org"], keyType: "rsa3072")
        #expect(webroot.challenge == .http01Webroot("/var/www/html"))
        #expect(webroot.renewBefore == "14d")
        #expect(webroot.hooks == ["systemctl reload nginx"])
        #expect(webroot.notes.isEmpty, "\(webroot.notes)")

        let manual = try entry(RenewalFixtures.manualDNS, lineage: "wild.example.org", domains: ["*.wild.example.org", "wild.example.org"], keyType: "ec384")
        #expect(manual.challenge == .dns01(hook: "/etc/certkeeper/hooks/wild.example.org-dns01.sh"))
        #expect(manual.commentBlock.contains("  present) exec /etc/letsencrypt/auth.sh ;;"))
        #expect(manual.commentBlock.contains("  cleanup) exec /etc/letsencrypt/clean.sh ;;"))

        let old = try entry(RenewalFixtures.oldNginx, lineage: "old.example.org", domains: ["old.example.org"], keyType: "rsa2048")
        #expect(old.challenge == .http01)
        #expect(old.keyType == "rsa2048", "the installed key's type wins, so nothing is reissued at once")
        let notes = old.notes.joined(separator: " | ")
        #expect(notes.contains("certbot would renew with a RSA 4096 key"))
        #expect(notes.contains("nginx plugin"))
        #expect(notes.contains("post_hook"))
        #expect(notes.contains("must_staple"))
        #expect(notes.contains("preferred_chain"))
    }

    @Test("several webroots: the most used one, and a note naming the others")
    func severalWebroots() throws {
        let text = RenewalFixtures.webroot.replacingOccurrences(of: "alt.example.org = /var/www/html", with: "alt.example.org = /srv/alt")
            + "\nthird.example.org = /var/www/html"
        let suggested = try entry(text, lineage: "site.example.org", domains: ["site.example.org", "alt.example.org", "third.example.org"], keyType: "rsa3072")
        #expect(suggested.challenge == .http01Webroot("/var/www/html"))
        #expect(suggested.notes.contains { $0.contains("/srv/alt") && $0.contains("several webroots") })
    }

    @Test("a key type certkeeper does not issue falls back, with a note")
    func unsupportedKeyType() throws {
        let text = RenewalFixtures.manualDNS.replacingOccurrences(of: "secp384r1", with: "secp521r1")
        let suggested = try entry(text, lineage: "wild.example.org", domains: ["*.wild.example.org"], keyType: "ec521")
        #expect(suggested.keyType == "ec256")
        #expect(suggested.notes.contains { $0.contains("reissues it as ec256") })
        let rsa = try entry(RenewalFixtures.webroot, lineage: "site.example.org", domains: ["site.example.org"], keyType: "rsa1024")
        #expect(rsa.keyType == "rsa3072")
    }

    @Test("the rendered snippet loads as certkeeper configuration with the same meaning")
    func snippetParses() throws {
        let entries = [
            try entry(RenewalFixtures.standalone, lineage: "web.example.org", domains: ["web.example.org", "www.example.org"], keyType: "ec256"),
            try entry(RenewalFixtures.webroot, lineage: "site.example.org", domains: ["site.example.org", "alt.example.org"], keyType: "rsa3072"),
            try entry(RenewalFixtures.manualDNS, lineage: "wild.example.org", domains: ["*.wild.example.org", "wild.example.org"], keyType: "ec384"),
            try entry(RenewalFixtures.oldNginx, lineage: "old.example.org", domains: ["old.example.org"], keyType: "rsa2048"),
            SuggestedEntry(name: "2024", domains: ["on.example.org"], keyType: "ec256", challenge: .http01, hooks: ["echo \"quoted\" # not a comment"]),
        ]
        let snippet = ConfigSnippet.render(entries, header: ["from certbot", "two lines"], alreadyConfigured: [])
        let yaml = "state_dir: /var/lib/certkeeper\nacme:\n  directory: \(Self.directory)\n" + snippet
        let configuration = try ConfigLoader.parse(yaml: yaml, source: "snippet")
        let specs = configuration.certificates
        #expect(specs.map(\.name) == ["web.example.org", "site.example.org", "wild.example.org", "old.example.org", "2024"])
        #expect(specs[0].domains == ["web.example.org", "www.example.org"])
        #expect(specs[0].challenge == .http01(HTTP01Settings(listen: try ListenAddress(parsing: "0.0.0.0:35002"))))
        #expect(specs[1].keyType == .rsa3072)
        #expect(specs[1].challenge == .http01(HTTP01Settings(webroot: "/var/www/html")))
        #expect(specs[1].renewBefore == Double(14 * 86_400))
        #expect(specs[1].deployHooks.count == 1)
        #expect(specs[2].domains == ["*.wild.example.org", "wild.example.org"])
        #expect(specs[2].keyType == .ec384)
        #expect(specs[2].challenge.typeName == "dns-01")
        #expect(specs[3].challenge == .http01(HTTP01Settings()))
        #expect(specs[4].deployHooks.count == 1)
        #expect(snippet.contains("#   #!/bin/sh"))

        let skipped = ConfigSnippet.render(entries, alreadyConfigured: ["web.example.org"])
        #expect(skipped.contains("# web.example.org is already in the configuration"))
        #expect(!skipped.contains("- name: web.example.org"))
    }

    @Test("YAML scalars that could be misread are quoted")
    func quoting() {
        #expect(ConfigSnippet.scalar("web.example.org") == "web.example.org")
        #expect(ConfigSnippet.scalar("/var/www/html") == "/var/www/html")
        #expect(ConfigSnippet.scalar("*.example.org") == "\"*.example.org\"")
        #expect(ConfigSnippet.scalar("2024") == "\"2024\"")
        #expect(ConfigSnippet.scalar("yes") == "\"yes\"")
        #expect(ConfigSnippet.scalar("0.0.0.0:80") == "\"0.0.0.0:80\"")
        #expect(ConfigSnippet.quoted("a \"b\" \\ c\n") == "\"a \\\"b\\\" \\\\ c\\n\"")
    }
}
