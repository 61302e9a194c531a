import Foundation
import NIOConcurrencyHelpers

/// Runs a program to completion with a timeout and captures its output (used by ``CLI`` and for `curl`).
public enum OneShotProcess {
    /// Runs `executable` and returns its exit code, stdout and stderr.
    ///
    /// Output is captured through temporary files (not pipes), so a chatty program cannot block on a full pipe.
    /// stdin is `/dev/null`. A program killed by a signal reports 128 + the signal number.
    /// - Parameters:
    ///   - executable: Absolute path of the program.
    ///   - arguments: Its arguments.
    ///   - environment: Variables added to (or replacing those in) this process's environment.
    ///   - currentDirectory: The working directory; this process's by default.
    ///   - timeout: Seconds before the program is sent SIGTERM (then SIGKILL after 3 s).
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
        guard FileManager.default.createFile(atPath: stdoutPath, contents: nil),
              FileManager.default.createFile(atPath: stderrPath, contents: nil),
              let stdoutHandle = FileHandle(forWritingAtPath: stdoutPath),
              let stderrHandle = FileHandle(forWritingAtPath: stderrPath)
        else {
            throw TestSupportError.launchFailed(executable: executable, reason: "cannot create output files")
        }
        defer {
            try? stdoutHandle.close()
            try? stderrHandle.close()
        }

        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        process.environment = ProcessInfo.processInfo.environment.merging(environment) { _, new in new }
        if let currentDirectory { process.currentDirectoryURL = URL(fileURLWithPath: currentDirectory) }
        process.standardInput = FileHandle.nullDevice
        process.standardOutput = stdoutHandle
        process.standardError = stderrHandle
        do {
            try process.run()
        } catch {
            throw TestSupportError.launchFailed(executable: executable, reason: "\(error)")
        }
        let pid = process.processIdentifier
        let box = ProcessBox(process: NIOLockedValueBox(process))
        let finished = await ManagedProcess.waitUntil(seconds: timeout) { !box.isRunning }
        let read = { (path: String) in String(decoding: FileManager.default.contents(atPath: path) ?? Data(), as: UTF8.self) }
        if !finished {
            await ManagedProcess.terminate(pid: pid, isRunning: { box.isRunning }, gracePeriod: 3)
            let tail = (read(stdoutPath) + read(stderrPath)).split(separator: "\n").suffix(20).joined(separator: "\n")
            let command = ([executable] + arguments).joined(separator: " ")
            throw TestSupportError.timedOut(what: command, seconds: timeout, logTail: tail)
        }
        return (box.exitCode, read(stdoutPath), read(stderrPath))
    }
}

/// Lets `@Sendable` polling closures look at a `Process`; all access is serialised by the lock.
private struct ProcessBox: Sendable {
    let process: NIOLockedValueBox<Process>

    var isRunning: Bool { process.withLockedValue { $0.isRunning } }

    var exitCode: Int32 {
        process.withLockedValue { process in
            process.terminationReason == .uncaughtSignal ? 128 + process.terminationStatus : process.terminationStatus
        }
    }
}
