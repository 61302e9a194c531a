import Foundation

/// The ACME directory (RFC 8555 §7.1.1), with ARI's `renewalInfo` (RFC 9773) and profiles in `meta`.
public struct ACMEDirectory: Codable, Sendable, Equatable {
    public var newNonce: String
    public var newAccount: String
    public var newOrder: String
    public var revokeCert: String?
    public var keyChange: String?
    public var renewalInfo: String?
    public var meta: Meta?

    public struct Meta: Codable, Sendable, Equatable {
        public var termsOfService: String?
        public var externalAccountRequired: Bool?
        /// Profile name → human description (draft-aaron-acme-profiles).
        public var profiles: [String: String]?
    }

    public init(newNonce: String, newAccount: String, newOrder: String, revokeCert: String? = nil, keyChange: String? = nil, renewalInfo: String? = nil, meta: Meta? = nil) {
        self.newNonce = newNonce
        self.newAccount = newAccount
        self.newOrder = newOrder
        self.revokeCert = revokeCert
        self.keyChange = keyChange
        self.renewalInfo = renewalInfo
        self.meta = meta
    }
}

/// An identifier in an order or authorization.
public struct ACMEIdentifier: Codable, Sendable, Hashable {
    public var type: String
    public var value: String

    public init(type: String = "dns", value: String) {
        self.type = type
        self.value = value
    }
}

/// An account object (RFC 8555 §7.1.2).
public struct ACMEAccount: Codable, Sendable, Equatable {
    public var status: String
    public var contact: [String]?
}

/// The `newAccount` request payload.
public struct NewAccountRequest: Encodable, Sendable {
    public var termsOfServiceAgreed: Bool = true
    public var contact: [String]?
    public var onlyReturnExisting: Bool?
    public var externalAccountBinding: ExternalAccountBindingJWS?

    public init(contact: [String]?, onlyReturnExisting: Bool? = nil, externalAccountBinding: ExternalAccountBindingJWS? = nil) {
        self.contact = contact
        self.onlyReturnExisting = onlyReturnExisting
        self.externalAccountBinding = externalAccountBinding
    }
}

/// The flattened EAB JWS as it is embedded inside `newAccount`.
public struct ExternalAccountBindingJWS: Encodable, Sendable {
    public var protected: String
    public var payload: String
    public var signature: String

    public init(_ jws: FlattenedJWS) {
        protected = jws.protected
        payload = jws.payload
        signature = jws.signature
    }
}

/// The `newOrder` request payload, with ARI's `replaces` and the profiles draft's `profile`.
public struct NewOrderRequest: Encodable, Sendable, Equatable {
    public var identifiers: [ACMEIdentifier]
    public var replaces: String?
    public var profile: String?

    public init(domains: [String], replaces: String? = nil, profile: String? = nil) {
        identifiers = domains.map { ACMEIdentifier(value: $0) }
        self.replaces = replaces
        self.profile = profile
    }
}

/// Order status values (RFC 8555 §7.1.6).
public enum OrderStatus: String, Codable, Sendable {
    case pending, ready, processing, valid, invalid
}

/// An order object (RFC 8555 §7.1.3).
public struct ACMEOrder: Codable, Sendable, Equatable {
    public var status: OrderStatus
    public var expires: String?
    public var identifiers: [ACMEIdentifier]
    public var authorizations: [String]
    public var finalize: String
    public var certificate: String?
    public var error: ACMEProblem?
    public var profile: String?
    public var replaces: String?
}

/// Authorization status values (RFC 8555 §7.1.6).
public enum AuthorizationStatus: String, Codable, Sendable {
    case pending, valid, invalid, deactivated, expired, revoked
}

/// An authorization object (RFC 8555 §7.1.4).
public struct ACMEAuthorization: Codable, Sendable, Equatable {
    public var identifier: ACMEIdentifier
    public var status: AuthorizationStatus
    public var challenges: [ACMEChallenge]
    public var wildcard: Bool?
}

/// Challenge status values (RFC 8555 §7.1.6).
public enum ChallengeStatus: String, Codable, Sendable {
    case pending, processing, valid, invalid
}

/// A challenge object (RFC 8555 §8).
public struct ACMEChallenge: Codable, Sendable, Equatable {
    public var type: String
    public var url: String
    public var status: ChallengeStatus
    public var token: String?
    public var error: ACMEProblem?
}

/// The `finalize` request payload.
public struct FinalizeRequest: Encodable, Sendable {
    public var csr: String

    public init(csrDER: [UInt8]) { csr = Base64URL.encode(csrDER) }
}

/// The `revokeCert` request payload (RFC 8555 §7.6).
public struct RevocationRequest: Encodable, Sendable {
    public var certificate: String
    public var reason: Int?

