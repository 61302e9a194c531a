import Crypto
import _CryptoExtras
import Foundation

/// The key that signs an ACME account's requests (RFC 8555 §6.2), with its JWK and RFC 7638 thumbprint.
///
/// New accounts use P-256 (ES256). P-384 (ES384) and RSA (RS256) keys are accepted so that accounts imported from
/// other clients (certbot creates RSA account keys) keep working.
public enum AccountKey: Sendable {
    case p256(P256.Signing.PrivateKey)
    case p384(P384.Signing.PrivateKey)
    case rsa(_RSA.Signing.PrivateKey)

    /// Generates a new P-256 account key.
    public static func generate() -> AccountKey { .p256(P256.Signing.PrivateKey()) }

    /// Parses a PEM private key (PKCS#8, SEC1 or PKCS#1).
    /// - Throws: `ACMEProtocolError.unsupportedKey` when the PEM is neither a P-256, P-384 nor RSA key.
    public init(pem: String) throws(ACMEProtocolError) {
        if let key = try? P256.Signing.PrivateKey(pemRepresentation: pem) {
            self = .p256(key)
        } else if let key = try? P384.Signing.PrivateKey(pemRepresentation: pem) {
            self = .p384(key)
        } else if let key = try? _RSA.Signing.PrivateKey(pemRepresentation: pem) {
            guard key.keySizeInBits >= 2048 else { throw .unsupportedKey("RSA account key shorter than 2048 bits") }
            self = .rsa(key)
        } else {
            throw .unsupportedKey("not a PEM P-256, P-384 or RSA private key")
        }
    }

    /// PEM (PKCS#8 for EC keys, PKCS#1 for RSA) for storage with mode 0600.
    public var pemRepresentation: String {
        switch self {
        case .p256(let key): key.pemRepresentation
        case .p384(let key): key.pemRepresentation
        case .rsa(let key): key.pemRepresentation
        }
    }

    /// The JWS `alg` this key signs with.
    public var algorithm: String {
        switch self {
        case .p256: "ES256"
        case .p384: "ES384"
        case .rsa: "RS256"
        }
    }

    /// The public key as a JWK with members in RFC 7638 lexicographic order and no whitespace.
    /// This exact text is both embedded in `newAccount` requests and hashed for the thumbprint.
    public var canonicalJWK: String {
        switch self {
        case .p256(let key):
            let raw = Array(key.publicKey.rawRepresentation)
            return Self.ecJWK(curve: "P-256", x: raw[0..<32], y: raw[32..<64])
        case .p384(let key):
            let raw = Array(key.publicKey.rawRepresentation)
            return Self.ecJWK(curve: "P-384", x: raw[0..<48], y: raw[48..<96])
        case .rsa(let key):
            // getKeyPrimitives cannot fail for a key we hold; fall back to an empty JWK that no CA would accept.
            guard let primitives = try? key.publicKey.getKeyPrimitives() else { return "{}" }
            return Self.rsaJWK(modulus: Array(primitives.modulus), exponent: Array(primitives.publicExponent))
        }
    }

    /// RFC 7638 JWK thumbprint: base64url(SHA-256(canonical JWK)).
    public var thumbprint: String {
        Base64URL.encode(Array(SHA256.hash(data: Array(canonicalJWK.utf8))))
    }

    /// Signs `data` for a JWS: raw r‖s for ECDSA (RFC 7518 §3.4), PKCS#1 v1.5 for RSA.
    public func sign(_ data: [UInt8]) throws(ACMEProtocolError) -> [UInt8] {
        do {
            switch self {
            case .p256(let key): return Array(try key.signature(for: data).rawRepresentation)
            case .p384(let key): return Array(try key.signature(for: data).rawRepresentation)
            case .rsa(let key):
                return Array(try key.signature(for: SHA256.hash(data: data), padding: .insecurePKCS1v1_5).rawRepresentation)
            }
        } catch {
            throw .signingFailed(String(describing: error))
        }
    }

    static func ecJWK(curve: String, x: ArraySlice<UInt8>, y: ArraySlice<UInt8>) -> String {
        #"{"crv":"\#(curve)","kty":"EC","x":"\#(Base64URL.encode(x))","y":"\#(Base64URL.encode(y))"}"#
    }

    /// JWK for an RSA public key; big-endian integers without leading zero bytes (RFC 7518 §6.3.1).
    public static func rsaJWK(modulus: [UInt8], exponent: [UInt8]) -> String {
        let n = Array(modulus.drop(while: { $0 == 0 }))
        let e = Array(exponent.drop(while: { $0 == 0 }))
        return #"{"e":"\#(Base64URL.encode(e))","kty":"RSA","n":"\#(Base64URL.encode(n))"}"#
    }
}
