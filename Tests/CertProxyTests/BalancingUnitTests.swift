import NIOCore
import Testing

@testable import CertProxy

@Suite("Server selection, health state machine, PROXY v2 encoding (pure logic)")
struct BalancingUnitTests {
    private func server(
        up: Bool = true, backup: Bool = false, local: Bool = false, weight: Int = 1, active: Int = 0, maxConnections: Int? = nil
    ) -> SelectionCandidate {
        SelectionCandidate(up: up, backup: backup, local: local, weight: weight, active: active, maxConnections: maxConnections)
    }

    private func picks(_ selection: inout ServerSelection, _ candidates: [SelectionCandidate], _ count: Int) -> [Int?] {
        (0..<count).map { _ in selection.choose(candidates) }
    }

    @Test("roundrobin: equal weights alternate; weights 3:1 give a a b a (smooth), shares exact")
    func weightedRoundRobin() {
        var equal = ServerSelection(balance: .roundRobin, preferLocal: false, count: 3)
        #expect(picks(&equal, [server(), server(), server()], 6) == [0, 1, 2, 0, 1, 2])

        var weighted = ServerSelection(balance: .roundRobin, preferLocal: false, count: 2)
        let candidates = [server(weight: 3), server(weight: 1)]
        #expect(picks(&weighted, candidates, 4) == [0, 0, 1, 0])
        let many = picks(&weighted, candidates, 400)
        #expect(many.filter { $0 == 0 }.count == 300)

        var withZero = ServerSelection(balance: .roundRobin, preferLocal: false, count: 2)
        #expect(picks(&withZero, [server(weight: 0), server()], 3) == [1, 1, 1])
    }

    @Test("roundrobin skips servers that are down, full or excluded")
    func roundRobinSkips() {
        var selection = ServerSelection(balance: .roundRobin, preferLocal: false, count: 3)
        let candidates = [server(up: false), server(active: 2, maxConnections: 2), server()]
        #expect(picks(&selection, candidates, 3) == [2, 2, 2])
        #expect(selection.choose(candidates, excluding: [2]) == nil)
    }

    @Test("leastconn: fewest open connections relative to weight; ties rotate")
    func leastConnections() {
        var selection = ServerSelection(balance: .leastConnections, preferLocal: false, count: 3)
        #expect(selection.choose([server(active: 5), server(active: 2), server(active: 3)]) == 1)
        // 4/2 = 2 beats 3/1 = 3.
        #expect(selection.choose([server(weight: 1, active: 3), server(weight: 2, active: 4)]) == 1)
        let tied = [server(active: 1), server(active: 1), server(active: 1)]
        let chosen = Set(picks(&selection, tied, 3).compactMap { $0 })
        #expect(chosen == [0, 1, 2])
    }

    @Test("first: the first server in order that is up and not full")
    func first() {
        var selection = ServerSelection(balance: .first, preferLocal: false, count: 3)
        #expect(picks(&selection, [server(), server(), server()], 3) == [0, 0, 0])
        #expect(selection.choose([server(active: 1, maxConnections: 1), server(), server()]) == 1)
        #expect(selection.choose([server(up: false), server(up: false), server()]) == 2)
    }

    @Test("backup servers only when no normal server can take the connection")
    func backupOrdering() {
        var selection = ServerSelection(balance: .roundRobin, preferLocal: false, count: 3)
        let normal = [server(backup: true), server(), server(backup: true)]
        #expect(picks(&selection, normal, 4) == [1, 1, 1, 1])
        let normalDown = [server(backup: true), server(up: false), server(backup: true)]
        #expect(picks(&selection, normalDown, 4) == [0, 2, 0, 2])
        // A normal server that refused this client: the backups take it.
        #expect(selection.choose(normal, excluding: [1]) != nil)
        #expect(selection.choose([server(up: false, backup: true), server(up: false)]) == nil)
    }

