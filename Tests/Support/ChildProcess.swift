import Foundation
import NIOConcurrencyHelpers

#if canImport(Glibc)
import Glibc
#endif

/// A child process started with `posix_spawn`, in its own process group, with a clean signal state.
///
/// Why not Foundation's `Process`: on Linux it spawns children with the calling thread's signal mask, and the
/// Swift concurrency threads the tests run on block SIGTERM, SIGINT and others, so a child started from a test
/// would silently ignore SIGTERM. Here the child gets an empty mask and default handlers, like a program started
/// from a shell.
final class ChildProcess: Sendable {
    /// The child's pid (also its process group id).
    let pid: pid_t
    /// `nil` while running; the raw wait status once reaped.
    private let waitStatus: NIOLockedValueBox<Int32?>

    private init(pid: pid_t) {
        self.pid = pid
        self.waitStatus = NIOLockedValueBox(nil)
    }

    /// Spawns `executable`.
    /// - Parameters:
    ///   - executable: Absolute path.
    ///   - arguments: Arguments (without argv[0]).
    ///   - environment: The complete environment.
    ///   - currentDirectory: Working directory, or `nil` to inherit.
    ///   - stdoutPath: File that receives stdout (created/truncated).
    ///   - stderrPath: File that receives stderr; may equal `stdoutPath` (then both share one descriptor).
    /// - Throws: ``TestSupportError/launchFailed(executable:reason:)``.
    static func spawn(
        executable: String, arguments: [String], environment: [String: String], currentDirectory: String?,
        stdoutPath: String, stderrPath: String
    ) throws -> ChildProcess {
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 1, stdoutPath, O_WRONLY | O_CREAT | O_TRUNC | O_APPEND, 0o644)
        if stderrPath == stdoutPath {
            posix_spawn_file_actions_adddup2(&actions, 1, 2)
        } else {
            posix_spawn_file_actions_addopen(&actions, 2, stderrPath, O_WRONLY | O_CREAT | O_TRUNC | O_APPEND, 0o644)
        }
        // No other descriptor reaches the child: a test's NIO sockets are not close-on-exec, and a child holding a
        // copy of one would keep that connection open (no FIN) after the test closed it.
        _ = addCloseFromAction?(&actions, 3)
        if let currentDirectory {
            guard let addChdir = addChdirAction else {
                throw TestSupportError.launchFailed(
                    executable: executable, reason: "this libc has no posix_spawn_file_actions_addchdir_np")
            }
            addChdir(&actions, currentDirectory)
        }

        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        var emptyMask = sigset_t()
        sigemptyset(&emptyMask)
        posix_spawnattr_setsigmask(&attributes, &emptyMask)
        var defaults = sigset_t()
        sigemptyset(&defaults)
        for signal in [SIGHUP, SIGINT, SIGQUIT, SIGPIPE, SIGTERM, SIGUSR1, SIGUSR2, SIGCHLD, SIGALRM] {
            sigaddset(&defaults, signal)
        }
        posix_spawnattr_setsigdefault(&attributes, &defaults)
        posix_spawnattr_setpgroup(&attributes, 0)
        posix_spawnattr_setflags(
            &attributes, Int16(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETPGROUP))

        let argv = ([executable] + arguments).map { strdup($0) } + [nil]
        let envp = environment.sorted { $0.key < $1.key }.map { strdup("\($0.key)=\($0.value)") } + [nil]
        defer {
            argv.forEach { free($0) }
            envp.forEach { free($0) }
        }
        var pid: pid_t = 0
        let result = posix_spawn(&pid, executable, &actions, &attributes, argv, envp)
        guard result == 0 else {
            throw TestSupportError.launchFailed(executable: executable, reason: String(cString: strerror(result)))
        }
        return ChildProcess(pid: pid)
    }

    private typealias AddChdir = @convention(c) (
        UnsafeMutablePointer<posix_spawn_file_actions_t>, UnsafePointer<CChar>
    ) -> Int32

    private typealias AddCloseFrom = @convention(c) (UnsafeMutablePointer<posix_spawn_file_actions_t>, Int32) -> Int32

    /// glibc ≥ 2.34 has `posix_spawn_file_actions_addclosefrom_np`, which the Glibc module does not export.
    private static var addCloseFromAction: AddCloseFrom? {
        dlsym(UnsafeMutableRawPointer(bitPattern: 0), "posix_spawn_file_actions_addclosefrom_np").map { unsafeBitCast($0, to: AddCloseFrom.self) }
    }

    /// glibc ≥ 2.29 has `posix_spawn_file_actions_addchdir_np`, but the Glibc module does not export it.
    private static var addChdirAction: AddChdir? {
        guard let symbol = dlsym(UnsafeMutableRawPointer(bitPattern: 0), "posix_spawn_file_actions_addchdir_np")
        else { return nil }
        return unsafeBitCast(symbol, to: AddChdir.self)
    }

    /// Whether the child is still running (reaps it when it has exited).
    var isRunning: Bool { reap() == nil }

    /// The exit code once exited (128 + signal number when killed by a signal), `nil` while running.
    var exitCode: Int32? {
        guard let status = reap() else { return nil }
        let signal = status & 0x7f
        return signal == 0 ? (status >> 8) & 0xff : 128 + signal
    }

    /// Sends `signal` to the child's process group (the child and anything it started), unless it was reaped.
    func send(_ signal: Int32) {
        waitStatus.withLockedValue { status in
            guard status == nil else { return }
            kill(-pid, signal)
        }
    }

    /// SIGTERM, up to `gracePeriod` seconds, SIGKILL, up to 5 s more, all to the whole process group.
    func terminate(gracePeriod: Double) async {
        guard isRunning else { return }
        send(SIGTERM)
        if await Self.waitUntil(seconds: gracePeriod, { !self.isRunning }) { return }
        send(SIGKILL)
        _ = await Self.waitUntil(seconds: 5, { !self.isRunning })
    }

    /// Waits (bounded) for the child to exit by itself; returns whether it did.
    func waitForExit(seconds: Double) async -> Bool {
        await Self.waitUntil(seconds: seconds) { !self.isRunning }
    }

    private func reap() -> Int32? {
        waitStatus.withLockedValue { status in
            if let status { return status }
            var raw: Int32 = 0
            let result = waitpid(pid, &raw, WNOHANG)
            if result == pid {
                status = raw
            } else if result == -1, errno == ECHILD {
                status = 0x7f  // someone else reaped it; report as "killed by signal 127"
            }
            return status
        }
    }

    /// Polls `condition` every 20 ms for at most `seconds`; returns whether it became true.
    static func waitUntil(seconds: Double, _ condition: @Sendable () -> Bool) async -> Bool {
        let deadline = ContinuousClock.now + .milliseconds(Int(seconds * 1000))
        while !condition() {
            if ContinuousClock.now >= deadline { return false }
            // Cancellation must not cut cleanup short, so the sleep's error is ignored.
            try? await Task.sleep(for: .milliseconds(20))
        }
        return true
    }
}
