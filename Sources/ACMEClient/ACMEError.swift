import ACMEProtocol
import Foundation

/// Why an ACME operation failed, with the URL involved and the server's `Retry-After` when it sent one.
public struct ACMEError: Error, Sendable, CustomStringConvertible {
    public enum Kind: Sendable {
        /// The server answered with a problem document.
        case problem(ACMEProblem)
        /// The server answered an unexpected HTTP status without a problem document.
        case unexpectedStatus(Int, body: String)
        /// The server could not be reached (connection refused, TLS failure, timeout).
        case transport(String)
        /// The response did not parse.
        case malformedResponse(String)
        /// An authorization ended `invalid`: the CA could not validate the challenge.
        case authorizationFailed(domain: String, ACMEProblem?)
        /// The order ended `invalid`.
        case orderFailed(ACMEProblem?)
        /// The CA offered no challenge type this certificate is configured to answer.
        case noUsableChallenge(domain: String, wanted: String, offered: [String])
        /// The solver could not publish or serve the challenge response.
        case solverFailed(domain: String, reason: String)
        /// The order did not finish within the configured order timeout.
        case timedOut(String)
        /// The configured profile is not one the CA advertises.
        case profileNotOffered(String, offered: [String])
        /// A rule of this client (bad token from the CA, missing URL in the directory, ...).
        case protocolViolation(String)
    }

    public var kind: Kind
    /// The URL of the request that failed, when there was one.
    public var url: String?
    /// Seconds the server asked us to wait (429/503 `Retry-After`).
    public var retryAfter: Double?

    public init(_ kind: Kind, url: String? = nil, retryAfter: Double? = nil) {
        self.kind = kind
        self.url = url
        self.retryAfter = retryAfter
    }

    /// The problem document's kind, when the server sent one.
    public var problemKind: ACMEProblemKind? {
        switch kind {
        case .problem(let problem): problem.kind
        case .authorizationFailed(_, let problem), .orderFailed(let problem): problem?.kind
        default: nil
        }
    }

    /// Whether retrying the same request later could succeed without any change on our side.
    public var isTransient: Bool {
        switch kind {
        case .problem(let problem): problem.kind.isTransient
        case .unexpectedStatus(let status, _): status >= 500 || status == 429
        case .transport, .timedOut: true
        default: false
        }
    }

    public var description: String {
        var text: String
        switch kind {
        case .problem(let problem): text = "ACME server error \(problem)"
        case .unexpectedStatus(let status, let body): text = "unexpected HTTP \(status) from ACME server" + (body.isEmpty ? "" : ": \(body)")
        case .transport(let reason): text = "cannot reach ACME server: \(reason)"
        case .malformedResponse(let reason): text = "malformed ACME response: \(reason)"
        case .authorizationFailed(let domain, let problem):
            text = "validation of \(domain) failed" + (problem.map { ": \($0)" } ?? "")
        case .orderFailed(let problem): text = "order failed" + (problem.map { ": \($0)" } ?? "")
        case .noUsableChallenge(let domain, let wanted, let offered):
            text = "CA offers no \(wanted) challenge for \(domain) (offered: \(offered.joined(separator: ", ")))"
        case .solverFailed(let domain, let reason): text = "cannot answer challenge for \(domain): \(reason)"
        case .timedOut(let what): text = "timed out: \(what)"
        case .profileNotOffered(let profile, let offered):
            text = "profile '\(profile)' is not offered by the CA (offered: \(offered.isEmpty ? "none" : offered.joined(separator: ", ")))"
        case .protocolViolation(let reason): text = "ACME protocol violation: \(reason)"
        }
        if let url { text += " [\(url)]" }
        if let retryAfter { text += " (retry after \(Int(exactly: retryAfter.rounded(.up)).map(String.init) ?? "\(retryAfter)") s)" }
        return text
    }
}

extension ACMEError {
    init(_ error: ACMEProtocolError, url: String?) {
        self.init(Kind.malformedResponse(error.description), url: url, retryAfter: nil)
    }
}