    @Test("prefer_local: local first, remote when no local can, then local backup, then remote backup")
    func preferLocal() {
        var selection = ServerSelection(balance: .roundRobin, preferLocal: true, count: 4)
        var candidates = [
            server(local: false), server(local: true), server(backup: true, local: true), server(backup: true, local: false),
        ]
        #expect(picks(&selection, candidates, 3) == [1, 1, 1])
        candidates[1].up = false
        #expect(picks(&selection, candidates, 2) == [0, 0])
        candidates[0].up = false
        #expect(picks(&selection, candidates, 2) == [2, 2])
        candidates[2].up = false
        #expect(selection.choose(candidates) == 3)

        var ignoring = ServerSelection(balance: .roundRobin, preferLocal: false, count: 2)
        #expect(picks(&ignoring, [server(local: false), server(local: true)], 2) == [0, 1])
    }

    @Test("health: starts up; the first failure marks down at once; then fall and rise count")
    func healthStateMachine() {
        var first = HealthStateMachine(fall: 3, rise: 2)
        #expect(first.state == .up)
        #expect(first.record(success: false) == .markedDown)
        #expect(first.record(success: true) == nil)
        #expect(first.record(success: true) == .markedUp)

        var health = HealthStateMachine(fall: 3, rise: 2)
        #expect(health.record(success: true) == nil)
        #expect(health.record(success: false) == nil)
        #expect(health.record(success: false) == nil)
        #expect(health.record(success: true) == nil)  // resets the failures
        #expect(health.record(success: false) == nil)
        #expect(health.record(success: false) == nil)
        #expect(health.record(success: false) == .markedDown)
        #expect(health.state == .down)
        #expect(health.record(success: false) == nil)
        #expect(health.record(success: true) == nil)
        #expect(health.record(success: false) == nil)  // resets the successes
        #expect(health.record(success: true) == nil)
        #expect(health.record(success: true) == .markedUp)
        #expect(health.state == .up)
    }

    @Test("PROXY v2: TCP4 header bytes as in the specification")
    func proxyV2IPv4() throws {
        let header = ProxyProtocolV2.header(
            source: try SocketAddress(ipAddress: "192.0.2.10", port: 51_234),
            destination: try SocketAddress(ipAddress: "198.51.100.1", port: 443))
        let expected: [UInt8] =
            [0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D, 0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A]  // signature
            + [0x21, 0x11, 0x00, 0x0C]  // v2 PROXY, TCP over IPv4, 12 bytes
            + [192, 0, 2, 10] + [198, 51, 100, 1]  // source, destination
            + [0xC8, 0x22] + [0x01, 0xBB]  // 51234, 443
        #expect(header == expected)
    }

    @Test("PROXY v2: TCP6, mixed families as IPv4-mapped IPv6, LOCAL when unknown")
    func proxyV2IPv6AndLocal() throws {
        let header = ProxyProtocolV2.header(
            source: try SocketAddress(ipAddress: "2001:db8::1", port: 1883), destination: try SocketAddress(ipAddress: "::1", port: 8883))
        #expect(Array(header[12..<16]) == [0x21, 0x21, 0x00, 0x24])
        #expect(Array(header[16..<32]) == [0x20, 0x01, 0x0D, 0xB8] + Array(repeating: 0, count: 11) + [1])
        #expect(Array(header[32..<48]) == Array(repeating: 0, count: 15) + [1])
        #expect(Array(header[48..<52]) == [0x07, 0x5B, 0x22, 0xB3])
        #expect(header.count == 52)

        let mixed = ProxyProtocolV2.header(
            source: try SocketAddress(ipAddress: "10.1.2.3", port: 1), destination: try SocketAddress(ipAddress: "::1", port: 2))
        #expect(Array(mixed[13..<16]) == [0x21, 0x00, 0x24])
        #expect(Array(mixed[16..<32]) == Array(repeating: 0, count: 10) + [0xFF, 0xFF, 10, 1, 2, 3])

        let local = ProxyProtocolV2.header(source: nil as SocketAddress?, destination: nil)
        #expect(local == ProxyProtocolV2.signature + [0x20, 0x00, 0x00, 0x00])
    }
}
