import CertProxy
import CertkeeperTestSupport
import Foundation
import Testing

@Suite("Load balancing through the real proxy: failover, backup, prefer_local, shutdown_sessions, maxconn, HTTP checks")
struct LoadBalancingTests {
    @Test("a backend whose port closes mid-traffic: no client fails, the check marks it down, new connections go to the other")
    func failover() async throws {
        let logs = CapturedLogs()
        let a = try await TestBackend.start()
        let b = try await TestBackend.start()
        let pool = ProxyBackendPool(servers: [loopbackServer("a", port: a.port, check: quickTCPCheck), loopbackServer("b", port: b.port, check: quickTCPCheck)])
        try await withBalancingProxy(pool, logger: logs.logger) { proxy, port in
            try await stopping(a, b) {
                for index in 0..<4 {
                    let echoed = try await echoThrough(port: port, "before \(index)\n")
                    #expect(echoed)
                }
                #expect(proxy.server("a")?.totalConnections == 2)
                // A long-lived client keeps talking while a's port closes.
                let open = try await TestClient.connect(port: port, rootPEM: nil, serverName: nil)
                await a.stop()
                // Before and after the check notices: every new client is served (refused connects move on to b).
                for index in 0..<6 {
                    let echoed = try await echoThrough(port: port, "during \(index)\n")
                    #expect(echoed)
                }
                #expect(await eventually { proxy.server("a")?.state == .down }, "logs: \(logs.all.suffix(5))")
                let bBefore = proxy.server("b")?.totalConnections ?? 0
                for index in 0..<6 {
                    let echoed = try await echoThrough(port: port, "after \(index)\n")
                    #expect(echoed)
                }
                #expect(proxy.server("b")?.totalConnections == bBefore + 6)
                #expect(proxy.server("a")?.lastCheck?.passed == false)
                #expect(logs.all.contains { $0.contains("server marked down") && $0.contains("server=a") })
                await open.close()
            }
        }
    }

    @Test("prefer_local and backup: local normal, then remote normal, then backup; back to local when it returns")
    func backupAndPreferLocal() async throws {
        let logs = CapturedLogs()
        let remote = try await TestBackend.start()
        var local = try await TestBackend.start()
        let spare = try await TestBackend.start()
        let localPort = local.port
        let pool = ProxyBackendPool(
            servers: [
                loopbackServer("remote", port: remote.port, local: false, check: quickTCPCheck),
                loopbackServer("local", port: localPort, local: true, check: quickTCPCheck),
                loopbackServer("spare", port: spare.port, backup: true, check: quickTCPCheck),
            ],
            preferLocal: true)
        try await withBalancingProxy(pool, logger: logs.logger) { proxy, port in
            try await stopping(remote, spare) {
                for index in 0..<3 {
                    let echoed = try await echoThrough(port: port, "local \(index)\n")
                    #expect(echoed)
                }
                #expect(proxy.server("local")?.totalConnections == 3)
                #expect(proxy.server("remote")?.totalConnections == 0)

                await local.stop()
                #expect(await eventually { proxy.server("local")?.state == .down })
                for index in 0..<3 {
                    let echoed = try await echoThrough(port: port, "remote \(index)\n")
                    #expect(echoed)
                }
                #expect(proxy.server("remote")?.totalConnections == 3)
                #expect(proxy.server("spare")?.totalConnections == 0)

                await remote.stop()
                #expect(await eventually { proxy.server("remote")?.state == .down })
                for index in 0..<2 {
                    let echoed = try await echoThrough(port: port, "spare \(index)\n")
                    #expect(echoed)
                }
                #expect(proxy.server("spare")?.totalConnections == 2)

                local = try await TestBackend.start(port: localPort)
                #expect(await eventually { proxy.server("local")?.state == .up })
                let echoed = try await echoThrough(port: port, "local again\n")
                #expect(echoed)
                #expect(proxy.server("local")?.totalConnections == 4)
                await local.stop()
            }
        }
    }

