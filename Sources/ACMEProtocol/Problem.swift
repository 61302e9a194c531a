import Foundation

/// An RFC 7807 problem document as ACME servers send them (`application/problem+json`).
public struct ACMEProblem: Codable, Sendable, Equatable, CustomStringConvertible {
    public var type: String
    public var detail: String?
    public var status: Int?
    public var subproblems: [ACMEProblem]?
    public var identifier: ACMEIdentifier?

    public init(type: String, detail: String? = nil, status: Int? = nil, subproblems: [ACMEProblem]? = nil, identifier: ACMEIdentifier? = nil) {
        self.type = type
        self.detail = detail
        self.status = status
        self.subproblems = subproblems
        self.identifier = identifier
    }

    /// The kind, from the `urn:ietf:params:acme:error:` type.
    public var kind: ACMEProblemKind { ACMEProblemKind(type: type) }

    public var description: String {
        var text = "\(kind)"
        if let detail, !detail.isEmpty { text += ": \(detail)" }
        if let subproblems, !subproblems.isEmpty {
            text += " (" + subproblems.map { sub in
                (sub.identifier.map { "\($0.value): " } ?? "") + "\(sub.kind)" + (sub.detail.map { " \($0)" } ?? "")
            }.joined(separator: "; ") + ")"
        }
        return text
    }
}

/// The ACME error types (RFC 8555 §6.7, RFC 9773, the profiles draft), so callers can switch on them.
public enum ACMEProblemKind: Sendable, Equatable, CustomStringConvertible {
    case accountDoesNotExist, alreadyReplaced, alreadyRevoked, badCSR, badNonce, badPublicKey, badRevocationReason
    case badSignatureAlgorithm, caa, compound, connection, dns, externalAccountRequired, incorrectResponse
    case invalidContact, invalidProfile, malformed, orderNotReady, rateLimited, rejectedIdentifier, serverInternal
    case tls, unauthorized, unsupportedContact, unsupportedIdentifier, userActionRequired
    /// A type outside the ACME namespace or one this client does not know.
    case other(String)

    static let prefix = "urn:ietf:params:acme:error:"
    static let known: [String: ACMEProblemKind] = [
        "accountDoesNotExist": .accountDoesNotExist, "alreadyReplaced": .alreadyReplaced, "alreadyRevoked": .alreadyRevoked,
        "badCSR": .badCSR, "badNonce": .badNonce, "badPublicKey": .badPublicKey, "badRevocationReason": .badRevocationReason,
        "badSignatureAlgorithm": .badSignatureAlgorithm, "caa": .caa, "compound": .compound, "connection": .connection,
        "dns": .dns, "externalAccountRequired": .externalAccountRequired, "incorrectResponse": .incorrectResponse,
        "invalidContact": .invalidContact, "invalidProfile": .invalidProfile, "malformed": .malformed,
        "orderNotReady": .orderNotReady, "rateLimited": .rateLimited, "rejectedIdentifier": .rejectedIdentifier,
        "serverInternal": .serverInternal, "tls": .tls, "unauthorized": .unauthorized,
        "unsupportedContact": .unsupportedContact, "unsupportedIdentifier": .unsupportedIdentifier,
        "userActionRequired": .userActionRequired,
    ]

    /// Maps a problem `type` URN to its kind.
    public init(type: String) {
        if type.hasPrefix(Self.prefix), let kind = Self.known[String(type.dropFirst(Self.prefix.count))] {
            self = kind
        } else {
            self = .other(type)
        }
    }

    public var description: String {
        if case .other(let type) = self { return type }
        return Self.known.first(where: { $0.value == self })?.key ?? "unknown"
    }

    /// Whether the same request may succeed if simply sent again later (as opposed to needing a change).
    /// `badNonce` is retried at once by the transport; `rateLimited` and `serverInternal` after a delay.
    public var isTransient: Bool {
        switch self {
        case .badNonce, .rateLimited, .serverInternal: true
        default: false
        }
    }
}

/// Errors from the pure protocol layer: keys, encodings, responses that do not parse.
public enum ACMEProtocolError: Error, Sendable, Equatable, CustomStringConvertible {
    case unsupportedKey(String)
    case signingFailed(String)
    case malformedResponse(String)
    case invalidCertificate(String)

    public var description: String {
        switch self {
        case .unsupportedKey(let reason): "unsupported key: \(reason)"
        case .signingFailed(let reason): "signing failed: \(reason)"
        case .malformedResponse(let reason): "malformed ACME response: \(reason)"
        case .invalidCertificate(let reason): "invalid certificate: \(reason)"
        }
    }
}
