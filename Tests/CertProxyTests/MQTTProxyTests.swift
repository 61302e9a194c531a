import CertProxy
import CertkeeperTestSupport
import Foundation
import NIOConcurrencyHelpers
import NIOCore
import Testing

#if canImport(Glibc)
import Glibc
#endif

extension MosquittoBroker: Stoppable {}

@Suite("MQTT through the proxy (mosquitto)")
struct MQTTProxyTests {
    /// A TLS frontend for `localhost` in front of `brokers`, with the given MQTT options.
    static func startProxy(
        _ harness: MQTTHarness, brokers: [MosquittoBroker], mqtt: MQTTSettings, check: ProxyHealthCheck? = nil,
        tls: ProxyTLSSettings? = ProxyTLSSettings()
    ) async throws -> (server: ProxyServer, port: Int) {
        let port = try PortAllocator.shared.allocate()
        let servers = brokers.enumerated().map { index, broker in
            ProxyBackendServer(
                name: "broker\(index + 1)", address: ProxyBackend(host: "127.0.0.1", port: broker.port), check: check)
        }
        var frontend = ProxyFrontend(name: "mqtts", host: "127.0.0.1", port: port, tls: tls, pool: ProxyBackendPool(servers: servers))
        frontend.mqtt = mqtt
        let server = try await ProxyServer.start(
            frontends: [frontend], certificates: harness.certificates, threads: 1, logger: harness.logs.logger)
        return (server, port)
    }

    @Test("mosquitto_sub and mosquitto_pub (3.1.1 and 5.0) over TLS reach the broker; an HTTP client is rejected")
    func relayAndReject() async throws {
        let harness = try MQTTHarness("mqtt-relay")
        defer { harness.fixture.remove() }
        let broker = try await MosquittoBroker.start("broker", in: harness.fixture.directory)
        let (proxy, port) = try await Self.startProxy(harness, brokers: [broker], mqtt: MQTTSettings(requireConnect: true))
        try await stopping(proxy, broker) {
            let subscriber = try ManagedProcess.start(
                name: "mosquitto_sub", executable: MQTTClients.subscriber,
                arguments: MQTTClients.tlsArguments(port: port, caFile: harness.fixture.rootPath) + [
                    "-V", "mqttv311", "-i", "sub-1", "-t", "test/topic", "-C", "1", "-W", "60",
                ],
                logDirectory: harness.fixture.directory.path)
            do {
                try await Self.publishAndReject(harness, broker: broker, subscriber: subscriber, port: port)
            } catch {
                await subscriber.stop()
                throw error
            }
            await subscriber.stop()
        }
    }

    static func publishAndReject(
        _ harness: MQTTHarness, broker: MosquittoBroker, subscriber: ManagedProcess, port: Int
    ) async throws {
            #expect(await eventually(timeout: .seconds(30)) { broker.log.contains(" as sub-1 (") }, "\(broker.log)")

            let published = try await MQTTClients.publish(
                port: port, caFile: harness.fixture.rootPath, version: "mqttv5", clientID: "pub-1",
                message: "hello-through-proxy")
            #expect(published.exitCode == 0, "\(published.stderr)")
            #expect(await subscriber.waitForExit(timeout: 30) == 0, "\(subscriber.logTail())")
            #expect(subscriber.logTail().contains("hello-through-proxy"))

            let connectionsBefore = broker.log.components(separatedBy: "New connection from").count
            let http = try await TestClient.connect(port: port, rootPEM: harness.fixture.rootPEM, serverName: "localhost")
            try await http.send("GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")
            #expect(await http.waitClosed(timeout: .seconds(30)))
            await http.close()
            #expect(harness.logs.all.contains { $0.contains("not an MQTT CONNECT") && $0.contains("first byte 0x47") })
            // The rejected client was never relayed: the broker saw no new connection.
            #expect(broker.log.components(separatedBy: "New connection from").count == connectionsBefore, "\(broker.log)")
    }

