import CertProxy
import Testing

@Suite("MQTT stick table")
struct MQTTStickTableTests {
    let start = ContinuousClock.now
    let allUp: (String) -> Bool = { _ in true }

    func at(_ seconds: Int) -> ContinuousClock.Instant { start + .seconds(seconds) }

    @Test("the same key goes to the same server; the balance algorithm is asked only for new keys")
    func sticks() {
        var table = StickTable<String>(capacity: 10, expiry: .seconds(1800))
        var choices = ["a", "b", "c"].makeIterator()
        var asked = 0
        let choose = { () -> String? in
            asked += 1
            return choices.next()
        }
        #expect(table.pick(for: "dev-1", now: at(0), isUp: allUp, choose: choose) == "a")
        #expect(table.pick(for: "dev-2", now: at(1), isUp: allUp, choose: choose) == "b")
        #expect(table.pick(for: "dev-1", now: at(2), isUp: allUp, choose: choose) == "a")
        #expect(table.pick(for: "dev-2", now: at(3), isUp: allUp, choose: choose) == "b")
        #expect(asked == 2)
        #expect(table.count == 2)
    }

    @Test("an entry expires after its last use, not after its creation")
    func expiry() {
        var table = StickTable<String>(capacity: 10, expiry: .seconds(100))
        table.stick("dev-1", to: "a", now: at(0))
        table.stick("dev-2", to: "b", now: at(0))
        #expect(table.server(for: "dev-1", now: at(90), isUp: allUp) == "a")  // refreshed at 90
        #expect(table.server(for: "dev-1", now: at(189), isUp: allUp) == "a")
        #expect(table.server(for: "dev-2", now: at(189), isUp: allUp) == nil)
        #expect(table.count == 1)
        #expect(table.server(for: "dev-1", now: at(289), isUp: allUp) == nil)
        #expect(table.count == 0)
    }

    @Test("a full table drops the least recently used key")
    func lruEviction() {
        var table = StickTable<Int>(capacity: 3, expiry: .seconds(1000))
        table.stick("k1", to: 1, now: at(0))
        table.stick("k2", to: 2, now: at(1))
        table.stick("k3", to: 3, now: at(2))
        _ = table.server(for: "k1", now: at(3)) { _ in true }  // k2 is now the least recently used
        table.stick("k4", to: 4, now: at(4))
        #expect(table.count == 3)
        #expect(table.server(for: "k2", now: at(5)) { _ in true } == nil)
        #expect(table.server(for: "k1", now: at(5)) { _ in true } == 1)
        #expect(table.server(for: "k3", now: at(5)) { _ in true } == 3)
        #expect(table.server(for: "k4", now: at(5)) { _ in true } == 4)
    }

    @Test("a key stuck to a server that is down is dropped and chosen afresh")
    func serverDown() {
        var table = StickTable<String>(capacity: 10, expiry: .seconds(1800))
        table.stick("dev-1", to: "a", now: at(0))
        let aDown: (String) -> Bool = { $0 != "a" }
        #expect(table.pick(for: "dev-1", now: at(1), isUp: aDown, choose: { "b" }) == "b")
        // Stays on b when a comes back.
        #expect(table.pick(for: "dev-1", now: at(2), isUp: allUp, choose: { "a" }) == "b")
    }

    @Test("no server available: nothing is stuck")
    func noServer() {
        var table = StickTable<String>(capacity: 10, expiry: .seconds(1800))
        #expect(table.pick(for: "dev-1", now: at(0), isUp: allUp, choose: { nil }) == nil)
        #expect(table.count == 0)
    }

    @Test("an empty client id is never stuck")
    func emptyKey() {
        var table = StickTable<String>(capacity: 10, expiry: .seconds(1800))
        var choices = ["a", "b"].makeIterator()
        #expect(table.pick(for: "", now: at(0), isUp: allUp, choose: { choices.next() }) == "a")
        #expect(table.pick(for: "", now: at(1), isUp: allUp, choose: { choices.next() }) == "b")
        #expect(table.count == 0)
    }

    @Test("random traffic through a small table matches a naive reference model")
    func matchesReference() {
        let capacity = 50
        var table = StickTable<Int>(capacity: capacity, expiry: .seconds(40))
        // key -> (server, last use in seconds, use sequence number for LRU order)
        var reference: [String: (server: Int, lastUsed: Int, sequence: Int)] = [:]
        var generator = SystemRandomNumberGenerator()
        for step in 0..<20_000 {
            let now = step / 10
            let key = "client-\(Int.random(in: 0..<150, using: &generator))"
            let fresh = Int.random(in: 0..<4, using: &generator)
            // Server 3 is down during the middle of the run.
            let isUp: (Int) -> Bool = { $0 != 3 || !(5_000..<9_000).contains(step) }
            let choice = isUp(fresh) ? fresh : 0

            reference = reference.filter { $0.value.lastUsed + 40 > now }
            let expected: Int
            if let entry = reference[key], isUp(entry.server) {
                expected = entry.server
            } else {
                reference[key] = nil
                expected = choice
                if reference.count >= capacity, let lru = reference.min(by: { $0.value.sequence < $1.value.sequence }) {
                    reference[lru.key] = nil
                }
            }
            reference[key] = (expected, now, step)

            let got = table.pick(for: key, now: at(now), isUp: isUp, choose: { choice })
            guard got == expected else {
                Issue.record("step \(step): \(key) went to \(got.map(String.init) ?? "nil"), expected \(expected)")
                return
            }
            #expect(table.count == reference.count)
        }
    }
}

extension StickTable {
    /// What the proxy does with the table for a new connection (``BackendPool/acquire(clientID:stickingIn:excluding:now:)``
    /// adds the server's slot and the servers already tried): the stuck server when it is up, else `choose()`'s,
    /// which the key is then stuck to.
    mutating func pick(for key: String, now: ContinuousClock.Instant, isUp: (ServerID) -> Bool, choose: () -> ServerID?) -> ServerID? {
        if let server = server(for: key, now: now, isUp: isUp) { return server }
        guard let chosen = choose() else { return nil }
        stick(key, to: chosen, now: now)
        return chosen
    }
}
