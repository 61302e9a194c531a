@testable import CertProxy
import CertStore
import CertkeeperTestSupport
import Crypto
import Foundation
import NIOHTTP1
import Testing

/// The routing rules of `mode: http`, without sockets.
@Suite("HTTP frontend: routing rules")
struct ACMEHTTPRouterTests {
    private func decide(_ uri: String, host: [String] = ["example.com"], method: HTTPMethod = .GET, httpsPort: Int? = nil) -> ACMEHTTPDecision {
        ACMEHTTPRouter.decide(method: method, uri: uri, hostHeaders: host, httpsPort: httpsPort, thumbprint: { "THUMB" })
    }

    @Test("redirect Location for several Host forms: name, with port, upper case, IPv4, IPv6 literal with and without port")
    func redirectHosts() {
        let cases: [(host: String, location: String)] = [
            ("example.com", "https://example.com/a/b?c=d"),
            ("example.com:80", "https://example.com/a/b?c=d"),
            ("Example.COM:8080", "https://example.com/a/b?c=d"),
            ("192.0.2.7:80", "https://192.0.2.7/a/b?c=d"),
            ("[2001:db8::1]:80", "https://[2001:db8::1]/a/b?c=d"),
            ("[::1]", "https://[::1]/a/b?c=d"),
        ]
        for (host, location) in cases {
            #expect(decide("/a/b?c=d", host: [host]) == .redirect(location: location, permanentRedirect: false), "Host: \(host)")
        }
    }

    @Test("https_port is added to the Location unless it is 443; other methods than GET/HEAD get 308")
    func portAndMethod() {
        #expect(decide("/x", host: ["example.com:80"], httpsPort: 8443) == .redirect(location: "https://example.com:8443/x", permanentRedirect: false))
        #expect(decide("/x", httpsPort: 443) == .redirect(location: "https://example.com/x", permanentRedirect: false))
        #expect(decide("/form", method: .POST) == .redirect(location: "https://example.com/form", permanentRedirect: true))
        #expect(decide("/", method: .HEAD) == .redirect(location: "https://example.com/", permanentRedirect: false))
        // Absolute-form targets (sent to proxies) keep only their path and query.
        #expect(decide("http://other.example/p?q=1") == .redirect(location: "https://example.com/p?q=1", permanentRedirect: false))
    }

    @Test("missing, repeated or malformed Host, and odd request targets, are 400")
    func badRequests() {
        for host in [[], ["a.example", "b.example"], [""], ["evil.example/x"], ["a b"], ["example.com:80x"], ["example.com:123456"],
                     ["[zz::1]"], ["[::1"], ["-bad.example"], ["user@example.com"]] {
            if case .badRequest = decide("/", host: host) {} else { Issue.record("Host \(host) was accepted") }
        }
        for uri in ["*", "//evil.example/x", "https://example.com/", "example.com/x"] {
            if case .badRequest = decide(uri) {} else { Issue.record("target \(uri) was accepted") }
        }
    }

    @Test("challenge: valid tokens answer token.thumbprint; bad tokens, other methods and no account do not")
    func challenges() {
        let token = "LoqXcYV8q5ONbJQxbmR7SCTNo3tiAXDfowyjxAjEuX0"
        #expect(decide("/.well-known/acme-challenge/\(token)") == .challenge(keyAuthorization: "\(token).THUMB"))
        #expect(decide("/.well-known/acme-challenge/\(token)", method: .HEAD) == .challenge(keyAuthorization: "\(token).THUMB"))
        for bad in ["", "abc$", "a.b", "../key.pem", "abc/def", "abc?x=1", "%41bc", String(repeating: "a", count: 129)] {
            #expect(decide("/.well-known/acme-challenge/\(bad)") == .notFound, "token \(bad)")
        }
        #expect(decide("/.well-known/acme-challenge/" + String(repeating: "a", count: 128)) != .notFound)
        #expect(decide("/.well-known/acme-challenge/\(token)", method: .POST) == .methodNotAllowed)
        let noAccount = ACMEHTTPRouter.decide(
            method: .GET, uri: "/.well-known/acme-challenge/\(token)", hostHeaders: ["example.com"], httpsPort: nil, thumbprint: { nil })
        #expect(noAccount == .notFound)
    }
}

/// A store with an ACME account and a proxy with one `mode: http` frontend on loopback, asked with curl.
@Suite("HTTP frontend: stateless http-01 and redirects over loopback (curl)", .serialized)
struct ACMEHTTPFrontendTests {
    static let directoryURL = "https://acme.test/directory"