    @Test("plain TCP frontend: mosquitto_pub passes; a silent client is closed at the CONNECT deadline, a bad one at once")
    func plainFrontend() async throws {
        let harness = try MQTTHarness("mqtt-plain")
        defer { harness.fixture.remove() }
        let broker = try await MosquittoBroker.start("broker", in: harness.fixture.directory)
        let (proxy, port) = try await Self.startProxy(
            harness, brokers: [broker], mqtt: MQTTSettings(requireConnect: true, connectDeadline: .milliseconds(300)),
            tls: nil)
        try await stopping(proxy, broker) {
            let published = try await OneShotProcess.run(
                executable: MQTTClients.publisher,
                arguments: ["-h", "127.0.0.1", "-p", "\(port)", "-V", "mqttv311", "-i", "plain-1", "-t", "t", "-m", "m"],
                timeout: 30)
            #expect(published.exitCode == 0, "\(published.stderr)")
            #expect(broker.connections(of: "plain-1") == 1)

            let connectionsBefore = broker.log.components(separatedBy: "New connection from").count
            let silent = try await TestClient.connect(port: port, rootPEM: nil, serverName: nil)
            #expect(await silent.waitClosed(timeout: .seconds(30)))
            await silent.close()
            let tlsHello = try await TestClient.connect(port: port, rootPEM: harness.fixture.rootPEM, serverName: "localhost")
            #expect(await tlsHello.waitClosed(timeout: .seconds(30)))
            await tlsHello.close()
            #expect(broker.log.components(separatedBy: "New connection from").count == connectionsBefore)
            let lines = harness.logs.all
            #expect(lines.contains { $0.contains("no complete CONNECT within") }, "\(lines)")
            #expect(lines.contains { $0.contains("first byte 0x16") }, "\(lines)")
        }
    }

    @Test("10,000 refused clients log a handful of lines: the first few per reason and interval, the rest at debug level")
    func refusalsAreThrottled() async throws {
        let harness = try MQTTHarness("mqtt-flood")
        defer { harness.fixture.remove() }
        let port = try PortAllocator.shared.allocate()
        var frontend = ProxyFrontend(
            name: "mqtt", host: "127.0.0.1", port: port, tls: nil,
            pool: ProxyBackendPool(servers: [ProxyBackendServer(name: "nobody", address: ProxyBackend(host: "127.0.0.1", port: 9))]))
        frontend.mqtt = MQTTSettings(requireConnect: true)
        let proxy = try await ProxyServer.start(frontends: [frontend], certificates: harness.certificates, threads: 1, logger: harness.logs.logger)
        let started = ContinuousClock.now
        let refused = await withCheckedContinuation { continuation in
            DispatchQueue.global().async { continuation.resume(returning: FloodClient.sendHTTP(port: port, connections: 10_000)) }
        }
        let elapsed = ContinuousClock.now - started
        await proxy.shutdown(grace: .seconds(1))
        #expect(refused == 10_000, "connections refused by the gate: \(refused)")
        let lines = harness.logs.all
        let full = lines.filter { $0.hasPrefix("info not an MQTT CONNECT") }
        let quiet = lines.filter { $0.hasPrefix("debug not an MQTT CONNECT") }
        // Five per reason (one reason here) for each 10 s window the flood touched.
        let windows = Int(elapsed / .seconds(10)) + 1
        #expect(!full.isEmpty && full.count <= 5 * windows, "\(full.count) info lines in \(elapsed): \(full.prefix(3))")
        #expect(full.count + quiet.count == 10_000, "every refusal is still logged at debug level: \(full.count) + \(quiet.count)")
    }

    @Test("with stick: mqtt_client_id each client id reconnects to the same broker")
    func stickiness() async throws {
        let harness = try MQTTHarness("mqtt-stick")
        defer { harness.fixture.remove() }
        let first = try await MosquittoBroker.start("broker1", in: harness.fixture.directory)
        let second = try await MosquittoBroker.start("broker2", in: harness.fixture.directory)
        let (proxy, port) = try await Self.startProxy(
            harness, brokers: [first, second], mqtt: MQTTSettings(requireConnect: true, stickByClientID: true))
        try await stopping(proxy, first, second) {
            let clients = ["stick-a", "stick-b", "stick-c"]
            let versions = ["mqttv31", "mqttv311", "mqttv5"]
            // Round-robin alone would move every client on each round (3 clients over 2 brokers).
            for round in 0..<3 {
                for client in clients {
                    let result = try await MQTTClients.publish(
                        port: port, caFile: harness.fixture.rootPath, version: versions[round], clientID: client)
                    #expect(result.exitCode == 0, "\(client) round \(round): \(result.stderr)")
                }
            }
            for client in clients {
                let counts = [first.connections(of: client), second.connections(of: client)].sorted()
                #expect(counts == [0, 3], "\(client): broker1 \(first.connections(of: client)), broker2 \(second.connections(of: client))")
            }
            #expect(clients.contains { first.connections(of: $0) > 0 } && clients.contains { second.connections(of: $0) > 0 })
        }
    }

