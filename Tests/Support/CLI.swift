import Foundation

/// Runs the built `certkeeper` executable, as a user would.
public enum CLI {
    /// The path of the `certkeeper` executable: `$CERTKEEPER_BIN` if set, else the `certkeeper` next to the running
    /// test binary (`.build/<triple>/debug/certkeeper`).
    /// - Throws: ``TestSupportError/executableNotFound(searched:)`` when neither exists.
    public static func executablePath() throws -> String {
        var searched: [String] = []
        if let override = ProcessInfo.processInfo.environment["CERTKEEPER_BIN"], !override.isEmpty {
            if FileManager.default.isExecutableFile(atPath: override) { return override }
            searched.append(override)
        }
        // The test binary is `.build/<triple>/debug/certkeeperPackageTests.xctest` (a file on Linux), so its
        // directory is where SwiftPM puts the executables too.
        if let testBinary = try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe") {
            var directory = URL(fileURLWithPath: testBinary).deletingLastPathComponent()
            // On platforms where the test bundle is a directory, climb out of it.
            while directory.path.contains(".xctest") { directory.deleteLastPathComponent() }
            let candidate = directory.appendingPathComponent("certkeeper").path
            if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
            searched.append(candidate)
        }
        throw TestSupportError.executableNotFound(searched: searched)
    }

    /// Runs `certkeeper <args>` and returns its exit code and output.
    /// - Parameters:
    ///   - args: Command-line arguments.
    ///   - environment: Variables added to (or replacing those in) the test process's environment.
    ///   - currentDirectory: The working directory; the test process's by default.
    ///   - timeout: Seconds before the program is killed (SIGTERM, then SIGKILL after 3 s).
    /// - Throws: ``TestSupportError/executableNotFound(searched:)``, ``TestSupportError/launchFailed(executable:reason:)``,
    ///   or ``TestSupportError/timedOut(what:seconds:logTail:)``.
    public static func run(
        _ args: [String],
        environment: [String: String] = [:],
        currentDirectory: String? = nil,
        timeout: Double = 120
    ) async throws -> (exitCode: Int32, stdout: String, stderr: String) {
        try await OneShotProcess.run(
            executable: try executablePath(), arguments: args, environment: environment,
            currentDirectory: currentDirectory, timeout: timeout
        )
    }

    /// Starts `certkeeper <args>` as a long-running process (e.g. the daemon), logging to
    /// `<logDirectory>/<name>.log`. Stop it with ``ManagedProcess/stop(gracePeriod:)``, or send SIGTERM with
    /// ``ManagedProcess/send(signal:)`` and check ``ManagedProcess/waitForExit(timeout:)``.
    /// - Throws: ``TestSupportError/executableNotFound(searched:)`` or ``TestSupportError/launchFailed(executable:reason:)``.
    public static func start(
        _ args: [String],
        environment: [String: String] = [:],
        logDirectory: String,
        name: String = "certkeeper"
    ) throws -> ManagedProcess {
        try ManagedProcess.start(name: name, executable: try executablePath(), arguments: args,
                                 environment: environment, logDirectory: logDirectory)
    }
}
