import CertProxy
import CertStore
import CertkeeperTestSupport
import Foundation
import NIOCore
import Testing

/// A frontend on 127.0.0.1 relaying to local backends.
private func frontend(
    _ name: String, port: Int, backends: [Int], tls: ProxyTLSSettings? = ProxyTLSSettings()
) -> ProxyFrontend {
    ProxyFrontend(
        name: name, host: "127.0.0.1", port: port, tls: tls,
        backends: backends.map { ProxyBackend(host: "127.0.0.1", port: $0) })
}

/// Echo backend `echo` answers `x\n` with `x\n`; HTTP backend `http` answers anything with "hello from backend".
private struct Backends: Stoppable {
    let echo: TestBackend
    let http: TestBackend

    static func start() async throws -> Backends {
        Backends(echo: try await TestBackend.start(.echo), http: try await TestBackend.start(.http))
    }

    func stop() async {
        await echo.stop()
        await http.stop()
    }
}

@Suite("Reconfiguring a running proxy without dropping connections")
struct ReconfigureTests {
    @Test("same address: an open TLS connection keeps relaying; new connections use the new backend and ALPN")
    func switchSettingsInPlace() async throws {
        let harness = try RelayHarness("reconf-same")
        defer { harness.fixture.remove() }
        let backends = try await Backends.start()
        let port = try PortAllocator.shared.allocate()
        let server = try await ProxyServer.start(
            frontends: [frontend("web", port: port, backends: [backends.echo.port])], certificates: harness.certificates,
            threads: 1, logger: harness.logs.logger)
        try await stopping(server, backends) {
            let open = try await TestClient.connect(port: port, rootPEM: harness.fixture.rootPEM, serverName: "web.example.org")
            try await open.send("before\n")
            #expect(await open.waitFor("before\n"))

            try await server.reconfigure(frontends: [
                frontend("web", port: port, backends: [backends.http.port], tls: ProxyTLSSettings(applicationProtocols: ["h2", "http/1.1"]))
            ])
            #expect(server.boundPorts == ["web": port])

            try await open.send("after\n")
            #expect(await open.waitFor("before\nafter\n"), "received: \(open.text)")
            #expect(open.isOpen)

            let fresh = try await TestClient.connect(port: port, rootPEM: harness.fixture.rootPEM, serverName: "web.example.org")
            try await fresh.send("GET / HTTP/1.1\r\n\r\n")
            #expect(await fresh.waitFor("hello from backend"), "received: \(fresh.text)")
            await fresh.close()
            let alpn = try await sClient(port: port, serverName: "web.example.org", extra: ["-alpn", "h2"])
            #expect(alpn.output.contains("ALPN protocol: h2"), "\(alpn.output)")

            // Plain TCP on the same socket from now on.
            try await server.reconfigure(frontends: [frontend("web", port: port, backends: [backends.echo.port], tls: nil)])
            let plain = try await TestClient.connect(port: port, rootPEM: nil, serverName: nil)
            try await plain.send("plain\n")
            #expect(await plain.waitFor("plain\n"))
            await plain.close()

            try await open.send("still\n")
            #expect(await open.waitFor("before\nafter\nstill\n"), "received: \(open.text)")
            await open.close()
        }
    }

    @Test("a removed frontend refuses new connections while its open one continues; an added and a moved one accept")
    func addRemoveMove() async throws {
        let harness = try RelayHarness("reconf-add")
        defer { harness.fixture.remove() }
        let backends = try await Backends.start()
        let (webPort, mqttPort, addedPort, movedPort) = try (
            PortAllocator.shared.allocate(), PortAllocator.shared.allocate(), PortAllocator.shared.allocate(),
            PortAllocator.shared.allocate()
        )
        let server = try await ProxyServer.start(
            frontends: [
                frontend("web", port: webPort, backends: [backends.echo.port]),
                frontend("mqtt", port: mqttPort, backends: [backends.echo.port]),
            ],
            certificates: harness.certificates, threads: 1, logger: harness.logs.logger)
        try await stopping(server, backends) {
            let onRemoved = try await TestClient.connect(port: webPort, rootPEM: harness.fixture.rootPEM, serverName: "web.example.org")
            try await onRemoved.send("one\n")
            #expect(await onRemoved.waitFor("one\n"))
            let onMoved = try await TestClient.connect(port: mqttPort, rootPEM: harness.fixture.rootPEM, serverName: "web.example.org")
            try await onMoved.send("m1\n")
            #expect(await onMoved.waitFor("m1\n"))

            try await server.reconfigure(frontends: [
                frontend("mqtt", port: movedPort, backends: [backends.echo.port]),
                frontend("added", port: addedPort, backends: [backends.echo.port], tls: nil),
            ])
            #expect(server.boundPorts == ["mqtt": movedPort, "added": addedPort])
            #expect(server.frontends.map(\.name) == ["mqtt", "added"])
            // Bounded waits, not immediate checks: NIO's sockets are not close-on-exec, so a child process that
            // another test spawns at this moment holds a copy of the listening socket until it exits.
            #expect(await eventually(timeout: .seconds(30)) { !TCPProbe.canConnect(host: "127.0.0.1", port: webPort) })
            #expect(await eventually(timeout: .seconds(30)) { !TCPProbe.canConnect(host: "127.0.0.1", port: mqttPort) })

            try await onRemoved.send("two\n")
            #expect(await onRemoved.waitFor("one\ntwo\n"), "received: \(onRemoved.text)")
            try await onMoved.send("m2\n")
            #expect(await onMoved.waitFor("m1\nm2\n"), "received: \(onMoved.text)")

            let added = try await TestClient.connect(port: addedPort, rootPEM: nil, serverName: nil)
            try await added.send("added\n")
            #expect(await added.waitFor("added\n"))
            await added.close()
            let moved = try await TestClient.connect(port: movedPort, rootPEM: harness.fixture.rootPEM, serverName: "web.example.org")
            try await moved.send("moved\n")
            #expect(await moved.waitFor("moved\n"))
            await moved.close()
            await onRemoved.close()
            await onMoved.close()
            #expect(harness.logs.all.contains { $0.contains("proxy frontend closed") && $0.contains("frontend=web") })
        }
    }

