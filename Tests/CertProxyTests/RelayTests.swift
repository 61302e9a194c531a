import CertProxy
import CertStore
import CertkeeperTestSupport
import Foundation
import Testing

/// One store with `web.example.org`, a backend and a proxy, torn down in all paths.
struct RelayHarness {
    let logs = CapturedLogs()
    let fixture: StoreFixture
    let certificates = CertificateSet()

    init(_ name: String) throws {
        fixture = try StoreFixture(name, logger: logs.logger)
        try fixture.install("web", names: ["web.example.org"])
        CertificateReloader(storeRoot: fixture.root, certificates: certificates, logger: logs.logger).loadAll()
    }

    func connect(_ proxy: RunningProxy, tls: Bool = true, halfClosure: Bool = false) async throws -> TestClient {
        try await TestClient.connect(
            port: proxy.port, rootPEM: tls ? fixture.rootPEM : nil, serverName: "web.example.org", halfClosure: halfClosure)
    }
}

@Suite("Relaying: backend failures, half-close, graceful shutdown")
struct RelayTests {
    @Test("a backend that is down: the client is relayed to the next server instead")
    func backendDown() async throws {
        let harness = try RelayHarness("down")
        defer { harness.fixture.remove() }
        let downPort = try PortAllocator.shared.allocate()
        let backend = try await TestBackend.start()
        // Round-robin: the first connection goes to the dead port, then on to the live backend.
        let proxy = try await RunningProxy.start(
            certificates: harness.certificates, backends: [downPort, backend.port], logger: harness.logs.logger)
        try await stopping(proxy, backend) {
            let first = try await harness.connect(proxy)
            try await first.send("first\n")
            #expect(await first.waitFor("first\n"))
            await first.close()

            let second = try await harness.connect(proxy)
            try await second.send("hello\n")
            #expect(await second.waitFor("hello\n"))
            await second.close()
            #expect(proxy.server.stats.backendFailures == 1)
            #expect(harness.logs.all.contains { $0.contains("backend unreachable") && $0.contains("127.0.0.1:\(downPort)") })
        }
    }

    @Test("every backend down: the client is closed promptly and counted")
    func allBackendsDown() async throws {
        let harness = try RelayHarness("alldown")
        defer { harness.fixture.remove() }
        let downPorts = [try PortAllocator.shared.allocate(), try PortAllocator.shared.allocate()]
        let proxy = try await RunningProxy.start(
            certificates: harness.certificates, backends: downPorts, logger: harness.logs.logger)
        try await stopping(proxy) {
            let client = try await harness.connect(proxy)
            try? await client.send("lost\n")
            #expect(await client.waitClosed(timeout: .seconds(10)))
            #expect(!client.text.contains("lost"))
            // The proxy frees its side at once, not after NIOSSL's 5 s close_notify wait.
            #expect(await eventually(timeout: .seconds(10)) { proxy.server.stats.active == 0 })
            #expect(proxy.server.stats.backendFailures == 2)
            #expect(proxy.server.snapshot().first?.noServerClosures == 1)
            #expect(harness.logs.all.contains { $0.contains("no server left to try") })
            // One line per decision: the first failure with "trying the next", the last one with the closing.
            let lines = harness.logs.all.filter {
                ($0.contains("backend unreachable") || $0.contains("no server left")) && !$0.contains("the client had gone")
            }
            #expect(lines.count == 2, "\(lines)")
            #expect(lines.last?.contains("backend unreachable and no server left to try") == true && lines.last?.contains("error=") == true, "\(lines)")
        }
    }

    @Test("half-close over TLS: the client ends its output and still receives the backend's full answer")
    func halfCloseTLS() async throws {
        try await halfClose(tls: true)
    }

    @Test("half-close over plain TCP")
    func halfClosePlain() async throws {
        try await halfClose(tls: false)
    }

    private func halfClose(tls: Bool) async throws {
        let harness = try RelayHarness("halfclose")
        defer { harness.fixture.remove() }
        let backend = try await TestBackend.start()
        let proxy = try await RunningProxy.start(
            certificates: harness.certificates, backends: [backend.port], tls: tls ? ProxyTLSSettings() : nil,
            logger: harness.logs.logger)
        try await stopping(proxy, backend) {
            let client = try await harness.connect(proxy, tls: tls, halfClosure: true)
            try await client.send("request\n")
            try await client.closeOutput()
            // The backend echoes, then on EOF answers BYE and closes: both must arrive after our EOF.
            #expect(await client.waitFor("request\nBYE\n"), "received: \(client.text)")
            #expect(await client.waitClosed())
            await client.close()
        }
    }

    @Test("shutdown(grace:) refuses new connections and lets an open one finish")
    func gracefulShutdown() async throws {
        let harness = try RelayHarness("drain")
        defer { harness.fixture.remove() }
        let backend = try await TestBackend.start()
        let proxy = try await RunningProxy.start(
            certificates: harness.certificates, backends: [backend.port], logger: harness.logs.logger)
        let client = try await harness.connect(proxy)
        do {
            try await client.send("one\n")
            #expect(await client.waitFor("one\n"))
            #expect(proxy.server.stats.active == 1)

            let stopping = Task { await proxy.server.shutdown(grace: .seconds(120)) }
            let refusing = await eventually { !TCPProbe.canConnect(host: "127.0.0.1", port: proxy.port) }
            #expect(refusing)
            try await client.send("two\n")
            #expect(await client.waitFor("one\ntwo\n"))

            await client.close()
            // Once the last connection is gone, shutdown returns, long before the 120 s grace runs out (the bound
            // is deliberately loose: this checks "does not wait out the grace", not speed).
            let finished = await eventually(timeout: .seconds(30)) { proxy.server.stats.active == 0 }
            #expect(finished)
            let started = ContinuousClock.now
            await stopping.value
            #expect(ContinuousClock.now - started < .seconds(60))
        } catch {
            await client.close()
            await proxy.stop()
            await backend.stop()
            throw error
        }
        await backend.stop()
    }

    @Test("shutdown(grace:) closes connections still open when the grace period ends")
    func shutdownClosesAfterGrace() async throws {
        let harness = try RelayHarness("grace")
        defer { harness.fixture.remove() }
        let backend = try await TestBackend.start()
        let proxy = try await RunningProxy.start(
            certificates: harness.certificates, backends: [backend.port], logger: harness.logs.logger)
        let client = try await harness.connect(proxy)
        do {
            try await client.send("one\n")
            #expect(await client.waitFor("one\n"))
            await proxy.server.shutdown(grace: .milliseconds(200))
            #expect(await client.waitClosed())
        } catch {
            await client.close()
            await proxy.stop()
            await backend.stop()
            throw error
        }
        await client.close()
        await backend.stop()
    }
}
