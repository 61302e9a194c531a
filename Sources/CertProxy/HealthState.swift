/// Whether a server gets new connections.
public enum ProxyServerState: String, Sendable, Hashable {
    /// Gets new connections.
    case up
    /// Its health check failed `fall` times in a row (or its first check failed): no new connections.
    case down
}

/// The up/down state machine of one checked server: pure, fed one check result at a time (time plays no part in
/// the rules, so tests drive it directly).
///
/// A server starts **up, unproven**, as HAProxy starts it: traffic flows before the first check has answered,
/// and the **first** check decides at once (a failure marks it down without waiting for `fall` failures, so a
/// database replica behind a primary-only check never gets a connection after the first round). After that, an
/// up server goes down after `fall` consecutive failures and a down server comes back after `rise` consecutive
/// successes; a result of the other kind resets the count.
struct HealthStateMachine: Sendable, Hashable {
    /// A change of state, to log and act on.
    enum Transition: Sendable, Hashable {
        case markedDown
        case markedUp
    }

    let fall: Int
    let rise: Int
    private(set) var state: ProxyServerState = .up
    /// Whether any check has answered yet.
    private(set) var proven = false
    private(set) var consecutiveSuccesses = 0
    private(set) var consecutiveFailures = 0

    init(fall: Int, rise: Int) {
        self.fall = max(1, fall)
        self.rise = max(1, rise)
    }

    /// Records one check result.
    /// - Returns: The transition it caused, if any.
    mutating func record(success: Bool) -> Transition? {
        defer { proven = true }
        if success {
            consecutiveFailures = 0
            consecutiveSuccesses += 1
            if state == .down, consecutiveSuccesses >= rise {
                state = .up
                return .markedUp
            }
        } else {
            consecutiveSuccesses = 0
            consecutiveFailures += 1
            if state == .up, !proven || consecutiveFailures >= fall {
                state = .down
                return .markedDown
            }
        }
        return nil
    }
}