    @Test("on_marked_down: shutdown_sessions closes the open connection of a server marked down")
    func shutdownSessions() async throws {
        let logs = CapturedLogs()
        let a = try await TestBackend.start()
        let b = try await TestBackend.start()
        let pool = ProxyBackendPool(
            servers: [loopbackServer("a", port: a.port, check: quickTCPCheck), loopbackServer("b", port: b.port, check: quickTCPCheck)],
            balance: .first, onMarkedDown: .shutdownSessions)
        try await withBalancingProxy(pool, logger: logs.logger) { proxy, port in
            try await stopping(a, b) {
                let client = try await TestClient.connect(port: port, rootPEM: nil, serverName: nil)
                try await client.send("hello\n")
                #expect(await client.waitFor("hello\n"))
                #expect(proxy.server("a")?.activeConnections == 1)
                // Only the listener closes: the relayed connection to a stays open until the proxy closes it.
                await a.stop()
                #expect(await client.waitClosed(timeout: .seconds(20)), "logs: \(logs.all.suffix(5))")
                #expect(logs.all.contains { $0.contains("server marked down") && $0.contains("sessions.closed=1") })
                let echoed = try await echoThrough(port: port, "next\n")
                #expect(echoed)
                #expect(proxy.server("b")?.totalConnections == 1)
                #expect(await eventually { proxy.server("a")?.activeConnections == 0 })
            }
        }
    }

    @Test("every server down by its check: a client is closed promptly (bounded wait), not left hanging")
    func allDown() async throws {
        let logs = CapturedLogs()
        let a = try await TestBackend.start()
        let pool = ProxyBackendPool(servers: [loopbackServer("a", port: a.port, check: quickTCPCheck)])
        try await withBalancingProxy(pool, logger: logs.logger) { proxy, port in
            await a.stop()
            #expect(await eventually { proxy.server("a")?.state == .down })
            let client = try await TestClient.connect(port: port, rootPEM: nil, serverName: nil)
            #expect(await client.waitClosed(timeout: .seconds(10)))
            #expect(proxy.snapshot().first?.noServerClosures == 1)
            #expect(proxy.server("a")?.connectFailures == 0, "a server marked down is not even tried")
        }
    }

    @Test("maxconn: the frontend closes connections beyond its limit; a full server is skipped")
    func maxConnections() async throws {
        let logs = CapturedLogs()
        let a = try await TestBackend.start()
        let b = try await TestBackend.start()
        let pool = ProxyBackendPool(
            servers: [loopbackServer("a", port: a.port, maxConnections: 1), loopbackServer("b", port: b.port)], balance: .first)
        try await withBalancingProxy(pool, maxConnections: 2, logger: logs.logger) { proxy, port in
            try await stopping(a, b) {
                let first = try await TestClient.connect(port: port, rootPEM: nil, serverName: nil)
                try await first.send("one\n")
                #expect(await first.waitFor("one\n"))
                let second = try await TestClient.connect(port: port, rootPEM: nil, serverName: nil)
                try await second.send("two\n")
                #expect(await second.waitFor("two\n"))
                #expect(proxy.server("a")?.totalConnections == 1)
                #expect(proxy.server("b")?.totalConnections == 1)
                let third = try await TestClient.connect(port: port, rootPEM: nil, serverName: nil)
                #expect(await third.waitClosed(timeout: .seconds(10)))
                #expect(proxy.snapshot().first?.refusedConnections == 1)
                await first.close()
                await second.close()
                #expect(await eventually { proxy.snapshot().first?.activeConnections == 0 })
                let echoed = try await echoThrough(port: port, "again\n")
                #expect(echoed)
            }
        }
    }

    @Test("an HTTP check on another port decides: 503 marks down, 200 marks up after rise")
    func httpCheckOnAnotherPort() async throws {
        let logs = CapturedLogs()
        let a = try await TestBackend.start()
        let b = try await TestBackend.start()
        let statusA = try await StatusServer.start(status: 200)
        let statusB = try await StatusServer.start(status: 503)
        func check(_ port: Int) -> ProxyHealthCheck {
            ProxyHealthCheck(kind: .http(method: "GET", path: "/", expectStatus: 200), port: port, interval: .milliseconds(100), timeout: .seconds(5), fall: 1, rise: 2)
        }
        let pool = ProxyBackendPool(
            servers: [loopbackServer("a", port: a.port, check: check(statusA.port)), loopbackServer("b", port: b.port, check: check(statusB.port))])
        try await withBalancingProxy(pool, logger: logs.logger) { proxy, port in
            try await stopping(a, b, statusA, statusB) {
                #expect(await eventually { proxy.server("b")?.state == .down })
                #expect(await eventually { proxy.server("b")?.lastCheck?.detail == "status 503, expected 200" })
                for index in 0..<3 {
                    let echoed = try await echoThrough(port: port, "x\(index)\n")
                    #expect(echoed)
                }
                #expect(proxy.server("a")?.totalConnections == 3)
                statusA.set(503)
                statusB.set(200)
                #expect(await eventually { proxy.server("a")?.state == .down && proxy.server("b")?.state == .up })
                for index in 0..<3 {
                    let echoed = try await echoThrough(port: port, "y\(index)\n")
                    #expect(echoed)
                }
                #expect(proxy.server("b")?.totalConnections == 3)
                #expect(logs.all.contains { $0.contains("server marked up") && $0.contains("server=b") })
            }
        }
    }
}


