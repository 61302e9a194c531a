import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// An exclusive `flock(2)` on `root/lock`, held until ``release()`` or deinit.
///
/// Within one process the holders of a store's lock take turns in arrival order (``StoreLockQueue``, shared by
/// every ``CertificateStore`` instance on the same root), waiting up to 15 minutes (or the timeout, if longer);
/// across processes the flock decides, and the timeout applies to it. A turn handed over from another holder of
/// this process waits one poll interval before its flock, so another process polling for the lock (a cron
/// `renew` behind a daemon installing many synced certificates) is not shut out for good. flock locks belong to the open file description, so the kernel
/// drops the lock if the process dies: no stale locks.
public final class StoreLock: Sendable {
    /// The lock file.
    public let path: String
    /// The open descriptor, `nil` once released.
    private let descriptor: Mutex<Int32?>
    private let turn: StoreLockQueue.Turn

    init(path: String, descriptor: Int32, turn: StoreLockQueue.Turn) {
        self.path = path
        self.descriptor = Mutex(descriptor)
        self.turn = turn
    }

    /// Releases the lock (and hands it to the next holder waiting in this process); calling it again does nothing.
    public func release() {
        let released = descriptor.withLock { fd -> Bool in
            guard let open = fd else { return false }
            _ = flock(open, LOCK_UN)
            _ = close(open)
            fd = nil
            return true
        }
        if released { turn.end() }
    }

    /// Whether the lock is still held by this object.
    public var isHeld: Bool { descriptor.withLock { $0 != nil } }

    deinit { release() }
}

extension CertificateStore {
    /// Takes the store's exclusive lock (`root/lock`), waiting up to `timeout`.
    ///
    /// Polls `flock(LOCK_EX | LOCK_NB)` every 50 ms, so waiting never blocks a thread. Use it around
    /// "check again, then renew and install" so two processes never order the same certificate.
    /// - Parameter timeout: How long to wait for another holder to release.
    /// - Returns: The held lock; release it with ``StoreLock/release()`` (or drop it).
    /// - Throws: ``StoreError`` with code `lockTimeout` after `timeout`, `cancelled` when the task is
    ///   cancelled while waiting, `io` when the lock file cannot be opened.
    public func acquireLock(timeout: Duration) async throws(StoreError) -> StoreLock {
        try fileSystem.makeDirectory(root, mode: 0o755)
        let path = lockPath
        // This process's holders first, one at a time in arrival order; then the other processes' flock.
        let inProcessLimit = max(timeout, StoreLockQueue.longestWait)
        guard let turn = await StoreLockQueue.shared.waitForTurn(path, limit: inProcessLimit) else {
            if Task.isCancelled { throw StoreError(code: .cancelled, operation: "lock", path: path, detail: "cancelled while waiting") }
            throw StoreError(code: .lockTimeout, operation: "lock", path: path, detail: "held by another task of this process for more than \(inProcessLimit)")
        }
        if turn.handedOver {
            do {
                try await Task.sleep(for: StoreLockQueue.handOverPause)
            } catch {
                turn.end()
                throw StoreError(code: .cancelled, operation: "lock", path: path, detail: "cancelled while waiting")
            }
        }
        let fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o600)
        guard fd >= 0 else {
            let failure = StoreError.io("open lock file", path)
            turn.end()
            throw failure
        }
        let clock = ContinuousClock()
        let deadline = clock.now.advanced(by: timeout)
        while true {
            if flock(fd, LOCK_EX | LOCK_NB) == 0 {
                return StoreLock(path: path, descriptor: fd, turn: turn)
            }
            let code = errno
            if code == EINTR { continue }
            guard code == EWOULDBLOCK else {
                _ = close(fd)
                turn.end()
                throw .io("lock", path, errno: code)
            }
            let remaining = clock.now.duration(to: deadline)
            guard remaining > .zero else {
                _ = close(fd)
                turn.end()
                throw StoreError(code: .lockTimeout, operation: "lock", path: path, detail: "held by another process for more than \(timeout)")
            }
            do {
                try await Task.sleep(for: min(.milliseconds(50), remaining))
            } catch {
                _ = close(fd)
                turn.end()
                throw StoreError(code: .cancelled, operation: "lock", path: path, detail: "cancelled while waiting")
            }
        }
    }

    /// Whether another holder has the store lock right now (a `renew`, a daemon installing): one non-blocking try,
    /// released at once. `false` when nothing holds it or the lock file cannot be opened.
    public func isLockHeldElsewhere() -> Bool {
        let fd = open(lockPath, O_RDWR | O_CLOEXEC)
        guard fd >= 0 else { return false }
        defer { _ = close(fd) }
        guard flock(fd, LOCK_EX | LOCK_NB) == 0 else { return errno == EWOULDBLOCK }
        _ = flock(fd, LOCK_UN)
        return false
    }
}

