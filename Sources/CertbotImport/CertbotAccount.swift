import ACMEProtocol
import Crypto
import _CryptoExtras
import Foundation

/// A certbot ACME account, read from `accounts/<server host and path>/<account-id>/`.
public struct CertbotAccount: Sendable, CustomStringConvertible {
    /// certbot's account ID (the directory name).
    public var id: String
    /// The ACME directory URL the account belongs to (the lineages' `server`).
    public var server: String
    /// The account directory, for messages.
    public var directory: String
    /// The account key, converted from `private_key.json`.
    public var key: AccountKey
    /// The registration from `regr.json`.
    public var registration: CertbotRegistration
    /// `creation_dt` from `meta.json`, when present.
    public var createdAt: Date?

    /// Creates an account.
    public init(id: String, server: String, directory: String, key: AccountKey, registration: CertbotRegistration, createdAt: Date?) {
        self.id = id
        self.server = server
        self.directory = directory
        self.key = key
        self.registration = registration
        self.createdAt = createdAt
    }

    /// A summary without the key.
    public var description: String {
        "CertbotAccount(id: \(id), server: \(server), url: \(registration.accountURL), key: \(key.algorithm) <redacted>)"
    }
}

/// `regr.json`: the account URL (`uri`) and, in older certbot versions, the registration body with its contacts.
public struct CertbotRegistration: Sendable, Equatable {
    /// The account URL, the JWS `kid`.
    public var accountURL: String
    /// `body.contact`, e.g. `["mailto:ops@example.com"]` (certbot 2 stores an empty body).
    public var contact: [String]

    /// Creates a registration.
    public init(accountURL: String, contact: [String]) {
        self.accountURL = accountURL
        self.contact = contact
    }

    /// Parses `regr.json`.
    /// - Parameters:
    ///   - json: The file's bytes.
    ///   - path: The file's path, for error messages.
    /// - Throws: ``CertbotImportError`` (`malformed`) when it is not JSON, or `uri` is missing or not an https URL.
    public static func parse(_ json: [UInt8], path: String) throws(CertbotImportError) -> CertbotRegistration {
        struct File: Decodable {
            struct Body: Decodable { var contact: [String]? }
            var uri: String?
            var body: Body?
        }
        let file: File
        do {
            file = try JSONDecoder().decode(File.self, from: Data(json))
        } catch {
            throw CertbotImportError(.malformed, path: path, "not a certbot regr.json: \(JSONProblem.describe(error))")
        }
        guard let uri = file.uri, !uri.isEmpty else {
            throw CertbotImportError(.malformed, path: path, "has no \"uri\" (the account URL)")
        }
        guard let url = URLComponents(string: uri), url.scheme?.lowercased() == "https", url.host?.isEmpty == false else {
            throw CertbotImportError(.malformed, path: path, "\"uri\" \(String(reflecting: String(uri.prefix(200)))) is not an https URL")
        }
        return CertbotRegistration(accountURL: uri, contact: file.body?.contact ?? [])
    }
}

/// `meta.json` of a certbot account.
public enum CertbotAccountMeta {
    /// The account's `creation_dt`, `nil` when absent or not a date.
    /// - Parameter json: The file's bytes.
    /// - Throws: ``CertbotImportError`` (`malformed`) when the file is not JSON.
    public static func creationDate(_ json: [UInt8], path: String) throws(CertbotImportError) -> Date? {
        struct File: Decodable {
            // swiftlint:disable:next identifier_name
            var creation_dt: String?
        }
        let file: File
        do {
            file = try JSONDecoder().decode(File.self, from: Data(json))
        } catch {
            throw CertbotImportError(.malformed, path: path, "not a certbot meta.json: \(JSONProblem.describe(error))")
        }
        guard let text = file.creation_dt else { return nil }
        if let date = try? Date.ISO8601FormatStyle().parse(text) { return date }
        return try? Date.ISO8601FormatStyle(includingFractionalSeconds: true).parse(text)
    }
}

