import CertkeeperTestSupport
import Foundation
import Testing

/// `certkeeper proxy` TLS and timeout flags: `--alpn` negotiated with openssl s_client, bad values refused.
@Suite("certkeeper proxy flags")
struct ProxyCommandFlagTests {
    @Test("--alpn h2,http/1.1 negotiates what the client asks for, in the server's preference order")
    func alpn() async throws {
        let directory = try TemporaryDirectory(name: "proxy-alpn")
        defer { directory.remove() }
        let ca = try TestCA.make(commonName: "proxy alpn root").issueIntermediate(commonName: "proxy alpn intermediate")
        let leaf = try ca.issueLeaf(dnsNames: ["alpn.example.org"])
        let bundle = try directory.write(leaf.fullChainPEM + leaf.privateKeyPEM, to: "alpn.pem")
        let port = try PortAllocator.shared.allocate()
        let proxy = try CLI.start(
            [
                "proxy", "--listen", "127.0.0.1:\(port)", "--cert", bundle, "--to", "127.0.0.1:1", "--threads", "1",
                "--alpn", "h2,http/1.1", "--handshake-timeout", "5", "--connect-timeout", "2", "--idle-timeout", "30",
                "--grace", "0",
            ],
            logDirectory: directory.path)
        do {
            try await proxy.waitForTCPPort(port: port)
            let both = try await negotiated(port: port, offer: "http/1.1,h2")
            #expect(both.contains("ALPN protocol: h2"), "\(both)")
            let http1 = try await negotiated(port: port, offer: "http/1.1")
            #expect(http1.contains("ALPN protocol: http/1.1"), "\(http1)")
            let none = try await negotiated(port: port, offer: "mqtt")
            #expect(!none.contains("ALPN protocol:"), "\(none)")
        } catch {
            await proxy.stop()
            throw error
        }
        await proxy.stop()
    }

    @Test("a bad --alpn or timeout value exits 2 with one line naming the flag")
    func badValues() async throws {
        let directory = try TemporaryDirectory(name: "proxy-flags")
        defer { directory.remove() }
        let base = ["proxy", "--listen", "127.0.0.1:1", "--cert", directory.appending("none.pem"), "--to", "127.0.0.1:1"]
        for (flag, value) in [("--idle-timeout", "0"), ("--handshake-timeout", "-1"), ("--connect-timeout", "soon"), ("--alpn", "h2,,http/1.1")] {
            let result = try await CLI.run(base + [flag, value], timeout: 30)
            #expect(result.exitCode == 2, "\(flag) \(value): \(result.stderr)")
            #expect(result.stderr.contains(flag), "\(flag) \(value): \(result.stderr)")
        }
    }
}

/// The s_client output for a handshake offering `offer` (comma-separated) as ALPN.
private func negotiated(port: Int, offer: String) async throws -> String {
    let result = try await OneShotProcess.run(
        executable: "/usr/bin/openssl",
        arguments: ["s_client", "-connect", "127.0.0.1:\(port)", "-servername", "alpn.example.org", "-alpn", offer],
        timeout: 10)
    return result.stdout + result.stderr
}
