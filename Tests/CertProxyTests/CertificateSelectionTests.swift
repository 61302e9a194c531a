import CertProxy
import CertStore
import CertkeeperTestSupport
import Foundation
import Testing

@Suite("SNI selection and TLS policy, through openssl and curl")
struct CertificateSelectionTests {
    @Test("exact SNI, wildcard SNI, no SNI and unknown SNI get the right certificate")
    func selection() async throws {
        let logs = CapturedLogs()
        let fixture = try StoreFixture("sni", logger: logs.logger)
        defer { fixture.remove() }
        let fallback = try fixture.install("fallback", names: ["fallback.example.org"])
        let web = try fixture.install("web", names: ["web.example.org"])
        let wild = try fixture.install("wild", names: ["*.apps.example.org"])
        let certificates = CertificateSet(defaultName: "fallback")
        let refused = CertificateReloader(storeRoot: fixture.root, certificates: certificates, logger: logs.logger).loadAll()
        #expect(refused.isEmpty)
        #expect(certificates.names == ["fallback", "web", "wild"])

        let backend = try await TestBackend.start(.http)
        let proxy = try await RunningProxy.start(certificates: certificates, backends: [backend.port], logger: logs.logger)
        try await stopping(proxy, backend) {
            #expect(try await servedSerial(port: proxy.port, serverName: "web.example.org") == web.certificate.serialNumber)
            #expect(try await servedSerial(port: proxy.port, serverName: "WEB.Example.org") == web.certificate.serialNumber)
            #expect(try await servedSerial(port: proxy.port, serverName: "a.apps.example.org") == wild.certificate.serialNumber)
            #expect(try await servedSerial(port: proxy.port, serverName: "a.b.apps.example.org") == fallback.certificate.serialNumber)
            #expect(try await servedSerial(port: proxy.port, serverName: nil) == fallback.certificate.serialNumber)
            #expect(try await servedSerial(port: proxy.port, serverName: "unknown.example.net") == fallback.certificate.serialNumber)

            // curl checks the whole chain against the root and gets the backend's answer through the proxy.
            for name in ["web.example.org", "x.apps.example.org"] {
                let response = try await curlThroughProxy(name: name, port: proxy.port, caBundlePath: fixture.rootPath)
                #expect(response.exitCode == 0, "\(response.stderr)")
                #expect(response.body == "hello from backend\n")
            }
        }
    }

    @Test("TLS 1.1 is refused, TLS 1.2 and 1.3 are accepted")
    func protocolVersions() async throws {
        let logs = CapturedLogs()
        let fixture = try StoreFixture("versions", logger: logs.logger)
        defer { fixture.remove() }
        try fixture.install("web", names: ["web.example.org"])
        let certificates = CertificateSet()
        CertificateReloader(storeRoot: fixture.root, certificates: certificates, logger: logs.logger).loadAll()
        let backend = try await TestBackend.start()
        let proxy = try await RunningProxy.start(certificates: certificates, backends: [backend.port], logger: logs.logger)
        try await stopping(proxy, backend) {
            // SECLEVEL=0 lets OpenSSL 3 offer TLS 1.1 at all, so a refusal is the proxy's.
            let old = try await sClient(
                port: proxy.port, serverName: "web.example.org", extra: ["-tls1_1", "-cipher", "DEFAULT:@SECLEVEL=0"])
            #expect(old.exitCode != 0)
            #expect(old.certificate == nil)
            // The server's alert, not a client-side refusal to offer TLS 1.1.
            #expect(old.output.contains("protocol version"), "\(old.output)")
            let tls12 = try await sClient(port: proxy.port, serverName: "web.example.org", extra: ["-tls1_2"])
            #expect(tls12.exitCode == 0)
            #expect(tls12.output.contains("ECDHE"))
            let tls13 = try await sClient(port: proxy.port, serverName: "web.example.org", extra: ["-tls1_3"])
            #expect(tls13.exitCode == 0)
            #expect(tls13.output.contains("TLSv1.3"))
            // Not an ECDHE + AEAD suite: refused.
            let weak = try await sClient(
                port: proxy.port, serverName: "web.example.org", extra: ["-tls1_2", "-cipher", "AES128-SHA"])
            #expect(weak.exitCode != 0)
        }
    }
}
