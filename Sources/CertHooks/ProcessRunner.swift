import Foundation
import Glibc

/// Runs external programs (deploy hooks, dns-01 hooks) with a time limit, without blocking Swift's
/// cooperative thread pool.
public enum ProcessRunner {
    /// Runs `executable` with `arguments` and exactly `environment` (merge with the parent environment first
    /// if the child should see it).
    ///
    /// The child gets its own process group (`posix_spawn` with `POSIX_SPAWN_SETPGROUP`), stdin from
    /// /dev/null, default signal dispositions, and no inherited descriptors besides 0, 1 and 2. stdout and
    /// stderr go into one pipe that a dedicated thread reads, so the calling task only suspends.
    ///
    /// On timeout the whole group gets SIGTERM, then SIGKILL after `killGrace`, so a hook that forks
    /// `sleep 1000` cannot outlive its time limit; the outcome is then `.timedOut` whatever the exit status.
    /// Cancelling the calling task ends the group the same way; the outcome then is how the child ended
    /// (normally `.signalled(signal: SIGTERM)`). A task cancelled before the call returns
    /// `.failedToStart(reason: "cancelled before start")` without starting anything.
    /// Processes the child leaves behind after exiting normally are not killed (a hook may start a daemon
    /// with `nohup`); output they write is read for another 0.5 s, then our end of the pipe is closed, so
    /// such processes should redirect their output.
    ///
    /// - Parameters:
    ///   - executable: a path, or a bare name looked up in `environment["PATH"]` (or a standard PATH).
    ///   - arguments: the arguments after argv[0] (argv[0] is `executable` as given).
    ///   - environment: the child's complete environment.
    ///   - timeout: seconds the child may run; `.infinity` for no limit.
    ///   - killGrace: seconds between SIGTERM and SIGKILL on timeout or cancellation.
    ///   - workingDirectory: the child's working directory; `nil` keeps ours.
    /// - Returns: the outcome and the merged output (never throws: a start failure is an outcome).
    public static func run(
        executable: String,
        arguments: [String],
        environment: [String: String],
        timeout: Double,
        killGrace: Double = 2,
        workingDirectory: String? = nil
    ) async -> ProcessResult {
        if Task.isCancelled {
            return ProcessResult(outcome: .failedToStart(reason: "cancelled before start"), output: "")
        }
        let child: SpawnedChild
        switch ChildSpawner.spawn(
            executable: executable, arguments: arguments,
            environment: environment, workingDirectory: workingDirectory
        ) {
        case .success(let spawned): child = spawned
        case .failure(let failure): return ProcessResult(outcome: .failedToStart(reason: failure.reason), output: "")
        }

        let supervisor = ChildSupervisor(
            child: child, timeout: timeout.isNaN ? 0 : timeout,
            killGrace: killGrace.isNaN ? 0 : killGrace, cancellation: CancellationFlag()
        )
        return await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<ProcessResult, Never>) in
                let thread = Thread {
                    continuation.resume(returning: supervisor.run())
                }
                thread.name = "certkeeper-child-\(child.pid)"
                thread.start()
            }
        } onCancel: {
            supervisor.cancellation.cancel()
        }
    }

    /// Merges `overrides` on top of `base` (for example the parent environment and a hook's variables).
    /// - Parameters:
    ///   - base: the starting environment, such as `ProcessInfo.processInfo.environment`.
    ///   - overrides: variables that replace same-named ones in `base`.
    public static func mergedEnvironment(_ base: [String: String], _ overrides: [String: String]) -> [String: String] {
        base.merging(overrides) { _, new in new }
    }
}
