import Foundation

/// Facts recorded next to each installed version (`meta.json`).
///
/// Dates are encoded as ISO 8601 strings (`2026-01-02T03:04:05Z`) whatever the encoder's date strategy,
/// so the file reads the same when another module embeds a meta in its own JSON.
public struct CertificateMeta: Codable, Sendable, Equatable {
    /// The certificate name (the `live/<name>` entry).
    public var name: String
    /// The archive version number (1, 2, …).
    public var version: Int
    /// The leaf's subject alternative names: every dNSName, then every iPAddress as text.
    public var domains: [String]
    /// The serial number as lowercase hex without colons, leading zero bytes stripped (even digit count).
    public var serial: String
    /// The start of the leaf's validity.
    public var notBefore: Date
    /// The end of the leaf's validity.
    public var notAfter: Date
    /// Lowercase hex SHA-256 of the leaf's DER.
    public var sha256: String
    /// The issuer distinguished name as RFC 4514 text, e.g. `CN=R10,O=Let's Encrypt,C=US`.
    public var issuer: String
    /// The leaf key type: `ec256`, `ec384`, `ec521`, `rsa2048`, `rsa3072`, `rsa4096`, `ed25519`.
    public var keyType: String
    /// The node that issued or installed this version.
    public var issuedBy: String
    /// When this version was installed (whole seconds).
    public var installedAt: Date
    /// The RFC 9773 ARI certificate identifier, `base64url(AKI keyIdentifier) "." base64url(serial DER bytes)`;
    /// `nil` when the leaf has no authority key identifier.
    public var ariCertID: String?

    /// Creates a meta record.
    public init(
        name: String, version: Int, domains: [String], serial: String, notBefore: Date, notAfter: Date,
        sha256: String, issuer: String, keyType: String, issuedBy: String, installedAt: Date, ariCertID: String?
    ) {
        self.name = name
        self.version = version
        self.domains = domains
        self.serial = serial
        self.notBefore = notBefore
        self.notAfter = notAfter
        self.sha256 = sha256
        self.issuer = issuer
        self.keyType = keyType
        self.issuedBy = issuedBy
        self.installedAt = installedAt
        self.ariCertID = ariCertID
    }

    private enum CodingKeys: String, CodingKey {
        case name, version, domains, serial, notBefore, notAfter, sha256, issuer, keyType, issuedBy, installedAt, ariCertID
    }

    /// Decodes a meta record; dates must be ISO 8601 strings.
    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        name = try c.decode(String.self, forKey: .name)
        version = try c.decode(Int.self, forKey: .version)
        domains = try c.decode([String].self, forKey: .domains)
        serial = try c.decode(String.self, forKey: .serial)
        notBefore = try ISO8601.decode(c, .notBefore)
        notAfter = try ISO8601.decode(c, .notAfter)
        sha256 = try c.decode(String.self, forKey: .sha256)
        issuer = try c.decode(String.self, forKey: .issuer)
        keyType = try c.decode(String.self, forKey: .keyType)
        issuedBy = try c.decode(String.self, forKey: .issuedBy)
        installedAt = try ISO8601.decode(c, .installedAt)
        ariCertID = try c.decodeIfPresent(String.self, forKey: .ariCertID)
    }

    /// Encodes a meta record with ISO 8601 date strings.
    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(name, forKey: .name)
        try c.encode(version, forKey: .version)
        try c.encode(domains, forKey: .domains)
        try c.encode(serial, forKey: .serial)
        try c.encode(ISO8601.string(notBefore), forKey: .notBefore)
        try c.encode(ISO8601.string(notAfter), forKey: .notAfter)
        try c.encode(sha256, forKey: .sha256)
        try c.encode(issuer, forKey: .issuer)
        try c.encode(keyType, forKey: .keyType)
        try c.encode(issuedBy, forKey: .issuedBy)
        try c.encode(ISO8601.string(installedAt), forKey: .installedAt)
        try c.encodeIfPresent(ariCertID, forKey: .ariCertID)
    }
}

/// ISO 8601 date text in UTC, whole seconds; decoding also accepts fractional seconds.
enum ISO8601 {
    static func string(_ date: Date) -> String {
        date.formatted(Date.ISO8601FormatStyle(timeZone: TimeZone(identifier: "UTC")!))
    }

    static func date(_ text: String) -> Date? {
        if let date = try? Date.ISO8601FormatStyle().parse(text) { return date }
        return try? Date.ISO8601FormatStyle(includingFractionalSeconds: true).parse(text)
    }

    static func decode<K: CodingKey>(_ container: KeyedDecodingContainer<K>, _ key: K) throws -> Date {
        let text = try container.decode(String.self, forKey: key)
        guard let date = date(text) else {
            throw DecodingError.dataCorruptedError(
                forKey: key, in: container, debugDescription: "\(String(reflecting: text)) is not an ISO 8601 date")
        }
        return date
    }
}
