import Crypto
import Foundation

/// Challenge types certkeeper can answer.
public enum ChallengeType: String, Sendable, CaseIterable {
    case http01 = "http-01"
    case dns01 = "dns-01"
}

/// Key authorizations (RFC 8555 §8.1) and what each challenge type publishes.
public enum KeyAuthorization {
    /// `token + "." + thumbprint`: the body an http-01 responder serves.
    public static func http01(token: String, thumbprint: String) -> String {
        "\(token).\(thumbprint)"
    }

    /// base64url(SHA-256(key authorization)): the TXT value dns-01 publishes at `_acme-challenge.<domain>`.
    public static func dns01TXTValue(token: String, thumbprint: String) -> String {
        Base64URL.encode(Array(SHA256.hash(data: Array(http01(token: token, thumbprint: thumbprint).utf8))))
    }

    /// The DNS name dns-01 publishes under: `_acme-challenge.` + the domain without any `*.` prefix.
    public static func dns01RecordName(domain: String) -> String {
        "_acme-challenge." + (domain.hasPrefix("*.") ? String(domain.dropFirst(2)) : domain)
    }

    /// The URL path an http-01 responder serves the key authorization at.
    public static func http01Path(token: String) -> String {
        "/.well-known/acme-challenge/\(token)"
    }

    /// Tokens must be base64url (RFC 8555 §8.3): anything else could escape a webroot or a URL path.
    public static func isValidToken(_ token: String) -> Bool {
        !token.isEmpty && token.count <= 256 && token.utf8.allSatisfy { byte in
            (byte >= 0x30 && byte <= 0x39) || (byte >= 0x41 && byte <= 0x5A) || (byte >= 0x61 && byte <= 0x7A) || byte == 0x2D || byte == 0x5F
        }
    }
}
