import CertHooks
import CertStore
import CertkeeperConfig
import Logging

/// The deploy hooks that run after a certificate changes: `hooks.deploy`, then the certificate's own, then
/// `hooks.directory` — the same list whether the certificate was renewed here or pulled from a peer.
public struct DeployPlan: Sendable {
    /// The configuration the hooks come from.
    public let configuration: CertkeeperConfiguration
    /// The environment hooks inherit (PATH and friends).
    public let environment: [String: String]

    /// Creates a plan.
    public init(configuration: CertkeeperConfiguration, environment: [String: String]) {
        self.configuration = configuration
        self.environment = environment
    }

    /// Runs the hooks for a newly installed certificate.
    /// - Returns: The labels of the hooks that failed (empty when all succeeded).
    public func run(spec: CertificateSpec, meta: CertificateMeta, liveDirectory: String, logger: Logger) async -> [String] {
        let hooks = (configuration.hooks.deploy + spec.deployHooks).map { command in
            DeployHook(kind: .shell(command.command), timeout: command.timeout ?? configuration.hooks.timeout)
        }
        let runner = DeployHookRunner(
            hooks: hooks, directory: configuration.hooks.directory, defaultTimeout: configuration.hooks.timeout,
            baseEnvironment: environment, logger: logger)
        let event = DeployEvent(
            name: spec.name, liveDirectory: liveDirectory, domains: meta.domains, serial: meta.serial,
            notAfter: meta.notAfter, issuedBy: meta.issuedBy)
        return await runner.run(event).failures.map(\.hook.label)
    }
}
