import ACMEClient
import ACMEProtocol
import CertHooks
import Durations
import Foundation
import Logging

/// Answers dns-01 by calling an operator's hook: `hook present` then, after validation, `hook cleanup`.
///
/// The hook sees the record in environment variables under certkeeper's names (`CERTKEEPER_DNS_DOMAIN`,
/// `CERTKEEPER_DNS_RECORD`, `CERTKEEPER_DNS_VALUE`, `CERTKEEPER_DNS_TOKEN`) and certbot's manual-hook names
/// (`CERTBOT_DOMAIN`, `CERTBOT_VALIDATION`, `CERTBOT_TOKEN`), so existing DNS hook scripts keep working.
public struct DNS01HookSolver: ChallengeSolver {
    public let hook: String
    public let propagationDelay: Double
    public let timeout: Double
    public let allDomains: [String]
    public let baseEnvironment: [String: String]
    let logger: Logger

    public var challengeType: ChallengeType { .dns01 }

    public init(hook: String, propagationDelay: Double, timeout: Double, allDomains: [String], baseEnvironment: [String: String], logger: Logger) {
        self.hook = hook
        self.propagationDelay = propagationDelay
        self.timeout = timeout
        self.allDomains = allDomains
        self.baseEnvironment = baseEnvironment
        self.logger = logger
    }

    /// Errors from the hook, one line.
    public struct HookFailed: Error, CustomStringConvertible {
        public var description: String
    }

    public func present(domain: String, token: String, keyAuthorization: String) async throws {
        let result = await invoke(.present, domain: domain, token: token, keyAuthorization: keyAuthorization)
        guard result.outcome.succeeded else {
            let tail = result.lastOutputLines(3).joined(separator: " | ")
            throw HookFailed(description: "dns-01 hook \(hook) present \(result.outcome)" + (tail.isEmpty ? "" : ": \(tail)"))
        }
        if propagationDelay > 0 {
            try await Task.sleep(for: .clampedSeconds(propagationDelay))
        }
    }

    public func cleanUp(domain: String, token: String, keyAuthorization: String) async {
        let result = await invoke(.cleanup, domain: domain, token: token, keyAuthorization: keyAuthorization)
        if !result.outcome.succeeded {
            logger.warning("dns-01 cleanup hook failed; the TXT record may remain", metadata: ["acme.domain": "\(domain)", "hook.outcome": "\(result.outcome)"])
        }
    }

    func invoke(_ phase: DNSChallengeEvent.Phase, domain: String, token: String, keyAuthorization: String) async -> ProcessResult {
        let thumbprint = String(keyAuthorization.split(separator: ".").last ?? "")
        let value = KeyAuthorization.dns01TXTValue(token: token, thumbprint: thumbprint)
        let event = DNSChallengeEvent(phase: phase, domain: domain, validation: value, allDomains: allDomains, remainingChallenges: 0)
        var environment = ProcessRunner.mergedEnvironment(baseEnvironment, event.environment)
        environment["CERTBOT_TOKEN"] = token
        environment["CERTKEEPER_DNS_TOKEN"] = token
        environment["CERTKEEPER_DNS_DOMAIN"] = event.domain
        logger.debug("running dns-01 hook", metadata: ["acme.domain": "\(domain)", "hook.phase": "\(phase.rawValue)"])
        return await ProcessRunner.run(executable: hook, arguments: [phase.rawValue], environment: environment, timeout: timeout)
    }
}
