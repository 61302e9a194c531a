import Testing

@testable import CertProxy

@Suite("MQTT sticky clients: what is remembered")
struct MQTTStickyClientsTests {
    @Test("ids up to 256 bytes are remembered; longer ones (sent before any broker authenticates them) are not")
    func longIDsAreNotRemembered() {
        let clients = StickyClients(settings: MQTTSettings(stickByClientID: true))
        let now = ContinuousClock.now
        let limit = String(repeating: "a", count: StickyClients.maxClientIDBytes)
        let longer = String(repeating: "b", count: StickyClients.maxClientIDBytes + 1)
        clients.stick(limit, to: "broker1", now: now)
        clients.stick(longer, to: "broker2", now: now)
        // 60 KiB ids from many connections must not fill memory.
        for index in 0..<100 {
            clients.stick(String(repeating: "c", count: 60 * 1024) + "\(index)", to: "broker1", now: now)
        }
        #expect(clients.count == 1)
        #expect(clients.server(for: limit, now: now) { _ in true } == "broker1")
        #expect(clients.server(for: longer, now: now) { _ in true } == nil)
    }
}
