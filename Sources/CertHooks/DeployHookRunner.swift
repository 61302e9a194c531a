import Logging

/// Runs the deploy hooks after a certificate was installed: the configured hooks first, in order, then the
/// executable files of a run-parts style directory in name order.
public struct DeployHookRunner: Sendable {
    /// How many trailing output lines a failure log line carries.
    public static let failureOutputLines = 5

    /// The configured hooks.
    public let hooks: [DeployHook]
    /// The hook directory, if any.
    public let directory: String?
    /// The time limit for hooks found in the directory.
    public let defaultTimeout: Double
    /// The environment every hook starts from (PATH etc.); the event's variables are added on top.
    public let baseEnvironment: [String: String]
    private let logger: Logger

    /// Creates a runner.
    /// - Parameters:
    ///   - hooks: configured commands, run first in order.
    ///   - directory: run-parts style directory: regular executable files in name order, skipping hidden
    ///     files, names ending in "~", ".dpkg-*", ".rpm*", ".swp", and non-executables (logged at debug).
    ///   - defaultTimeout: seconds allowed to each directory hook.
    ///   - baseEnvironment: the parent environment the caller wants hooks to see.
    ///   - logger: where the one-line-per-hook results go.
    public init(hooks: [DeployHook], directory: String?, defaultTimeout: Double, baseEnvironment: [String: String], logger: Logger) {
        self.hooks = hooks
        self.directory = directory
        self.defaultTimeout = defaultTimeout
        self.baseEnvironment = baseEnvironment
        self.logger = logger
    }

    /// The configured hooks followed by the directory's, as they would run now (for display).
    public func resolvedHooks() -> [DeployHook] {
        guard let directory else { return hooks }
        do {
            let listing = try HookDirectory.list(directory)
            for skipped in listing.skipped {
                logger.debug("skipping deploy hook file \(skipped)", metadata: ["hook.directory": "\(directory)"])
            }
            return hooks + listing.executables.map { DeployHook(kind: .executable(path: $0), timeout: defaultTimeout) }
        } catch {
            if error.isMissing {
                logger.debug("no deploy hook directory at \(directory)")
            } else {
                logger.warning("\(error)", metadata: ["hook.directory": "\(directory)"])
            }
            return hooks
        }
    }

    /// Runs every hook one after another (all of them, even after a failure) with the base environment plus
    /// ``DeployEvent/environment``, logging one line per hook: its outcome, and on failure the last lines of
    /// its output. Never throws.
    /// - Parameter event: what was installed.
    /// - Returns: one result per hook, in the order they ran.
    public func run(_ event: DeployEvent) async -> [HookResult] {
        let environment = ProcessRunner.mergedEnvironment(baseEnvironment, event.environment)
        var results: [HookResult] = []
        for hook in resolvedHooks() {
            let (executable, arguments) = hook.commandLine
            let result = await ProcessRunner.run(
                executable: executable, arguments: arguments,
                environment: environment, timeout: hook.timeout
            )
            log(HookResult(hook: hook, result: result), event: event)
            results.append(HookResult(hook: hook, result: result))
        }
        return results
    }

    private func log(_ hookResult: HookResult, event: DeployEvent) {
        let result = hookResult.result
        let metadata: Logger.Metadata = [
            "cert.name": "\(event.name)",
            "hook.label": "\(hookResult.hook.label)",
            "hook.outcome": "\(result.outcome)",
            "hook.duration": "\(SecondsFormat.string(result.duration))",
        ]
        if hookResult.succeeded {
            logger.info("deploy hook \(hookResult.hook.label) \(result.outcome) after \(SecondsFormat.string(result.duration)) s", metadata: metadata)
            return
        }
        let tail = result.lastOutputLines(Self.failureOutputLines).map { line in
            line.count > 200 ? String(line.prefix(197)) + "..." : line
        }
        var message = "deploy hook \(hookResult.hook.label) for \(event.name) \(result.outcome)"
        if !tail.isEmpty {
            message += "; last output: " + tail.joined(separator: " | ")
        }
        logger.error("\(message)", metadata: metadata)
    }
}