    @Test("a stuck client whose broker is marked down goes to the other broker, and stays there when it returns")
    func stickyFailover() async throws {
        let harness = try MQTTHarness("mqtt-failover")
        defer { harness.fixture.remove() }
        let brokers = [
            try await MosquittoBroker.start("broker1", in: harness.fixture.directory),
            try await MosquittoBroker.start("broker2", in: harness.fixture.directory),
        ]
        let check = ProxyHealthCheck(kind: .tcp, interval: .milliseconds(200), fall: 1, rise: 1)
        let (proxy, port) = try await Self.startProxy(
            harness, brokers: brokers, mqtt: MQTTSettings(requireConnect: true, stickByClientID: true), check: check)
        let returned = NIOLockedValueBox<MosquittoBroker?>(nil)
        do {
            try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask { await proxy.runHealthChecks() }
                defer { group.cancelAll() }
                try await Self.failover(harness, proxy: proxy, port: port, brokers: brokers, returned: returned)
            }
        } catch {
            await Self.stopAll(proxy, brokers, returned.withLockedValue { $0 })
            throw error
        }
        await Self.stopAll(proxy, brokers, returned.withLockedValue { $0 })
    }

    static func stopAll(_ proxy: ProxyServer, _ brokers: [MosquittoBroker], _ returned: MosquittoBroker?) async {
        await proxy.stop()
        await returned?.stop()
        for broker in brokers { await broker.stop() }
    }

    static func failover(
        _ harness: MQTTHarness, proxy: ProxyServer, port: Int, brokers: [MosquittoBroker],
        returned: NIOLockedValueBox<MosquittoBroker?>
    ) async throws {
        let client = "failover-1"
        let first = try await MQTTClients.publish(port: port, caFile: harness.fixture.rootPath, clientID: client)
        #expect(first.exitCode == 0, "\(first.stderr)")
        let home = try #require(brokers.firstIndex { $0.connections(of: client) == 1 })
        let other = 1 - home
        let homeName = "broker\(home + 1)"
        @Sendable func server() -> ProxyServerSnapshot? {
            proxy.snapshot().first?.servers.first { $0.name == homeName }
        }

        await brokers[home].stop()
        #expect(await eventually(timeout: .seconds(30)) { server()?.state == .down })
        let moved = try await MQTTClients.publish(port: port, caFile: harness.fixture.rootPath, clientID: client)
        #expect(moved.exitCode == 0, "\(moved.stderr)")
        #expect(brokers[other].connections(of: client) == 1)
        // Marked down by its check: the proxy did not even try it.
        #expect(server()?.connectFailures == 0)

        let restarted = try await MosquittoBroker.start(homeName, in: harness.fixture.directory, port: brokers[home].port)
        returned.withLockedValue { $0 = restarted }
        #expect(await eventually(timeout: .seconds(30)) { server()?.state == .up })
        let stayed = try await MQTTClients.publish(port: port, caFile: harness.fixture.rootPath, clientID: client)
        #expect(stayed.exitCode == 0, "\(stayed.stderr)")
        #expect(brokers[other].connections(of: client) == 2)
        #expect(restarted.connections(of: client) == 1)
    }
}

/// A store with a `localhost` certificate loaded into a ``CertificateSet``, and captured logs.
struct MQTTHarness {
    let logs = CapturedLogs()
    let fixture: StoreFixture
    let certificates = CertificateSet()

    init(_ name: String) throws {
        fixture = try StoreFixture(name, logger: logs.logger)
        try fixture.install("mqtt", names: ["localhost"])
        CertificateReloader(storeRoot: fixture.root, certificates: certificates, logger: logs.logger).loadAll()
    }
}

/// Many short-lived clients from one thread: each connects, sends an HTTP request line and waits to be closed.
enum FloodClient {
    /// - Returns: How many were closed by the server (a read returned end-of-file) after their request.
    static func sendHTTP(port: Int, connections: Int) -> Int {
        var closedByServer = 0
        let request = Array("GET / HTTP/1.1\r\nHost: x\r\n\r\n".utf8)
        for _ in 0..<connections {
            guard let fd = BlockingTCPClient.connect(port: port) else { continue }
            defer { close(fd) }
            guard request.withUnsafeBytes({ write(fd, $0.baseAddress, $0.count) }) == request.count else { continue }
            var timeout = timeval(tv_sec: 10, tv_usec: 0)
            _ = setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
            var buffer = [UInt8](repeating: 0, count: 256)
            let count = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if count == 0 || (count < 0 && errno == ECONNRESET) { closedByServer += 1 }
        }
        return closedByServer
    }
}
