import CertStore
import CertkeeperTestSupport
import Foundation
import Logging
import Testing

/// The MQTT keys of a `proxy.frontends[]` entry, through `certkeeper daemon` and its YAML file, with real mosquitto
/// brokers and clients: `require_mqtt_connect` turns away a client that is not MQTT, `stick: mqtt_client_id`
/// sends one client id to one broker every time.
@Suite("certkeeper daemon: MQTT frontends from the configuration file", .serialized)
struct DaemonMQTTTests {
    @Test("mosquitto_pub through the daemon's TLS frontend; the same client id sticks to one broker; an HTTPS client is refused before any broker")
    func mqttFrontendFromConfiguration() async throws {
        let directory = try TemporaryDirectory(name: "daemon-mqtt")
        defer { directory.remove() }
        let state = directory.appending("state")
        let root = try TestCA.make(commonName: "daemon mqtt test root")
        let rootPath = try directory.write(root.certificatePEM, to: "root.pem")
        let leaf = try root.issueIntermediate(commonName: "daemon mqtt test intermediate").issueLeaf(dnsNames: ["localhost"])
        let store = CertificateStore(root: state, logger: Logger(label: "daemon-mqtt-test"))
        let bundle = CertificateBundle(certificatePEM: leaf.certificatePEM, chainPEM: leaf.chainPEM, privateKeyPEM: leaf.privateKeyPEM)
        try store.install(try BundleVerifier().verify(bundle, expectedDomains: ["localhost"], now: Date()), name: "mqtt", issuedBy: "test", now: Date())

        let brokers = [
            try await MosquittoBroker.start("broker1", in: directory),
            try await MosquittoBroker.start("broker2", in: directory),
        ]
        let port = try PortAllocator.shared.allocate()
        let configPath = try directory.write(
            """
            state_dir: \(state)
            certificates:
              # issuer: internal allows the single-label name; the installed 90-day test certificate is not due.
              - {name: mqtt, issuer: internal, domains: [localhost]}
            proxy:
              threads: 1
              grace: 1s
              default_certificate: mqtt
              frontends:
                - name: mqtts
                  listen: "127.0.0.1:\(port)"
                  require_mqtt_connect: true
                  mqtt_connect_timeout: 5s
                  stick: mqtt_client_id
                  stick_expire: 10m
                  backends: ["127.0.0.1:\(brokers[0].port)", "127.0.0.1:\(brokers[1].port)"]

            """, to: "certkeeper.yaml")
        let check = try await CLI.run(["check-config", "--config", configPath])
        #expect(check.exitCode == 0, "\(check.stdout)\(check.stderr)")

        let daemon = try CLI.start(["daemon", "--config", configPath], logDirectory: directory.path)
        do {
            try await daemon.waitForTCPPort(port: port)
            // Round-robin alone would alternate: with stickiness every connection of one id lands on one broker.
            for round in 1...4 {
                let published = try await MQTTClients.publish(port: port, caFile: rootPath, clientID: "sensor-7", message: "reading \(round)")
                #expect(published.exitCode == 0, "mosquitto_pub round \(round): \(published.stderr)\n\(daemon.logTail())")
            }
            let perBroker = brokers.map { $0.connections(of: "sensor-7") }
            #expect(perBroker.sorted() == [0, 4], "sensor-7 connected \(perBroker) times to the two brokers")

            // An HTTPS client completes the TLS handshake, then sends a request that is no MQTT CONNECT: closed
            // without an answer, and neither broker sees a connection.
            let before = brokers.map { $0.log.components(separatedBy: "New connection from").count }
            let https = try tool("/usr/bin/curl", ["-sS", "--max-time", "20", "--cacert", rootPath, "https://localhost:\(port)/"])
            #expect(https.status != 0, "curl got an answer: \(https.output)")
            let after = brokers.map { $0.log.components(separatedBy: "New connection from").count }
            #expect(before == after, "a broker saw the HTTPS client: \(before) → \(after)")

            daemon.send(signal: SIGTERM)
            #expect(await daemon.waitForExit(timeout: 30) == 0, "\(daemon.logTail())")
        } catch {
            await daemon.stop()
            for broker in brokers { await broker.stop() }
            throw error
        }
        await daemon.stop()
        for broker in brokers { await broker.stop() }
    }
}
