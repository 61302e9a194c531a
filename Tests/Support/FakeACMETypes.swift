import ACMEProtocol
import Foundation
import X509

extension FakeACMEServer {
    /// A certificate profile the fake CA offers (draft-aaron-acme-profiles).
    public struct Profile: Sendable {
        /// Text shown in the directory's `meta.profiles`.
        public var description: String
        /// Lifetime of certificates issued under this profile, in seconds.
        public var validity: TimeInterval

        /// Creates a profile.
        public init(description: String, validity: TimeInterval) {
            self.description = description
            self.validity = validity
        }
    }

    /// How the fake server behaves.
    public struct Options: Sendable {
        /// Offered profiles by name; the defaults mirror Let's Encrypt (`classic` 90 days, `shortlived` 160 hours).
        public var profiles: [String: Profile]
        /// The profile used when an order names none.
        public var defaultProfile: String
        /// Problem type for an order naming an unknown profile.
        public var unknownProfileProblemType: String
        /// Whether the directory advertises `renewalInfo` (ARI) and the endpoint answers.
        public var renewalInfoEnabled: Bool
        /// `Retry-After` seconds sent with renewal information.
        public var renewalInfoRetryAfter: Int
        /// How many times an order is reported as `processing` after finalize before it turns `valid`.
        public var processingPolls: Int
        /// The clock used for issuance and expiry dates.
        public var now: @Sendable () -> Date

        /// Creates options with Let's-Encrypt-like defaults.
        public init(
            profiles: [String: Profile] = [
                "classic": Profile(description: "The profile you're accustomed to", validity: 90 * 86400),
                "shortlived": Profile(description: "Short-lived certificates", validity: 160 * 3600),
            ],
            defaultProfile: String = "classic",
            unknownProfileProblemType: String = "urn:ietf:params:acme:error:malformed",
            renewalInfoEnabled: Bool = true,
            renewalInfoRetryAfter: Int = 21600,
            processingPolls: Int = 0,
            now: @escaping @Sendable () -> Date = { Date() }
        ) {
            self.profiles = profiles
            self.defaultProfile = defaultProfile
            self.unknownProfileProblemType = unknownProfileProblemType
            self.renewalInfoEnabled = renewalInfoEnabled
            self.renewalInfoRetryAfter = renewalInfoRetryAfter
            self.processingPolls = processingPolls
            self.now = now
        }
    }

    /// The server's resources, used to aim injected failures.
    public enum Endpoint: String, Sendable, CaseIterable {
        /// `GET /directory`.
        case directory
        /// `HEAD`/`GET /new-nonce`.
        case newNonce
        /// `POST /new-account`.
        case newAccount
        /// `POST /new-order`.
        case newOrder
        /// `POST /acct/<id>`.
        case account
        /// `POST /order/<id>`.
        case order
        /// `POST /order/<id>/finalize`.
        case finalize
        /// `POST /authz/<id>`.
        case authorization
        /// `POST /chall/<id>`.
        case challenge
        /// `POST /cert/<id>`.
        case certificate
        /// `GET /renewal-info/<certID>`.
        case renewalInfo
        /// `POST /revoke-cert`.
        case revokeCert
        /// `POST /key-change` (always refused).
        case keyChange
    }

    /// An ACME identifier (`{"type":"dns","value":"example.org"}`).
    public struct Identifier: Sendable, Hashable, Codable {
        /// `dns` or `ip`.
        public var type: String
        /// The name or address.
        public var value: String

        /// Creates an identifier.
        public init(type: String, value: String) {
            self.type = type
            self.value = value
        }
    }

    /// A newOrder request as the client sent it (after JWS verification).
    public struct RecordedOrder: Sendable {
        /// The requested identifiers.
        public let identifiers: [Identifier]
        /// The ARI `replaces` certID, if any.
        public let replaces: String?
        /// The requested profile, if any.
        public let profile: String?
        /// The account URL (`kid`) that sent it.
        public let account: String
        /// The order URL when accepted; `nil` when rejected.
        public let orderURL: String?
        /// The problem type the order was rejected with; `nil` when accepted.
        public let rejectedWith: String?
    }

    /// One HTTP request the server answered.
    public struct RecordedRequest: Sendable, Equatable {
        /// `GET`, `HEAD` or `POST`.
        public let method: String
        /// The request path, e.g. `/new-order`.
        public let path: String
        /// The response status code.
        public let status: Int

        /// Creates a record (to compare against ``FakeACMEServer/requestLog``).
        public init(method: String, path: String, status: Int) {
            self.method = method
            self.path = path
            self.status = status
        }
    }

    /// A certificate the fake CA issued.
    public struct IssuedCertificate: Sendable {
        /// The leaf.
        public let certificate: Certificate
        /// Its ARI certID (`base64url(AKI).base64url(serial)`).
        public let certID: String
        /// The profile it was issued under.
        public let profile: String
        /// The order it came from.
        public let orderURL: String
        /// The certID this certificate replaced (from the order's `replaces`).
        public let replaces: String?
        /// The revocation reason code, once revoked.
        public let revocationReason: Int?
    }

    /// A suggested renewal window (RFC 9773).
    public struct RenewalWindow: Sendable, Equatable {
        /// Start of the window.
        public let start: Date
        /// End of the window.
        public let end: Date

        /// Creates a window.
        public init(start: Date, end: Date) {
            self.start = start
            self.end = end
        }
    }

    /// The ARI certID of a certificate: `base64url(AKI keyIdentifier) "." base64url(serial DER content bytes)`.
    /// - Throws: ``TestSupportError/certificate(what:reason:)`` when the certificate has no AKI key identifier.
    public static func certID(of certificate: Certificate) throws -> String {
        guard let certID = ARICertificateID.make(for: certificate) else {
            throw TestSupportError.certificate(what: "ARI certID", reason: "certificate has no AKI key identifier")
        }
        return certID
    }

}