    /// RFC 7638 thumbprint computed here, independently of ACMEProtocol: SHA-256 of the canonical EC JWK, base64url.
    static func thumbprint(_ key: P256.Signing.PrivateKey) -> String {
        let raw = Array(key.publicKey.rawRepresentation)
        let jwk = "{\"crv\":\"P-256\",\"kty\":\"EC\",\"x\":\"\(base64url(raw[0..<32]))\",\"y\":\"\(base64url(raw[32..<64]))\"}"
        return base64url(SHA256.hash(data: Array(jwk.utf8)))
    }

    static func base64url<Bytes: Sequence>(_ bytes: Bytes) -> String where Bytes.Element == UInt8 {
        Data(bytes).base64EncodedString().replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_")
            .replacingOccurrences(of: "=", with: "")
    }

    struct Harness {
        let logs: CapturedLogs
        let directory: TemporaryDirectory
        let store: CertificateStore
        let server: ProxyServer
        let port: Int

        static func start(httpsPort: Int? = 8443, directoryURL: String = ACMEHTTPFrontendTests.directoryURL) async throws -> Harness {
            let directory = try TemporaryDirectory(name: "acme-http")
            let logs = CapturedLogs()
            let store = CertificateStore(root: directory.path + "/state", logger: logs.logger)
            let source = AccountThumbprintSource(store: store, directoryURL: directoryURL, logger: logs.logger)
            let frontend = ProxyFrontend(name: "http", host: "127.0.0.1", port: 0, http: ProxyHTTPSettings(thumbprints: source, httpsPort: httpsPort))
            let server = try await ProxyServer.start(frontends: [frontend], certificates: CertificateSet(), threads: 1, logger: logs.logger)
            return Harness(logs: logs, directory: directory, store: store, server: server, port: server.boundPorts["http"]!)
        }

        var base: String { "http://127.0.0.1:\(port)" }

        func stop() async {
            await server.stop()
            directory.remove()
        }

        /// curl with extra arguments; returns stdout.
        func curl(_ arguments: [String]) async throws -> String {
            let result = try await OneShotProcess.run(executable: "/usr/bin/curl", arguments: ["-sS", "--max-time", "10"] + arguments, timeout: 20)
            #expect(result.exitCode == 0, "curl \(arguments): \(result.stderr)")
            return result.stdout
        }
    }

    @Test("a challenge is answered with token.thumbprint of the stored account; a replaced account is picked up; bad tokens 404")
    func challengeAnswer() async throws {
        let harness = try await Harness.start()
        do {
            let key = P256.Signing.PrivateKey()
            try harness.store.saveAccountKey(directoryURL: Self.directoryURL, keyPEM: key.pemRepresentation)
            let token = "evaGxfADs6pSRb2LAv9IZf17Dt3juxGJ-PCt92wr-oA"
            let response = try await Curl.request("GET", "\(harness.base)/.well-known/acme-challenge/\(token)")
            #expect(response.status == 200)
            #expect(response.headers["content-type"] == "text/plain")
            #expect(response.body == "\(token).\(Self.thumbprint(key))")

            let head = try await Curl.request("HEAD", "\(harness.base)/.well-known/acme-challenge/\(token)")
            #expect(head.status == 200)
            #expect(head.headers["content-length"] == "\(token.utf8.count + 1 + Self.thumbprint(key).utf8.count)")
            // HEAD then GET on one connection: a body after the HEAD response would garble the GET's.
            let url = "\(harness.base)/.well-known/acme-challenge/\(token)"
            let pair = try await harness.curl(["-I", "-o", "/dev/null", "-w", "%{http_code} %{num_connects}\\n", url, "--next", "-w", "\\n%{http_code} %{num_connects}", url])
            #expect(pair == "200 1\n\(token).\(Self.thumbprint(key))\n200 0", "curl: \(pair)")

            // The account is replaced (a follower adopting the renewer's): the next request answers with it.
            let replacement = P256.Signing.PrivateKey()
            try harness.store.saveAccountKey(directoryURL: Self.directoryURL, keyPEM: replacement.pemRepresentation)
            let after = try await Curl.request("GET", "\(harness.base)/.well-known/acme-challenge/\(token)")
            #expect(after.body == "\(token).\(Self.thumbprint(replacement))")

            for bad in ["abc%24", "..%2Fkey.pem", "a.b", String(repeating: "A", count: 129), ""] {
                let refused = try await Curl.request("GET", "\(harness.base)/.well-known/acme-challenge/\(bad)")
                #expect(refused.status == 404, "token \(bad)")
                #expect(!refused.body.contains(Self.thumbprint(replacement)))
            }
            #expect(harness.logs.all.contains { $0.contains("answered an http-01 challenge") })
        } catch {
            await harness.stop()
            throw error
        }
        await harness.stop()
    }

