import ACMEProtocol

/// Answers http-01 by publishing nothing: the daemons' `mode: http` proxy frontends answer every token with
/// `token + "." + thumbprint` of the ACME account they hold (peer sync replicates it), so any node the CA's
/// vantage points reach answers, with no per-challenge state (acme.sh `--stateless`).
///
/// `present` only checks that the token is safe to appear in a URL path; the renewer then asks the CA to validate.
public struct StatelessHTTP01Solver: ChallengeSolver {
    public var challengeType: ChallengeType { .http01 }

    /// Creates the solver.
    public init() {}

    /// Checks the token; nothing is published.
    /// - Throws: `ACMEError` (`protocolViolation`) for a token that is not base64url.
    public func present(domain: String, token: String, keyAuthorization: String) async throws {
        guard KeyAuthorization.isValidToken(token) else { throw ACMEError(.protocolViolation("token is not base64url")) }
    }

    /// Nothing to withdraw.
    public func cleanUp(domain: String, token: String, keyAuthorization: String) async {}
}
