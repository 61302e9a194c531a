import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// An exclusive `flock(2)` on `root/lock`, held until ``release()`` or deinit.
///
/// flock locks belong to the open file description, so two acquisitions in one process exclude each other
/// just as two processes do. The kernel drops the lock if the process dies: no stale locks.
public final class StoreLock: Sendable {
    /// The lock file.
    public let path: String
    /// The open descriptor, `nil` once released.
    private let descriptor: Mutex<Int32?>

    init(path: String, descriptor: Int32) {
        self.path = path
        self.descriptor = Mutex(descriptor)
    }

    /// Releases the lock; calling it again does nothing.
    public func release() {
        descriptor.withLock { fd in
            guard let open = fd else { return }
            _ = flock(open, LOCK_UN)
            _ = close(open)
            fd = nil
        }
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
        let fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw .io("open lock file", path) }
        let clock = ContinuousClock()
        let deadline = clock.now.advanced(by: timeout)
        while true {
            if flock(fd, LOCK_EX | LOCK_NB) == 0 {
                return StoreLock(path: path, descriptor: fd)
            }
            let code = errno
            if code == EINTR { continue }
            guard code == EWOULDBLOCK else {
                _ = close(fd)
                throw .io("lock", path, errno: code)
            }
            let remaining = clock.now.duration(to: deadline)
            guard remaining > .zero else {
                _ = close(fd)
                throw StoreError(code: .lockTimeout, operation: "lock", path: path, detail: "held by another process or task for more than \(timeout)")
            }
            do {
                try await Task.sleep(for: min(.milliseconds(50), remaining))
            } catch {
                _ = close(fd)
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