    @Test("a frontend that cannot bind leaves the old configuration serving and throws bindFailed")
    func bindFailureKeepsOldConfiguration() async throws {
        let harness = try RelayHarness("reconf-fail")
        defer { harness.fixture.remove() }
        let backends = try await Backends.start()
        let (port, addedPort) = try (PortAllocator.shared.allocate(), PortAllocator.shared.allocate())
        let server = try await ProxyServer.start(
            frontends: [frontend("web", port: port, backends: [backends.echo.port])], certificates: harness.certificates,
            threads: 1, logger: harness.logs.logger)
        do {
            let refused: ProxyError?
            do {
                // `added` binds, then `taken` (the echo backend's port) fails: nothing of this attempt stays.
                try await server.reconfigure(frontends: [
                    frontend("web", port: port, backends: [backends.http.port]),
                    frontend("added", port: addedPort, backends: [backends.echo.port]),
                    frontend("taken", port: backends.echo.port, backends: [backends.echo.port]),
                ])
                refused = nil
            } catch {
                refused = error
            }
            guard case .bindFailed(let name, _, _) = refused else {
                Issue.record("expected bindFailed, got \(String(describing: refused))")
                throw CancellationError()
            }
            #expect(name == "taken")
            #expect(server.boundPorts == ["web": port])
            #expect(await eventually(timeout: .seconds(30)) { !TCPProbe.canConnect(host: "127.0.0.1", port: addedPort) })

            let client = try await TestClient.connect(port: port, rootPEM: harness.fixture.rootPEM, serverName: "web.example.org")
            try await client.send("echoed\n")
            #expect(await client.waitFor("echoed\n"), "the old backend should still serve; received: \(client.text)")
            await client.close()

            // The failed attempt left nothing half-done: the next reconfiguration works.
            try await server.reconfigure(frontends: [frontend("web", port: port, backends: [backends.http.port])])
            let next = try await TestClient.connect(port: port, rootPEM: harness.fixture.rootPEM, serverName: "web.example.org")
            try await next.send("GET / HTTP/1.1\r\n\r\n")
            #expect(await next.waitFor("hello from backend"))
            await next.close()
        } catch {
            await server.shutdown(grace: .zero)
            await backends.stop()
            throw error
        }
        await server.shutdown(grace: .zero)
        #expect(server.boundPorts.isEmpty)
        await #expect(throws: ProxyError.notRunning) {
            try await server.reconfigure(frontends: [frontend("web", port: port, backends: [backends.echo.port])])
        }
        await backends.stop()
    }

    @Test("ProxyService forwards reconfigure to the running server and reports its ports; before start it throws notRunning; it describes itself by its frontends")
    func serviceReconfigure() async throws {
        let harness = try RelayHarness("reconf-service")
        defer { harness.fixture.remove() }
        let backends = try await Backends.start()
        let (port, addedPort) = try (PortAllocator.shared.allocate(), PortAllocator.shared.allocate())
        let bundle = try harness.fixture.directory.write("", to: "unused.pem")
        let reloader = CertificateReloader(
            sources: [.file(name: "unused", path: bundle)], certificates: harness.certificates, logger: harness.logs.logger)
        let service = ProxyService(
            frontends: [frontend("web", port: port, backends: [backends.echo.port])], certificates: harness.certificates,
            reloader: reloader, threads: 1, grace: .zero, logger: harness.logs.logger)
        // What ServiceLifecycle logs for it ("\(service)"): its name and frontends, not a reflected dump of the value.
        #expect("\(service)" == "ProxyService(frontends: web)")
        await #expect(throws: ProxyError.notRunning) {
            try await service.reconfigure(frontends: [])
        }
        let running = Task { try await service.run() }
        do {
            #expect(await eventually { service.boundPorts == ["web": port] })
            try await service.reconfigure(frontends: [
                frontend("web", port: port, backends: [backends.echo.port]),
                frontend("added", port: addedPort, backends: [backends.echo.port], tls: nil),
            ])
            #expect(service.boundPorts == ["web": port, "added": addedPort])
            let client = try await TestClient.connect(port: addedPort, rootPEM: nil, serverName: nil)
            try await client.send("via service\n")
            #expect(await client.waitFor("via service\n"))
            await client.close()
        } catch {
            running.cancel()
            _ = await running.result
            await backends.stop()
            throw error
        }
        running.cancel()
        _ = await running.result
        #expect(service.boundPorts.isEmpty)
        await backends.stop()
    }
}
