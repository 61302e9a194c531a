@testable import CertProxy
import CertkeeperTestSupport
import Foundation
import NIOCore
import Testing

@Suite("Handshake and idle time limits")
struct TimeoutTests {
    @Test("a client that never completes the TLS handshake is closed and counted")
    func handshakeTimeout() async throws {
        let harness = try RelayHarness("hs-timeout")
        defer { harness.fixture.remove() }
        let backend = try await TestBackend.start()
        let proxy = try await RunningProxy.start(
            certificates: harness.certificates, backends: [backend.port],
            timeouts: ProxyTimeouts(handshake: .milliseconds(300)), logger: harness.logs.logger)
        try await stopping(proxy, backend) {
            // Plain TCP against a TLS frontend: no ClientHello ever arrives.
            let silent = try await TestClient.connect(port: proxy.port, rootPEM: nil, serverName: nil)
            #expect(await silent.waitClosed(timeout: .seconds(30)))
            #expect(proxy.server.stats.handshakeFailures == 1)
            #expect(proxy.server.stats.relayed == 0)
            await silent.close()
        }
    }

    @Test("a failed handshake is logged once (not again as a connection error when BoringSSL reports the close)")
    func failedHandshakeLoggedOnce() async throws {
        let harness = try RelayHarness("hs-garbage")
        defer { harness.fixture.remove() }
        let backend = try await TestBackend.start()
        let proxy = try await RunningProxy.start(certificates: harness.certificates, backends: [backend.port], logger: harness.logs.logger)
        try await stopping(proxy, backend) {
            // Plain text against a TLS frontend: not a ClientHello.
            let client = try await TestClient.connect(port: proxy.port, rootPEM: nil, serverName: nil)
            try await client.send("GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            #expect(await client.waitClosed(timeout: .seconds(30)))
            #expect(await eventually { proxy.server.stats.handshakeFailures == 1 })
            await client.close()
        }
        let lines = harness.logs.all.filter { $0.contains("TLS handshake failed") || $0.contains("client connection error") }
        #expect(lines.count == 1, "\(lines)")
    }

    @Test("a relayed connection with no traffic either way is closed after the idle limit and counted")
    func idleTimeout() async throws {
        let harness = try RelayHarness("idle-timeout")
        defer { harness.fixture.remove() }
        let backend = try await TestBackend.start()
        let proxy = try await RunningProxy.start(
            certificates: harness.certificates, backends: [backend.port],
            timeouts: ProxyTimeouts(idle: .milliseconds(400)), logger: harness.logs.logger)
        try await stopping(proxy, backend) {
            // Nothing is sent: on a loaded machine even the first message could come after the 400 ms limit.
            let client = try await harness.connect(proxy)
            #expect(await client.waitClosed(timeout: .seconds(30)))
            #expect(await eventually { proxy.server.stats.idleTimeouts == 1 && proxy.server.stats.active == 0 })
            #expect(proxy.server.stats.relayed == 1, "the connection should have reached the relay before going idle")
            await client.close()
        }
    }
}

@Suite("Drain counts")
struct DrainCountTests {
    @Test("a wait returns when the last one ends, at once when there is none, and at its limit otherwise")
    func waitsForZero() async throws {
        let count = DrainCount()
        await count.waitForZero(upTo: .seconds(30))  // none running: returns at once
        count.increment()
        count.increment()
        let clock = ContinuousClock()
        let start = clock.now
        async let waited: Void = count.waitForZero(upTo: .seconds(120))
        count.decrement()
        #expect(count.value == 1)
        count.decrement()
        await waited
        // Woken by the last decrement (microseconds), not by the 120 s limit: the margin is wide on purpose.
        #expect(clock.now - start < .seconds(60))
        #expect(count.value == 0)
        count.increment()
        let elapsed = await clock.measure { await count.waitForZero(upTo: .milliseconds(100)) }
        #expect(elapsed >= .milliseconds(100), "returned before its limit with one still running")
    }
}