    public init(certificateDER: [UInt8], reason: RevocationReason?) {
        certificate = Base64URL.encode(certificateDER)
        self.reason = reason?.rawValue
    }
}

/// CRL reason codes that ACME CAs accept (RFC 5280 §5.3.1).
public enum RevocationReason: Int, Sendable, CaseIterable {
    case unspecified = 0
    case keyCompromise = 1
    case superseded = 4
    case cessationOfOperation = 5

    /// Parses the names operators type: "unspecified", "keyCompromise"/"key-compromise", "superseded", "cessationOfOperation".
    public init?(name: String) {
        let folded = name.lowercased().replacingOccurrences(of: "-", with: "").replacingOccurrences(of: "_", with: "")
        guard let match = Self.allCases.first(where: { String(describing: $0).lowercased() == folded }) else { return nil }
        self = match
    }
}

/// ARI's answer (RFC 9773 §4.2).
public struct RenewalInfo: Codable, Sendable, Equatable {
    public struct Window: Codable, Sendable, Equatable {
        public var start: Date
        public var end: Date

        public init(start: Date, end: Date) {
            self.start = start
            self.end = end
        }
    }

    public var suggestedWindow: Window
    public var explanationURL: String?

    public init(suggestedWindow: Window, explanationURL: String? = nil) {
        self.suggestedWindow = suggestedWindow
        self.explanationURL = explanationURL
    }
}

/// JSON coding shared by everything that speaks ACME: RFC 3339 dates with or without fractional seconds.
public enum ACMEJSON {
    /// A decoder for ACME response bodies.
    public static func decoder() -> JSONDecoder {
        let decoder = JSONDecoder()
        decoder.dateDecodingStrategy = .custom { decoder in
            let container = try decoder.singleValueContainer()
            let text = try container.decode(String.self)
            guard let date = RFC3339.parse(text) else {
                throw DecodingError.dataCorruptedError(in: container, debugDescription: "not an RFC 3339 date: \(text)")
            }
            return date
        }
        return decoder
    }

    /// An encoder for ACME request payloads.
    public static func encoder() -> JSONEncoder {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return encoder
    }

    /// Decodes `T` from a response body, mapping failure to a typed error naming what was expected.
    public static func decode<T: Decodable>(_ type: T.Type, from body: [UInt8], what: String) throws(ACMEProtocolError) -> T {
        do {
            return try decoder().decode(T.self, from: Data(body))
        } catch {
            throw .malformedResponse("\(what): \(error)")
        }
    }

    /// Encodes a request payload.
    public static func encode<T: Encodable>(_ value: T) throws(ACMEProtocolError) -> [UInt8] {
        do {
            return Array(try encoder().encode(value))
        } catch {
            throw .malformedResponse("cannot encode request: \(error)")
        }
    }
}

/// RFC 3339 timestamps as ACME servers write them.
public enum RFC3339 {
    /// Parses "2026-01-02T03:04:05Z", with optional fractional seconds and numeric offsets.
    public static func parse(_ text: String) -> Date? {
        // date-fullyear = 4DIGIT: ISO8601DateFormatter reads longer years (and ignores a sign), overflowing them
        // into dates a million years off.
        // At most nanoseconds and an offset (35 characters): ICU's parser, behind ISO8601DateFormatter, traps
        // (SIGFPE) on a fraction of a hundred digits, which the acme fuzz target found.
        guard text.utf8.count <= 40 else { return nil }
        let year = Array(text.utf8.prefix(5))
        guard year.count == 5, year[4] == UInt8(ascii: "-"), year[..<4].allSatisfy({ (UInt8(ascii: "0")...UInt8(ascii: "9")).contains($0) }) else {
            return nil
        }
        let withFraction = ISO8601DateFormatter()
        withFraction.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        if let date = withFraction.date(from: text) { return date }
        let plain = ISO8601DateFormatter()
        plain.formatOptions = [.withInternetDateTime]
        if let date = plain.date(from: text) { return date }
        // Go servers print up to nanoseconds, which ISO8601DateFormatter rejects: trim to milliseconds.
        if let dot = text.firstIndex(of: ".") {
            let digitsEnd = text[text.index(after: dot)...].firstIndex(where: { !$0.isNumber }) ?? text.endIndex
            let digits = text[text.index(after: dot)..<digitsEnd].prefix(3)
            let trimmed = String(text[..<dot]) + "." + digits + String(text[digitsEnd...])
            return withFraction.date(from: trimmed)
        }
        return nil
    }

    /// Formats a date as "2026-01-02T03:04:05Z".
    public static func format(_ date: Date) -> String {
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withInternetDateTime]
        return formatter.string(from: date)
    }
}
