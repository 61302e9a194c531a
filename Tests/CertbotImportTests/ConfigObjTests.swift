import Testing

@testable import CertbotImport

@Suite("configobj parser")
struct ConfigObjTests {
    @Test("a renewal file as certbot 2.1 writes it: comments, sections, one-item lists, no final newline")
    func certbotFile() throws {
        let text = """
        # renew_before_expiry = 30 days
        version = 2.1.0
        archive_dir = /etc/letsencrypt/archive/site.example.org
        cert = /etc/letsencrypt/live/site.example.org/cert.pem

        # Options used in the renewal process
        [renewalparams]
        account = fe401493dd43c4229483f27ea04a735c
        authenticator = webroot
        webroot_path = /var/www/html,
        [[webroot_map]]
        alt.example.org = /var/www/alt
        site.example.org = /var/www/html
        """
        let root = try ConfigObjParser.parse(text)
        #expect(root["version"] == .string("2.1.0"))
        #expect(root["renew_before_expiry"] == nil)
        #expect(root.line(of: "cert") == 4)
        let parameters = try #require(root.section("renewalparams"))
        #expect(parameters["webroot_path"] == .list(["/var/www/html"]))
        #expect(parameters["authenticator"]?.strings == ["webroot"])
        let map = try #require(parameters.section("webroot_map"))
        #expect(map.entries.map(\.key) == ["alt.example.org", "site.example.org"])
        #expect(map["site.example.org"] == .string("/var/www/html"))
        #expect(root.section("webroot_map") == nil, "[[webroot_map]] belongs to [renewalparams], not the root")
    }

    @Test("values: lists, quotes keeping commas and #, inline comments, empty values and empty lists")
    func values() throws {
        let root = try ConfigObjParser.parse("""
        a = x, y ,z
        b = "one, two # not a comment"   # a comment
        c = 'single "quoted"', plain
        d = value # comment
        e =
        f = ,
        g = a"b
        "quoted key" = 1
        h = \t spaced \t
        """)
        #expect(root["a"] == .list(["x", "y", "z"]))
        #expect(root["b"] == .string("one, two # not a comment"))
        #expect(root["c"] == .list(["single \"quoted\"", "plain"]))
        #expect(root["d"] == .string("value"))
        #expect(root["e"] == .string(""))
        #expect(root["e"]?.strings == [])
        #expect(root["f"] == .list([]))
        #expect(root["g"] == .string("a\"b"))
        #expect(root["quoted key"] == .string("1"))
        #expect(root["h"] == .string("spaced"))
    }

    @Test("CRLF line ends and sections returning to a shallower depth")
    func crlfAndDepth() throws {
        let root = try ConfigObjParser.parse("k = v\r\n[one]\r\na = 1\r\n[[sub]]\r\nb = 2\r\n[two]\r\nc = 3\r\n")
        #expect(root["k"] == .string("v"))
        #expect(root.section("one")?.section("sub")?["b"] == .string("2"))
        #expect(root.section("two")?["c"] == .string("3"))
        #expect(root.sections.map(\.name) == ["one", "two"])
    }

    @Test("malformed lines name their line number", arguments: [
        ("a = 1\n[[deep]]\n", 2, "nested"),
        ("[open\n", 1, "no closing bracket"),
        ("[a]]\n", 1, "unbalanced"),
        ("a = 1\na = 2\n", 2, "appears twice"),
        ("[s]\n[s]\n", 2, "appears twice"),
        ("a = \"unterminated\n", 1, "no closing"),
        ("a = '''multi\n", 1, "multi-line"),
        ("just words\n", 1, "expected \"key = value\""),
        ("= value\n", 1, "no key"),
        ("a = x,,y\n", 1, "empty item"),
        ("a = \"q\" trailing\n", 1, "unexpected text"),
        ("[]\n", 1, "no name"),
    ])
    func errors(text: String, line: Int, fragment: String) {
        #expect {
            _ = try ConfigObjParser.parse(text)
        } throws: { error in
            guard let error = error as? ConfigObjSyntaxError else { return false }
            return error.line == line && error.problem.contains(fragment)
        }
    }
}
