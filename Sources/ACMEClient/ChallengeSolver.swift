import ACMEProtocol

/// Publishes and withdraws the answer to one challenge type (lego's `challenge.Provider`).
///
/// Contract: `present` returns once the CA can see the answer (for dns-01 after any propagation delay);
/// `cleanUp` is called exactly once after every successful `present`, whatever the outcome, and never throws.
/// Implementations are called concurrently for different domains and must be safe for that.
public protocol ChallengeSolver: Sendable {
    /// The challenge type this solver answers.
    var challengeType: ChallengeType { get }
    /// Makes `keyAuthorization` visible to the CA for `domain`.
    func present(domain: String, token: String, keyAuthorization: String) async throws
    /// Removes what `present` published.
    func cleanUp(domain: String, token: String, keyAuthorization: String) async
}
