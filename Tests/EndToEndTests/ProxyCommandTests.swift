import CertkeeperTestSupport
import Foundation
import Testing
import X509

/// `certkeeper proxy --listen --cert --to`: the real binary, curl and openssl s_client as clients.
@Suite("certkeeper proxy one-liner", .serialized)
struct ProxyCommandTests {
    @Test("serves through to the backend, hot-swaps a renamed bundle, refuses a broken one, drains on SIGTERM")
    func hotSwapAndDrain() async throws {
        let directory = try TemporaryDirectory(name: "proxy-command")
        defer { directory.remove() }
        let root = try TestCA.make(commonName: "proxy command test root")
        let ca = try root.issueIntermediate(commonName: "proxy command test intermediate")
        let rootPath = try directory.write(root.certificatePEM, to: "root.pem")
        let first = try ca.issueLeaf(dnsNames: ["px.example.org"])
        let bundlePath = try directory.write(first.fullChainPEM + first.privateKeyPEM, to: "web.pem")
        _ = try directory.write("hello from the backend\n", to: "site/index.html")
        let backend = try await StaticFileServer.start(rootDirectory: directory.appending("site"))
        let port = try PortAllocator.shared.allocate()
        let proxy = try CLI.start(
            ["proxy", "--listen", "127.0.0.1:\(port)", "--cert", bundlePath, "--to", "127.0.0.1:\(backend.port)", "--threads", "1", "--grace", "5"],
            logDirectory: directory.path
        )
        do {
            try await proxy.waitForTCPPort(port: port)
            let fetched = try tool("/usr/bin/curl", ["-sS", "--cacert", rootPath, "--resolve", "px.example.org:\(port):127.0.0.1", "https://px.example.org:\(port)/index.html"])
            #expect(fetched.output == "hello from the backend\n", "curl: \(fetched.output)")
            #expect(try servedSerial(port: port, serverName: "px.example.org") == hexSerial(first.certificate))

            // A new bundle renamed into place is served to the next handshakes.
            let second = try ca.issueLeaf(dnsNames: ["px.example.org"])
            let staged = try directory.write(second.fullChainPEM + second.privateKeyPEM, to: ".web.pem.tmp")
            #expect(rename(staged, bundlePath) == 0)
            #expect(try await eventually { try servedSerial(port: port, serverName: "px.example.org") == hexSerial(second.certificate) }, "new bundle not served; log: \(proxy.logTail())")

            // A bundle whose key does not match is refused; the last good certificate keeps serving.
            let third = try ca.issueLeaf(dnsNames: ["px.example.org"])
            let broken = try directory.write(third.fullChainPEM + first.privateKeyPEM, to: ".web.pem.tmp")
            #expect(rename(broken, bundlePath) == 0)
            #expect(try await eventually { proxy.logTail(lines: 50).contains("certificate refused") }, "log: \(proxy.logTail())")
            #expect(try servedSerial(port: port, serverName: "px.example.org") == hexSerial(second.certificate))

            // SIGTERM: stops accepting, drains, exits 0.
            proxy.send(signal: SIGTERM)
            let code = await proxy.waitForExit(timeout: 20)
            #expect(code == 0, "log: \(proxy.logTail())")
        } catch {
            await proxy.stop()
            await backend.stop()
            throw error
        }
        await proxy.stop()
        await backend.stop()
    }

    @Test("bad arguments and a broken bundle at start-up exit 2 with one line naming the problem")
    func badInput() async throws {
        let directory = try TemporaryDirectory(name: "proxy-bad")
        defer { directory.remove() }
        let ca = try TestCA.make(commonName: "proxy bad input root").issueIntermediate(commonName: "proxy bad input intermediate")
        let leaf = try ca.issueLeaf(dnsNames: ["bad.example.org"])
        let other = try ca.issueLeaf(dnsNames: ["bad.example.org"])
        let mismatched = try directory.write(leaf.fullChainPEM + other.privateKeyPEM, to: "mismatch.pem")
        let port = try PortAllocator.shared.allocate()
        let refused = try await CLI.run(["proxy", "--listen", "127.0.0.1:\(port)", "--cert", mismatched, "--to", "127.0.0.1:1"], timeout: 30)
        #expect(refused.exitCode == 2, "\(refused.stderr)")
        #expect(refused.stderr.contains("mismatch"), "\(refused.stderr)")
        let noBackend = try await CLI.run(["proxy", "--listen", "127.0.0.1:\(port)", "--cert", mismatched], timeout: 30)
        #expect(noBackend.exitCode == 2)
        #expect(noBackend.stderr.contains("--to"))
        let badListen = try await CLI.run(["proxy", "--listen", "nowhere", "--cert", mismatched, "--to", "127.0.0.1:1"], timeout: 30)
        #expect(badListen.exitCode == 2)
        #expect(badListen.stderr.contains("--listen"))
    }
}
