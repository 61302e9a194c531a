import CertProxy
import CertStore
import CertkeeperTestSupport
import Foundation
import Testing

#if canImport(Glibc)
import Glibc
#endif

@Suite("Hot swap from the store and from watched files")
struct HotSwapTests {
    @Test("an install is served to new handshakes within a bounded wait; an open connection keeps relaying")
    func installSwapsCertificate() async throws {
        let logs = CapturedLogs()
        let fixture = try StoreFixture("swap", logger: logs.logger)
        defer { fixture.remove() }
        let first = try fixture.install("web", names: ["web.example.org"])
        let certificates = CertificateSet()
        let reloader = CertificateReloader(storeRoot: fixture.root, certificates: certificates, logger: logs.logger)
        reloader.loadAll()
        try await WatchedProxy.run(reloader: reloader, certificates: certificates, logger: logs.logger) { running in
            let proxy = running.proxy
            #expect(try await servedSerial(port: proxy.port, serverName: "web.example.org") == first.certificate.serialNumber)
            let longLived = try await TestClient.connect(port: proxy.port, rootPEM: fixture.rootPEM, serverName: "web.example.org")
            try await stopping(longLived) {
                try await longLived.send("before\n")
                #expect(await longLived.waitFor("before\n"))

                let second = try fixture.install("web", names: ["web.example.org"])
                let swapped = await eventually(timeout: .seconds(10)) {
                    (try? await servedSerial(port: proxy.port, serverName: "web.example.org")) == second.certificate.serialNumber
                }
                #expect(swapped, "logs: \(logs.all)")
                #expect(certificates.entry(named: "web")?.sha256Hex != nil)

                try await longLived.send("after\n")
                #expect(await longLived.waitFor("before\nafter\n"))
                #expect(longLived.isOpen)
                #expect(logs.all.contains { $0.contains("certificate swapped") && $0.contains("cert.name=web") })
            }
        }
    }

    @Test("a live set whose key does not match is refused with one error line; the old certificate keeps serving")
    func brokenStoreSetRefused() async throws {
        let logs = CapturedLogs()
        let fixture = try StoreFixture("broken", logger: logs.logger)
        defer { fixture.remove() }
        let good = try fixture.install("web", names: ["web.example.org"])
        let certificates = CertificateSet()
        let reloader = CertificateReloader(storeRoot: fixture.root, certificates: certificates, logger: logs.logger)
        reloader.loadAll()
        try await WatchedProxy.run(reloader: reloader, certificates: certificates, logger: logs.logger) { running in
            let proxy = running.proxy
            // A hand-made version: a new leaf with somebody else's key, swapped in like the store does it.
            let newLeaf = try fixture.intermediate.issueLeaf(dnsNames: ["web.example.org"])
            let otherKey = try fixture.intermediate.issueLeaf(dnsNames: ["other.example.org"]).privateKeyPEM
            let version = "\(fixture.root)/archive/web/v000099-20260101000000"
            try FileManager.default.createDirectory(atPath: version, withIntermediateDirectories: true)
            try Data((newLeaf.fullChainPEM + otherKey).utf8).write(to: URL(fileURLWithPath: "\(version)/bundle.pem"))
            #expect(symlink("../archive/web/v000099-20260101000000", "\(fixture.root)/live/.web.tmp-test") == 0)
            #expect(rename("\(fixture.root)/live/.web.tmp-test", "\(fixture.root)/live/web") == 0)

            let refused = await eventually(timeout: .seconds(10)) {
                logs.all.contains { $0.hasPrefix("error") && $0.contains("cert.name=web") }
            }
            #expect(refused, "logs: \(logs.all)")
            let errors = logs.all.filter { $0.hasPrefix("error") }
            #expect(errors.count == 1)
            #expect(errors.first?.contains("private key does not match") == true, "\(errors)")
            #expect(try await servedSerial(port: proxy.port, serverName: "web.example.org") == good.certificate.serialNumber)
            #expect(certificates.entry(named: "web")?.serialHex != nil)
        }
    }

