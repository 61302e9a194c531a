import NIOConcurrencyHelpers

/// A count of things still running (open connections, health-check loops) that a shutdown waits to see at zero,
/// woken by the last one ending instead of polling.
///
/// Thread safety: all state behind one lock; continuations are resumed outside it.
final class DrainCount: Sendable {
    private struct State {
        var count = 0
        var nextWaiter: UInt64 = 0
        var waiters: [UInt64: CheckedContinuation<Void, Never>] = [:]
    }

    private let state = NIOLockedValueBox(State())

    /// The count now.
    var value: Int { state.withLockedValue { $0.count } }

    /// One more running.
    func increment() {
        state.withLockedValue { $0.count += 1 }
    }

    /// One fewer running; at zero every waiter returns.
    func decrement() {
        let woken = state.withLockedValue { state -> [CheckedContinuation<Void, Never>] in
            state.count = max(0, state.count - 1)
            guard state.count == 0 else { return [] }
            defer { state.waiters = [:] }
            return Array(state.waiters.values)
        }
        for waiter in woken { waiter.resume() }
    }

    /// Returns when the count is zero, or after `limit`, or when the task is cancelled.
    func waitForZero(upTo limit: Duration) async {
        await withTaskGroup(of: Void.self) { group in
            group.addTask { await self.zero() }
            group.addTask { try? await Task.sleep(for: limit) }
            await group.next()
            group.cancelAll()
        }
    }

    private func zero() async {
        let id = state.withLockedValue { state -> UInt64 in
            state.nextWaiter += 1
            return state.nextWaiter
        }
        await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                // Under the lock the cancellation handler takes too: either this sees the flag or the handler the waiter.
                let now = state.withLockedValue { state -> Bool in
                    if state.count == 0 || Task.isCancelled { return true }
                    state.waiters[id] = continuation
                    return false
                }
                if now { continuation.resume() }
            }
        } onCancel: {
            let waiter = state.withLockedValue { $0.waiters.removeValue(forKey: id) }
            waiter?.resume()
        }
    }
}