/// Converts certbot's `private_key.json` (a JWK with the private members, written by josepy) into an ``AccountKey``.
///
/// certbot creates RSA account keys (2048 bits by default); EC keys (P-256, P-384) are accepted too. The key is
/// checked: an RSA key is rebuilt from `n`, `e`, `d`, `p`, `q` and BoringSSL's consistency check must pass; an EC
/// key's public point must equal the JWK's `x`, `y`.
public enum CertbotJWK {
    /// Parses and converts a private JWK.
    /// - Parameters:
    ///   - json: The bytes of `private_key.json`.
    ///   - path: The file's path, for error messages (the key material is never quoted).
    /// - Returns: The account key.
    /// - Throws: ``CertbotImportError``: `malformed` when the JSON or a member is not valid, `unsupported` for
    ///   another key type or curve, `inconsistent` when the members do not form one key.
    public static func accountKey(_ json: [UInt8], path: String) throws(CertbotImportError) -> AccountKey {
        struct JWK: Decodable {
            var kty: String?
            var n: String?, e: String?, d: String?, p: String?, q: String?
            var crv: String?, x: String?, y: String?
        }
        let jwk: JWK
        do {
            jwk = try JSONDecoder().decode(JWK.self, from: Data(json))
        } catch {
            throw CertbotImportError(.malformed, path: path, "not a JWK: \(JSONProblem.describe(error))")
        }
        func member(_ name: String, _ value: String?) throws(CertbotImportError) -> [UInt8] {
            guard let value, !value.isEmpty else {
                throw CertbotImportError(.malformed, path: path, "JWK has no \"\(name)\" (a private key needs it)")
            }
            guard let bytes = Base64URL.decode(value), !bytes.isEmpty else {
                throw CertbotImportError(.malformed, path: path, "JWK member \"\(name)\" is not base64url")
            }
            return bytes
        }
        switch jwk.kty {
        case "RSA":
            let n = try member("n", jwk.n), e = try member("e", jwk.e), d = try member("d", jwk.d)
            let p = try member("p", jwk.p), q = try member("q", jwk.q)
            let key: _RSA.Signing.PrivateKey
            do {
                key = try _RSA.Signing.PrivateKey(n: n, e: e, d: d, p: p, q: q)
            } catch {
                throw CertbotImportError(.inconsistent, path: path, "the RSA members do not form a valid key of at least 2048 bits (\(modulusBits(n)) bits)")
            }
            guard let primitives = try? key.publicKey.getKeyPrimitives(),
                  Array(primitives.modulus).drop(while: { $0 == 0 }) == n.drop(while: { $0 == 0 }) else {
                throw CertbotImportError(.inconsistent, path: path, "the rebuilt RSA key has another modulus than the JWK's \"n\"")
            }
            do throws(ACMEProtocolError) {
                return try AccountKey(pem: key.pemRepresentation)
            } catch {
                throw CertbotImportError(.unsupported, path: path, error.description)
            }
        case "EC":
            let d = try member("d", jwk.d), x = try member("x", jwk.x), y = try member("y", jwk.y)
            let key: AccountKey
            let raw: [UInt8]
            do {
                switch jwk.crv {
                case "P-256":
                    let ec = try P256.Signing.PrivateKey(rawRepresentation: d)
                    (key, raw) = (.p256(ec), Array(ec.publicKey.rawRepresentation))
                case "P-384":
                    let ec = try P384.Signing.PrivateKey(rawRepresentation: d)
                    (key, raw) = (.p384(ec), Array(ec.publicKey.rawRepresentation))
                default:
                    throw CertbotImportError(.unsupported, path: path, "EC account key on curve \(jwk.crv ?? "(none)"); certkeeper takes P-256, P-384 or RSA")
                }
            } catch let error as CertbotImportError {
                throw error
            } catch {
                throw CertbotImportError(.inconsistent, path: path, "\"d\" is not a valid \(jwk.crv ?? "EC") private key")
            }
            guard raw == x + y else {
                throw CertbotImportError(.inconsistent, path: path, "the public point of \"d\" differs from the JWK's \"x\" and \"y\"")
            }
            return key
        default:
            throw CertbotImportError(.unsupported, path: path, "JWK key type \(String(reflecting: jwk.kty ?? "(none)")); certkeeper takes RSA or EC account keys")
        }
    }

    private static func modulusBits(_ n: [UInt8]) -> Int {
        let trimmed = n.drop(while: { $0 == 0 })
        guard let first = trimmed.first else { return 0 }
        return (trimmed.count - 1) * 8 + (8 - first.leadingZeroBitCount)
    }
}

/// JSON decoding errors in a few words (Foundation's descriptions run over several lines).
enum JSONProblem {
    static func describe(_ error: any Error) -> String {
        switch error as? DecodingError {
        case .typeMismatch(_, let context), .valueNotFound(_, let context), .keyNotFound(_, let context), .dataCorrupted(let context):
            let where_ = context.codingPath.map(\.stringValue).joined(separator: ".")
            return (where_.isEmpty ? "" : "\(where_): ") + (context.debugDescription.split(separator: "\n").first.map(String.init) ?? "invalid")
        default:
            return "invalid JSON"
        }
    }
}