    @Test("a watched PEM file: a truncated rewrite is refused, a good rewrite is served")
    func watchedFile() async throws {
        let logs = CapturedLogs()
        let directory = try TemporaryDirectory(name: "certproxy-file")
        defer { directory.remove() }
        let ca = try TestCA.make().issueIntermediate()
        let first = try ca.issueLeaf(dnsNames: ["mqtt.example.org"])
        let path = try directory.write(first.fullChainPEM + first.privateKeyPEM, to: "mqtt.pem")
        let certificates = CertificateSet()
        let reloader = CertificateReloader(
            sources: [.file(name: "mqtt", path: path)], certificates: certificates, logger: logs.logger)
        #expect(reloader.loadAll().isEmpty)
        try await WatchedProxy.run(reloader: reloader, certificates: certificates, logger: logs.logger) { running in
            let proxy = running.proxy
            #expect(try await servedSerial(port: proxy.port, serverName: "mqtt.example.org") == first.certificate.serialNumber)

            let second = try ca.issueLeaf(dnsNames: ["mqtt.example.org"])
            let full = second.fullChainPEM + second.privateKeyPEM
            try directory.write(String(full.prefix(full.count / 2)), to: "mqtt.pem")
            let refused = await eventually(timeout: .seconds(10)) {
                logs.all.contains { $0.hasPrefix("error") && $0.contains("cert.name=mqtt") && $0.contains("truncated") }
            }
            #expect(refused, "logs: \(logs.all)")
            #expect(try await servedSerial(port: proxy.port, serverName: "mqtt.example.org") == first.certificate.serialNumber)

            try directory.write(full, to: ".mqtt.pem.tmp")
            #expect(rename(directory.appending(".mqtt.pem.tmp"), path) == 0)
            let swapped = await eventually(timeout: .seconds(10)) {
                (try? await servedSerial(port: proxy.port, serverName: "mqtt.example.org")) == second.certificate.serialNumber
            }
            #expect(swapped, "logs: \(logs.all)")
        }
    }
    @Test("a 50 MB file renamed over a watched bundle is refused from its size, memory stays flat, the next good one is served")
    func oversizedFileIsRefusedUnread() async throws {
        let logs = CapturedLogs()
        let directory = try TemporaryDirectory(name: "certproxy-huge")
        defer { directory.remove() }
        let ca = try TestCA.make().issueIntermediate()
        let first = try ca.issueLeaf(dnsNames: ["mqtt.example.org"])
        let path = try directory.write(first.fullChainPEM + first.privateKeyPEM, to: "mqtt.pem")
        // 50 MB of blank lines, written in 1 MiB pieces so the test itself does not hold it.
        let huge = directory.appending(".mqtt.pem.huge")
        #expect(FileManager.default.createFile(atPath: huge, contents: nil))
        let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: huge))
        let piece = Data(repeating: UInt8(ascii: "\n"), count: 1 << 20)
        for _ in 0..<50 { try handle.write(contentsOf: piece) }
        try handle.close()

        let certificates = CertificateSet()
        let reloader = CertificateReloader(sources: [.file(name: "mqtt", path: path)], certificates: certificates, logger: logs.logger)
        #expect(reloader.loadAll().isEmpty)
        try await WatchedProxy.run(reloader: reloader, certificates: certificates, logger: logs.logger) { running in
            let proxy = running.proxy
            #expect(try await servedSerial(port: proxy.port, serverName: "mqtt.example.org") == first.certificate.serialNumber)
            let before = residentBytes()
            #expect(rename(huge, path) == 0)
            let refused = await eventually(timeout: .seconds(10)) {
                logs.all.contains { $0.hasPrefix("error") && $0.contains("cert.name=mqtt") && $0.contains("52428800 bytes, larger than the 1048576 bytes allowed") }
            }
            #expect(refused, "logs: \(logs.all)")
            // Reading it whole took 2.1 GiB (one substring per line); refused from its size it costs nothing. The
            // bound is loose because other tests run in this process at the same time.
            let grown = residentBytes() - before
            #expect(grown < 200 << 20, "resident memory grew by \(grown >> 20) MiB")
            #expect(try await servedSerial(port: proxy.port, serverName: "mqtt.example.org") == first.certificate.serialNumber)

            let second = try ca.issueLeaf(dnsNames: ["mqtt.example.org"])
            try directory.write(second.fullChainPEM + second.privateKeyPEM, to: ".mqtt.pem.tmp")
            #expect(rename(directory.appending(".mqtt.pem.tmp"), path) == 0)
            let swapped = await eventually(timeout: .seconds(10)) {
                (try? await servedSerial(port: proxy.port, serverName: "mqtt.example.org")) == second.certificate.serialNumber
            }
            #expect(swapped, "logs: \(logs.all)")
        }
    }
}

/// This process's resident set size (`VmRSS` in /proc/self/status), in bytes.
func residentBytes() -> Int {
    let status = (try? String(contentsOfFile: "/proc/self/status", encoding: .utf8)) ?? ""
    guard let line = status.split(separator: "\n").first(where: { $0.hasPrefix("VmRSS:") }),
          let kilobytes = Int(line.split(separator: " ", omittingEmptySubsequences: true).dropFirst().first ?? "") else { return 0 }
    return kilobytes * 1024
}
