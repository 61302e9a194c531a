import Testing

@testable import CertkeeperConfig

@Suite("proxy.frontends[] MQTT keys: require_mqtt_connect and stick: mqtt_client_id")
struct MQTTFrontendConfigTests {
    @Test("all keys read; defaults when absent; stick alone is allowed")
    func parses() throws {
        let yaml = minimalYAML + """
            proxy:
              frontends:
                - name: mqtts
                  listen: "0.0.0.0:8883"
                  require_mqtt_connect: true
                  mqtt_connect_timeout: 3s
                  mqtt_max_connect_size: 4096
                  stick: mqtt_client_id
                  stick_expire: 10m
                  stick_table_size: 5000
                  backends: ["10.0.0.1:1883", "10.0.0.2:1883"]
                - {name: plain, listen: "0.0.0.0:1883", mode: tcp, stick: mqtt_client_id, backends: ["10.0.0.1:1883"]}
                - {name: web, listen: "0.0.0.0:443", backends: ["127.0.0.1:8080"]}

            """
        let frontends = try #require(try parsed(yaml).proxy).frontends
        let mqtt = frontends[0].mqtt
        #expect(mqtt.requireConnect && mqtt.stickByClientID)
        #expect(mqtt.connectTimeout == 3 && mqtt.maxConnectSize == 4096)
        #expect(mqtt.stickExpire == 600 && mqtt.stickTableSize == 5000)
        #expect(frontends[1].mqtt.stickByClientID && !frontends[1].mqtt.requireConnect)
        #expect(frontends[2].mqtt == MQTTFrontendSettings())
        #expect(!frontends[2].mqtt.requireConnect && !frontends[2].mqtt.stickByClientID)
    }

    @Test("unknown stick keys, bad values, limits without their switch and MQTT keys on mode: http are reported with their key paths")
    func refusals() {
        let yaml = minimalYAML + """
            proxy:
              frontends:
                - {name: a, listen: "0.0.0.0:8883", stick: src_ip, backends: ["127.0.0.1:1883"]}
                - {name: b, listen: "0.0.0.0:8884", require_mqtt_connect: maybe, backends: ["127.0.0.1:1883"]}
                - {name: c, listen: "0.0.0.0:8885", mqtt_connect_timeout: 5s, stick_expire: 1m, backends: ["127.0.0.1:1883"]}
                - {name: d, listen: "0.0.0.0:8886", require_mqtt_connect: true, mqtt_max_connect_size: 10, stick_table_size: 10, backends: ["127.0.0.1:1883"]}
                - {name: e, listen: "0.0.0.0:80", mode: http, require_mqtt_connect: true}

            """
        let paths = Set(issuePaths(in: yaml))
        #expect(paths == [
            "proxy.frontends[0].stick", "proxy.frontends[1].require_mqtt_connect",
            "proxy.frontends[2].mqtt_connect_timeout", "proxy.frontends[2].stick_expire",
            "proxy.frontends[3].mqtt_max_connect_size", "proxy.frontends[3].stick_table_size",
            "proxy.frontends[4].require_mqtt_connect",
        ])
    }
}
