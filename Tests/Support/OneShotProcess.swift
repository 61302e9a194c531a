import Foundation

/// Runs a program to completion with a timeout and captures its output (used by ``CLI`` and ``Curl``).
public enum OneShotProcess {
    /// Runs `executable` and returns its exit code, stdout and stderr.
    ///
    /// The program runs in its own process group with a clean signal mask (see ``ManagedProcess``). Output is
    /// captured through temporary files (not pipes), so a chatty program cannot block on a full pipe. stdin is
    /// `/dev/null`. A program killed by a signal reports 128 + the signal number.
    /// - Parameters:
    ///   - executable: Absolute path of the program.
    ///   - arguments: Its arguments.
    ///   - environment: Variables added to (or replacing those in) this process's environment.
    ///   - currentDirectory: The working directory; this process's by default.
    ///   - timeout: Seconds before the program's process group is sent SIGTERM (then SIGKILL after 3 s).
    /// - Throws: ``TestSupportError/launchFailed(executable:reason:)``, or
    ///   ``TestSupportError/timedOut(what:seconds:logTail:)`` after killing a program that ran too long.
    public static func run(
        executable: String,
        arguments: [String] = [],
        environment: [String: String] = [:],
        currentDirectory: String? = nil,
        timeout: Double = 60
    ) async throws -> (exitCode: Int32, stdout: String, stderr: String) {
        let scratch = try TemporaryDirectory(name: "run-" + URL(fileURLWithPath: executable).lastPathComponent)
        defer { scratch.remove() }
        let stdoutPath = scratch.appending("stdout")
        let stderrPath = scratch.appending("stderr")
        let child = try ChildProcess.spawn(
            executable: executable, arguments: arguments,
            environment: ProcessInfo.processInfo.environment.merging(environment) { _, new in new },
            currentDirectory: currentDirectory, stdoutPath: stdoutPath, stderrPath: stderrPath)
        let finished = await child.waitForExit(seconds: timeout)
        let read = { (path: String) in
            String(decoding: FileManager.default.contents(atPath: path) ?? Data(), as: UTF8.self)
        }
        guard finished, let exitCode = child.exitCode else {
            await child.terminate(gracePeriod: 3)
            let tail = (read(stdoutPath) + read(stderrPath)).split(separator: "\n").suffix(20).joined(separator: "\n")
            let command = ([executable] + arguments).joined(separator: " ")
            throw TestSupportError.timedOut(what: command, seconds: timeout, logTail: tail)
        }
        return (exitCode, read(stdoutPath), read(stderrPath))
    }
}