    @Test("no account yet: challenges are 404 and one throttled warning is logged")
    func noAccount() async throws {
        let harness = try await Harness.start()
        do {
            for _ in 0..<3 {
                let response = try await Curl.request("GET", "\(harness.base)/.well-known/acme-challenge/tokentokentoken")
                #expect(response.status == 404)
            }
            let warnings = harness.logs.all.filter { $0.hasPrefix("warning") && $0.contains("no ACME account stored") }
            #expect(warnings.count == 1, "\(harness.logs.all)")
        } catch {
            await harness.stop()
            throw error
        }
        await harness.stop()
    }

    @Test("everything else is redirected to https (Host without port, https_port, path and query kept); 308 for POST")
    func redirects() async throws {
        let harness = try await Harness.start()
        do {
            let plain = try await Curl.request("GET", "\(harness.base)/a/b?c=d", headers: ["Host": "www.example.com:80"])
            #expect(plain.status == 301)
            #expect(plain.headers["location"] == "https://www.example.com:8443/a/b?c=d")
            let ipv6 = try await Curl.request("GET", "\(harness.base)/", headers: ["Host": "[2001:db8::7]:80"])
            #expect(ipv6.status == 301)
            #expect(ipv6.headers["location"] == "https://[2001:db8::7]:8443/")
            let post = try await Curl.request("POST", "\(harness.base)/form", headers: ["Host": "www.example.com"], body: "x=1")
            #expect(post.status == 308)
            #expect(post.headers["location"] == "https://www.example.com:8443/form")
        } catch {
            await harness.stop()
            throw error
        }
        await harness.stop()
    }

    @Test("no Host, a bad Host or oversized headers are 400 and the connection is closed")
    func badRequests() async throws {
        let harness = try await Harness.start()
        do {
            // `-H "Host:"` makes curl send no Host header at all.
            let noHost = try await harness.curl(["-H", "Host:", "-D", "-", "-o", "/dev/null", "\(harness.base)/"])
            #expect(noHost.hasPrefix("HTTP/1.1 400"), "\(noHost)")
            #expect(noHost.lowercased().contains("connection: close"))
            let badHost = try await Curl.request("GET", "\(harness.base)/", headers: ["Host": "evil.example/x"])
            #expect(badHost.status == 400)
            let big = try await Curl.request("GET", "\(harness.base)/", headers: ["Host": "example.com", "X-Big": String(repeating: "a", count: 10_000)])
            #expect(big.status == 400)
        } catch {
            await harness.stop()
            throw error
        }
        await harness.stop()
    }

    @Test("keep-alive: two requests share one connection; Connection: close ends it")
    func keepAlive() async throws {
        let harness = try await Harness.start()
        do {
            let format = "%{http_code} %{num_connects}\\n"
            let kept = try await harness.curl(["-o", "/dev/null", "-o", "/dev/null", "-w", format, "\(harness.base)/one", "\(harness.base)/two"])
            #expect(kept.split(separator: "\n") == ["301 1", "301 0"], "curl -w: \(kept)")
            let closed = try await harness.curl(
                ["-H", "Connection: close", "-o", "/dev/null", "-o", "/dev/null", "-w", format, "\(harness.base)/one", "\(harness.base)/two"])
            #expect(closed.split(separator: "\n") == ["301 1", "301 1"], "curl -w: \(closed)")
        } catch {
            await harness.stop()
            throw error
        }
        await harness.stop()
    }

    @Test("reconfiguration: the same address keeps its socket and new connections get the new https_port")
    func reconfigure() async throws {
        let harness = try await Harness.start(httpsPort: 8443)
        do {
            let before = try await Curl.request("GET", "\(harness.base)/x", headers: ["Host": "example.com"])
            #expect(before.headers["location"] == "https://example.com:8443/x")
            let source = AccountThumbprintSource(store: harness.store, directoryURL: Self.directoryURL, logger: harness.logs.logger)
            try await harness.server.reconfigure(frontends: [
                ProxyFrontend(name: "http", host: "127.0.0.1", port: 0, http: ProxyHTTPSettings(thumbprints: source, httpsPort: 443)),
            ])
            #expect(harness.server.boundPorts["http"] == harness.port)
            let after = try await Curl.request("GET", "\(harness.base)/x", headers: ["Host": "example.com"])
            #expect(after.headers["location"] == "https://example.com/x")
        } catch {
            await harness.stop()
            throw error
        }
        await harness.stop()
    }
}
