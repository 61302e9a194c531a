/// What the balancer needs to know about one server at the moment of a choice.
struct SelectionCandidate: Sendable, Hashable {
    /// Up (no check, or the check says so).
    var up: Bool
    /// Used only when no normal server can take the connection.
    var backup: Bool
    /// Runs on this host (only matters with `preferLocal`).
    var local: Bool
    /// Relative share; 0 takes nothing.
    var weight: Int
    /// Open connections now.
    var active: Int
    /// Open connections at most, or `nil`.
    var maxConnections: Int?

    /// Whether the server can take one more connection at all.
    var available: Bool {
        up && weight > 0 && (maxConnections.map { active < $0 } ?? true)
    }
}

/// Chooses a server for a new connection: pure logic, no locks and no I/O, so every rule is unit-tested.
///
/// Servers fall into tiers, and the best tier with a server that can take the connection is used:
/// normal servers before backups, and with `preferLocal` local before remote within each (local normal, remote
/// normal, local backup, remote backup). "Can take the connection" means up, weight above 0, below its
/// `maxconn` and not already tried for this client — so backups also take over when every normal server is full
/// or has just refused this client, rather than the client being closed.
///
/// Within the tier:
/// - `roundrobin`: smooth weighted round-robin (nginx's): each candidate gains its weight, the one with the most
///   wins and pays back the tier's total. Weights 3:1 give `a a b a` and each server's share stays exact even
///   when some are skipped.
/// - `leastconn`: fewest open connections relative to weight (`active / weight`); ties rotate.
/// - `first`: the first in configuration order.
struct ServerSelection: Sendable {
    let balance: ProxyBalance
    let preferLocal: Bool
    private var currentWeights: [Int]
    private var rotation = 0

    /// - Parameters:
    ///   - balance: The algorithm within a tier.
    ///   - preferLocal: Whether local servers form a better tier.
    ///   - count: Number of servers.
    init(balance: ProxyBalance, preferLocal: Bool, count: Int) {
        self.balance = balance
        self.preferLocal = preferLocal
        self.currentWeights = Array(repeating: 0, count: count)
    }

    /// The tier of a candidate; lower is better.
    func tier(_ candidate: SelectionCandidate) -> Int {
        (candidate.backup ? 2 : 0) + (preferLocal && !candidate.local ? 1 : 0)
    }

    /// Picks a server.
    /// - Parameters:
    ///   - candidates: Every server, in configuration order.
    ///   - excluded: Indices not to pick (already tried for this client).
    /// - Returns: The index of the chosen server, or `nil` when none can take the connection.
    mutating func choose(_ candidates: [SelectionCandidate], excluding excluded: Set<Int> = []) -> Int? {
        if currentWeights.count != candidates.count { currentWeights = Array(repeating: 0, count: candidates.count) }
        let eligible = candidates.indices.filter { candidates[$0].available && !excluded.contains($0) }
        guard let bestTier = eligible.map({ tier(candidates[$0]) }).min() else { return nil }
        let tierMembers = eligible.filter { tier(candidates[$0]) == bestTier }
        switch balance {
        case .first:
            return tierMembers.first
        case .roundRobin:
            var total = 0
            var best: Int?
            for index in tierMembers {
                currentWeights[index] += candidates[index].weight
                total += candidates[index].weight
                if best == nil || currentWeights[index] > currentWeights[best!] { best = index }
            }
            if let best { currentWeights[best] -= total }
            return best
        case .leastConnections:
            defer { rotation = rotation &+ 1 }
            let start = (rotation & Int.max) % tierMembers.count
            var best: Int?
            for offset in 0..<tierMembers.count {
                let index = tierMembers[(start + offset) % tierMembers.count]
                guard let current = best else {
                    best = index
                    continue
                }
                // active/weight < best.active/best.weight, without division.
                if candidates[index].active * candidates[current].weight < candidates[current].active * candidates[index].weight {
                    best = index
                }
            }
            return best
        }
    }
}
