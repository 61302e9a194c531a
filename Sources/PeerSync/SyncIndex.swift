import Foundation
import NIOConcurrencyHelpers

/// A position in one node's change history: `epoch.counter`.
///
/// The epoch is random per daemon start, so a follower that remembers `counter` from before a restart sees a new
/// epoch and compares everything again instead of waiting for a counter that started over.
public struct SyncIndex: Sendable, Hashable, Codable, LosslessStringConvertible {
    /// Random per daemon start (16 hex digits).
    public var epoch: String
    /// Bumped on every change installed into the store while this daemon runs.
    public var counter: UInt64

    /// Creates an index.
    public init(epoch: String, counter: UInt64) {
        self.epoch = epoch
        self.counter = counter
    }

    /// Parses `epoch.counter`; `nil` for anything else (the epoch must be 1–32 hex digits).
    public init?(_ description: String) {
        let parts = description.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 2, (1...32).contains(parts[0].count),
              parts[0].allSatisfy({ $0.isHexDigit }), let counter = UInt64(parts[1]) else { return nil }
        self.epoch = String(parts[0])
        self.counter = counter
    }

    /// `epoch.counter`.
    public var description: String { "\(epoch).\(counter)" }

    /// A new random epoch at counter 0.
    public static func fresh<R: RandomNumberGenerator>(using generator: inout R) -> SyncIndex {
        SyncIndex(epoch: String(format: "%016llx", generator.next() as UInt64), counter: 0)
    }
}

/// This node's current ``SyncIndex`` and the long-polls waiting for it to move.
///
/// Thread safety: every method may be called from any task. ``wait(after:timeout:)`` returns as soon as the index
/// differs from `after` (a bump, or another epoch), when the timeout passes, or when the task is cancelled.
public final class ChangeIndex: Sendable {
    private struct State {
        var index: SyncIndex
        var waiters: [UInt64: CheckedContinuation<Void, Never>] = [:]
        var nextWaiter: UInt64 = 0
    }

    private let state: NIOLockedValueBox<State>

    /// Starts at `initial` (usually ``SyncIndex/fresh(using:)``).
    public init(initial: SyncIndex) {
        state = NIOLockedValueBox(State(index: initial))
    }

    /// The index now.
    public var current: SyncIndex { state.withLockedValue { $0.index } }

    /// Records a change and wakes every waiter.
    @discardableResult
    public func bump() -> SyncIndex {
        let (index, waiters) = state.withLockedValue { state -> (SyncIndex, [CheckedContinuation<Void, Never>]) in
            state.index.counter += 1
            let waiters = Array(state.waiters.values)
            state.waiters = [:]
            return (state.index, waiters)
        }
        for waiter in waiters { waiter.resume() }
        return index
    }

    /// Waits until the index is not `after`, at most `timeout`.
    /// - Parameters:
    ///   - after: The index the caller already knows; `nil` answers at once.
    ///   - timeout: The longest wait.
    /// - Returns: The index now (equal to `after` when the wait timed out or was cancelled).
    public func wait(after: SyncIndex?, timeout: Duration) async -> SyncIndex {
        guard let after, current == after, timeout > .zero else { return current }
        await withTaskGroup(of: Void.self) { group in
            group.addTask { await self.waitForBump(from: after) }
            group.addTask { try? await Task.sleep(for: timeout) }
            await group.next()
            group.cancelAll()
        }
        return current
    }

    private func waitForBump(from after: SyncIndex) async {
        let id = state.withLockedValue { state -> UInt64 in
            state.nextWaiter += 1
            return state.nextWaiter
        }
        await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                let resumeNow = state.withLockedValue { state -> Bool in
                    if state.index != after || Task.isCancelled { return true }
                    state.waiters[id] = continuation
                    return false
                }
                if resumeNow { continuation.resume() }
            }
        } onCancel: {
            let waiter = state.withLockedValue { $0.waiters.removeValue(forKey: id) }
            waiter?.resume()
        }
    }
}
