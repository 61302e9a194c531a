import Testing

@testable import CertkeeperConfig

@Suite("Value syntaxes")
struct SyntaxTests {
    @Test("ListenAddress(parsing:) is usable on its own, e.g. for command-line flags")
    func listenAddressParsing() throws {
        #expect(try ListenAddress(parsing: "[2001:db8::1]:8443") == ListenAddress(host: "2001:db8::1", port: 8443))
        #expect(ListenAddress(host: "2001:db8::1", port: 8443).description == "[2001:db8::1]:8443")
        let error = #expect(throws: ListenAddress.SyntaxError.self) { try ListenAddress(parsing: "0.0.0.0:99999") }
        #expect(error?.description == "'0.0.0.0:99999' is not a valid listen address: port '99999' is not a number "
            + "from 1 to 65535")
    }

    @Test("duration strings", arguments: [
        ("45", 45.0), ("1.25", 1.25), ("2d12h", 216_000), ("1m30s", 90), (" 10m ", 600),
    ])
    func durations(text: String, seconds: Double) {
        #expect(Syntax.durationSeconds(text) == seconds)
    }

    @Test("rejected duration strings", arguments: ["", "m", "10x", "1s1m", "1h1h", "1.h", ".5h", "1..5h", "1e3", "-1s",
                                                   "1h 30m", "1h30"])
    func badDurations(text: String) {
        #expect(Syntax.durationSeconds(text) == nil)
    }

    @Test("edit distance counts a swap of neighbours once")
    func editDistance() {
        #expect(Syntax.editDistance("acme", "acme") == 0)
        #expect(Syntax.editDistance("acem", "acme") == 1)
        #expect(Syntax.editDistance("renew_befor", "renew_before") == 1)
        #expect(Syntax.editDistance("", "abc") == 3)
        #expect(Syntax.editDistance("kitten", "sitting") == 3)
        #expect(Syntax.suggestion(for: "hoks", among: ConfigSchema.topLevel) == "hooks")
        #expect(Syntax.suggestion(for: "zzzz", among: ConfigSchema.topLevel) == nil)
    }

    @Test("valid DNS names", arguments: ["example.com", "a.b", "xn--bcher-kva.example", "*.example.com",
                                         "a-b.c-d.example", "123.example.com", "x.co"])
    func validDNSNames(name: String) {
        #expect(Syntax.dnsNameProblem(name, allowWildcard: true) == nil)
    }

    @Test("wildcards only where allowed")
    func wildcardNotAllowed() {
        #expect(Syntax.dnsNameProblem("*.example.com", allowWildcard: false) != nil)
        #expect(Syntax.dnsNameProblem("*.com", allowWildcard: true) != nil)
        #expect(Syntax.dnsNameProblem("*", allowWildcard: true) != nil)
    }
}