@Suite("Health checks across reconfiguration, and the TLS check")
struct HealthCheckLifecycleTests {
    @Test("reconfigure: an unchanged server keeps its state, a new server is checked, a removed one is no longer used")
    func reconfigureKeepsState() async throws {
        let logs = CapturedLogs()
        let a = try await TestBackend.start()
        let b = try await TestBackend.start()
        let deadPort = try PortAllocator.shared.allocate()
        let pool = ProxyBackendPool(servers: [loopbackServer("dead", port: deadPort, check: quickTCPCheck), loopbackServer("a", port: a.port, check: quickTCPCheck)])
        try await withBalancingProxy(pool, logger: logs.logger) { proxy, port in
            try await stopping(a, b) {
                #expect(await eventually { proxy.server("dead")?.state == .down })
                let downLines = logs.all.filter { $0.contains("server marked down") }.count
                var frontend = try #require(proxy.frontends.first)
                frontend.pool.servers.append(loopbackServer("b", port: b.port, check: quickTCPCheck))
                try await proxy.reconfigure(frontends: [frontend])
                // Still down (not reset to "up, unproven"), so no new "marked down" line and no connection tried.
                #expect(proxy.server("dead")?.state == .down)
                #expect(await eventually { proxy.server("b")?.lastCheck?.passed == true })
                for index in 0..<4 {
                    let echoed = try await echoThrough(port: port, "r\(index)\n")
                    #expect(echoed)
                }
                #expect(proxy.server("a")?.totalConnections == 2)
                #expect(proxy.server("b")?.totalConnections == 2)
                #expect(proxy.server("dead")?.connectFailures == 0)
                #expect(logs.all.filter { $0.contains("server marked down") }.count == downLines)

                frontend.pool.servers.removeFirst(2)
                try await proxy.reconfigure(frontends: [frontend])
                let echoed = try await echoThrough(port: port, "only b\n")
                #expect(echoed)
                #expect(proxy.snapshot().first?.servers.map(\.name) == ["b"])
            }
        }
    }

    @Test("reconfigure: a kept server takes its new settings (backup, weight) while keeping its counters")
    func reconfigureAppliesNewSettings() async throws {
        let logs = CapturedLogs()
        let a = try await TestBackend.start()
        let b = try await TestBackend.start()
        let pool = ProxyBackendPool(servers: [loopbackServer("a", port: a.port), loopbackServer("b", port: b.port)])
        try await withBalancingProxy(pool, logger: logs.logger) { proxy, port in
            try await stopping(a, b) {
                for index in 0..<2 { #expect(try await echoThrough(port: port, "before \(index)\n")) }
                #expect(proxy.server("a")?.totalConnections == 1 && proxy.server("b")?.totalConnections == 1)
                // b becomes a backup: with a up, every new connection goes to a, and b keeps its count.
                var frontend = try #require(proxy.frontends.first)
                frontend.pool.servers[1] = loopbackServer("b", port: b.port, backup: true)
                try await proxy.reconfigure(frontends: [frontend])
                #expect(proxy.server("b")?.backup == true)
                for index in 0..<4 { #expect(try await echoThrough(port: port, "after \(index)\n")) }
                #expect(proxy.server("a")?.totalConnections == 5)
                #expect(proxy.server("b")?.totalConnections == 1)
            }
        }
    }

    @Test("type: tls passes against a TLS server and fails against a plain one")
    func tlsCheck() async throws {
        let harness = try RelayHarness("tlscheck")
        defer { harness.fixture.remove() }
        let plain = try await TestBackend.start()
        let tlsServer = try await RunningProxy.start(certificates: harness.certificates, backends: [plain.port], logger: harness.logs.logger)
        let tls = ProxyHealthCheck(kind: .tls, interval: .milliseconds(100), timeout: .seconds(5), fall: 1, rise: 1)
        let pool = ProxyBackendPool(servers: [loopbackServer("tls", port: tlsServer.port, check: tls), loopbackServer("plain", port: plain.port, check: tls)])
        try await stopping(tlsServer, plain) {
            try await withBalancingProxy(pool, logger: harness.logs.logger) { proxy, _ in
                #expect(await eventually { proxy.server("plain")?.state == .down })
                #expect(await eventually { proxy.server("tls")?.lastCheck?.detail == "handshake completed" })
                #expect(proxy.server("tls")?.state == .up)
            }
        }
    }
}