/// The in-process half of the store lock: per lock file, one holder at a time, the others waiting in arrival
/// order (woken by the release, not polling), whichever ``CertificateStore`` instance they came through.
///
/// A daemon's peer sync installs, its internal renewals and its hook runs all take the store lock; without this
/// queue they would poll one flock and the loser of a long deploy hook would time out.
final class StoreLockQueue: Sendable {
    /// One holder's place; ``end()`` hands the lock on (idempotent).
    final class Turn: Sendable {
        private let path: String
        private let queue: StoreLockQueue
        private let ended = Mutex(false)
        /// Whether another holder of this process passed it on (rather than the lock being free here).
        let handedOver: Bool

        init(path: String, queue: StoreLockQueue, handedOver: Bool) {
            self.path = path
            self.queue = queue
            self.handedOver = handedOver
        }

        func end() {
            let first = ended.withLock { ended -> Bool in
                defer { ended = true }
                return !ended
            }
            if first { queue.pass(path) }
        }
    }

    private struct Line {
        var held = false
        var waiting: [(id: UInt64, continuation: CheckedContinuation<Bool, any Error>)] = []
    }

    static let shared = StoreLockQueue()
    /// The longest an in-process waiter waits (beyond a longer lock timeout): longer than any deploy hook may run,
    /// short enough that a bug holding the lock shows as an error rather than a hang.
    static let longestWait: Duration = .seconds(15 * 60)
    /// How long a handed-over turn waits before its flock: a little more than the 50 ms another process polls at.
    static let handOverPause: Duration = .milliseconds(60)
    private let lines = Mutex<(next: UInt64, byPath: [String: Line])>((0, [:]))

    /// Waits until no other holder in this process has `path`, at most `limit`.
    /// - Returns: The turn, or `nil` after `limit` or when the task is cancelled (the place is given up).
    func waitForTurn(_ path: String, limit: Duration) async -> Turn? {
        await withTaskGroup(of: Turn?.self) { group in
            group.addTask { try? await self.waitForTurn(path) }
            group.addTask {
                try? await Task.sleep(for: limit)
                return nil
            }
            var granted: Turn?
            var decided = false
            while let result = await group.next() {
                if let turn = result {
                    // A turn granted after the decision (the limit passed in the same instant) is handed on.
                    if decided { turn.end() } else { granted = turn }
                }
                if !decided {
                    decided = true
                    group.cancelAll()
                }
            }
            return granted
        }
    }

    /// Waits until no other holder in this process has `path`.
    /// - Throws: `CancellationError` when the task is cancelled while waiting (its place is given up).
    func waitForTurn(_ path: String) async throws -> Turn {
        let id = lines.withLock { state -> UInt64 in
            state.next += 1
            return state.next
        }
        let waited = try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Bool, any Error>) in
                // Checked under the same lock the cancellation handler takes: the flag is set before the handler
                // runs, so either this sees it or the handler sees the waiter.
                let admitted = lines.withLock { state -> Bool? in
                    if Task.isCancelled { return nil }
                    var line = state.byPath[path] ?? Line()
                    if !line.held {
                        line.held = true
                        state.byPath[path] = line
                        return true
                    }
                    line.waiting.append((id, continuation))
                    state.byPath[path] = line
                    return false
                }
                switch admitted {
                case nil: continuation.resume(throwing: CancellationError())
                case true?: continuation.resume(returning: false)
                case false?: break
                }
            }
        } onCancel: {
            let cancelled = lines.withLock { state -> CheckedContinuation<Bool, any Error>? in
                guard var line = state.byPath[path], let index = line.waiting.firstIndex(where: { $0.id == id }) else { return nil }
                let continuation = line.waiting.remove(at: index).continuation
                state.byPath[path] = line
                return continuation
            }
            cancelled?.resume(throwing: CancellationError())
        }
        return Turn(path: path, queue: self, handedOver: waited)
    }

    /// Hands `path` to the next waiter, or marks it free.
    fileprivate func pass(_ path: String) {
        let next = lines.withLock { state -> CheckedContinuation<Bool, any Error>? in
            guard var line = state.byPath[path] else { return nil }
            if line.waiting.isEmpty {
                state.byPath[path] = nil
                return nil
            }
            let next = line.waiting.removeFirst().continuation
            state.byPath[path] = line
            return next
        }
        next?.resume(returning: true)
    }
}
