/// One dns-01 challenge handed to an operator's DNS hook, using certbot's manual-hook variable names so
/// existing `--manual-auth-hook` / `--manual-cleanup-hook` scripts keep working. Run it with
/// ``ProcessRunner/run(executable:arguments:environment:timeout:killGrace:workingDirectory:)``.
public struct DNSChallengeEvent: Sendable, Equatable {
    /// Whether the TXT record is to be created or removed.
    public enum Phase: String, Sendable, Equatable {
        /// Create the TXT record (certbot's auth hook).
        case present
        /// Remove it again (certbot's cleanup hook).
        case cleanup
    }

    /// Create or remove.
    public var phase: Phase
    /// The identifier being validated, without a wildcard's "*." (certbot passes the base name too).
    public var domain: String
    /// The TXT record value: base64url(SHA-256(key authorization)).
    public var validation: String
    /// Every identifier of the order.
    public var allDomains: [String]
    /// How many challenges of this order come after this one.
    public var remainingChallenges: Int
    /// What the present hook printed, passed to the cleanup hook (certbot's `CERTBOT_AUTH_OUTPUT`).
    public var authOutput: String?

    /// Creates an event.
    /// - Parameters:
    ///   - phase: create or remove.
    ///   - domain: the identifier; a leading "*." is dropped.
    ///   - validation: the TXT value.
    ///   - allDomains: every identifier of the order.
    ///   - remainingChallenges: challenges still to come after this one.
    ///   - authOutput: the present hook's output, for cleanup.
    public init(phase: Phase, domain: String, validation: String, allDomains: [String], remainingChallenges: Int, authOutput: String? = nil) {
        self.phase = phase
        self.domain = domain.hasPrefix("*.") ? String(domain.dropFirst(2)) : domain
        self.validation = validation
        self.allDomains = allDomains
        self.remainingChallenges = remainingChallenges
        self.authOutput = authOutput
    }

    /// The TXT record's name: `_acme-challenge.<domain>`.
    public var recordName: String { "_acme-challenge.\(domain)" }

    /// `CERTBOT_DOMAIN`, `CERTBOT_VALIDATION`, `CERTBOT_ALL_DOMAINS` (comma separated, as certbot),
    /// `CERTBOT_REMAINING_CHALLENGES`, `CERTBOT_AUTH_OUTPUT` (cleanup only), plus `CERTKEEPER_EVENT`
    /// (`dns-present` or `dns-cleanup`), `CERTKEEPER_DNS_RECORD` and `CERTKEEPER_DNS_VALUE`.
    public var environment: [String: String] {
        var variables = [
            "CERTBOT_DOMAIN": domain,
            "CERTBOT_VALIDATION": validation,
            "CERTBOT_ALL_DOMAINS": allDomains.joined(separator: ","),
            "CERTBOT_REMAINING_CHALLENGES": String(remainingChallenges),
            "CERTKEEPER_EVENT": "dns-\(phase.rawValue)",
            "CERTKEEPER_DNS_RECORD": recordName,
            "CERTKEEPER_DNS_VALUE": validation,
        ]
        if phase == .cleanup, let authOutput { variables["CERTBOT_AUTH_OUTPUT"] = authOutput }
        return variables
    }
}
