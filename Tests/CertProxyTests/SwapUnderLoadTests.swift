import CertProxy
import CertStore
import CertkeeperTestSupport
import Foundation
import NIOConcurrencyHelpers
import Testing
import X509

@Suite("Certificate swaps under continuous load")
struct SwapUnderLoadTests {
    @Test("10 swaps while short connections churn and long-lived ones keep sending: zero failures")
    func swapsUnderLoad() async throws {
        let logs = CapturedLogs()
        let fixture = try StoreFixture("load", logger: logs.logger)
        defer { fixture.remove() }
        var serials = [try fixture.install("web", names: ["web.example.org"]).certificate.serialNumber]
        let certificates = CertificateSet()
        let reloader = CertificateReloader(storeRoot: fixture.root, certificates: certificates, logger: logs.logger)
        reloader.loadAll()
        try await WatchedProxy.run(reloader: reloader, certificates: certificates, logger: logs.logger) { running in
            try await swapsUnderLoad(running.proxy, fixture: fixture, certificates: certificates, serials: &serials, logs: logs)
        }
    }

    private func swapsUnderLoad(_ proxy: RunningProxy, fixture: StoreFixture, certificates: CertificateSet, serials: inout [Certificate.SerialNumber], logs: CapturedLogs) async throws {
        var longLived: [TestClient] = []
        let stop = NIOLockedValueBox(false)
        let counts = NIOLockedValueBox((succeeded: 0, failed: 0, failures: [String]()))
        do {
            for index in 0..<3 {
                let client = try await TestClient.connect(port: proxy.port, rootPEM: fixture.rootPEM, serverName: "web.example.org")
                try await client.send("open \(index)\n")
                #expect(await client.waitFor("open \(index)\n"))
                longLived.append(client)
            }
            let clients = longLived
            // Long-lived senders: one line every 20 ms each, until told to stop (bounded by 2,000 lines).
            let senders = Task {
                var line = 0
                while !stop.withLockedValue({ $0 }) && line < 2_000 {
                    for (index, client) in clients.enumerated() { try? await client.send("l\(index)-\(line)\n") }
                    line += 1
                    try? await Task.sleep(for: .milliseconds(20))
                }
                return line
            }
            // Short connections: 4 workers, handshake + one echo + close, until told to stop (bounded).
            let workers = (0..<4).map { worker in
                Task {
                    var attempt = 0
                    while !stop.withLockedValue({ $0 }) && attempt < 2_000 {
                        attempt += 1
                        do {
                            let client = try await TestClient.connect(port: proxy.port, rootPEM: fixture.rootPEM, serverName: "web.example.org")
                            try await client.send("ping \(worker)-\(attempt)\n")
                            let echoed = await client.waitFor("ping \(worker)-\(attempt)\n")
                            await client.close()
                            counts.withLockedValue { counts in
                                if echoed {
                                    counts.succeeded += 1
                                } else {
                                    counts.failed += 1
                                    counts.failures.append("no echo")
                                }
                            }
                        } catch {
                            counts.withLockedValue { $0.failed += 1; $0.failures.append("\(error)") }
                        }
                    }
                }
            }
            for _ in 0..<10 {
                let next = try fixture.install("web", names: ["web.example.org"])
                serials.append(next.certificate.serialNumber)
                let served = await eventually(timeout: .seconds(10)) { certificates.entry(named: "web").map { String($0.serialHex.lowercased().drop(while: { $0 == "0" })) } == hex(next.certificate.serialNumber) }
                #expect(served, "swap not picked up; logs: \(logs.all.suffix(5))")
                try await Task.sleep(for: .milliseconds(100))
            }
            // Let the short connections reach a meaningful count whatever the machine's load (bounded wait).
            _ = await eventually(timeout: .seconds(60)) { counts.withLockedValue { $0.succeeded + $0.failed } >= 40 }
            stop.withLockedValue { $0 = true }
            for worker in workers { await worker.value }
            let linesSent = await senders.value
            let (succeeded, failed, failures) = counts.withLockedValue { ($0.succeeded, $0.failed, $0.failures) }
            #expect(failed == 0, "failed short connections: \(failures.prefix(3))")
            #expect(succeeded >= 40, "only \(succeeded) short connections ran")
            // The long-lived connections survived every swap and still relay, in order.
            for (index, client) in clients.enumerated() {
                try await client.send("final \(index)\n")
                #expect(await client.waitFor("l\(index)-\(linesSent - 1)\nfinal \(index)\n"), "long-lived \(index) lost data")
                #expect(client.isOpen)
            }
            #expect(try await servedSerial(port: proxy.port, serverName: "web.example.org") == serials.last)
        } catch {
            stop.withLockedValue { $0 = true }
            for client in longLived { await client.close() }
            throw error
        }
        for client in longLived { await client.close() }
    }
}

private func hex(_ serial: Certificate.SerialNumber) -> String {
    let text = serial.bytes.map { String(format: "%02x", $0) }.joined()
    return String(text.drop(while: { $0 == "0" }))
}
