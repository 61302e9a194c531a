import Crypto
import Foundation

/// A parsed and signature-checkable flattened JWS, as the fake server sees it.
struct FakeACMEJWS {
    struct ProtectedHeader: Decodable {
        let alg: String?
        let nonce: String?
        let url: String?
        let kid: String?
        let jwk: JWK?
    }

    struct JWK: Decodable, Equatable {
        let kty: String?
        let crv: String?
        let x: String?
        let y: String?
    }

    private struct Flattened: Decodable {
        let protected: String
        let payload: String
        let signature: String
    }

    /// Why a body is not a usable JWS; the text becomes a problem `detail`.
    struct Malformed: Error {
        let detail: String
    }

    let header: ProtectedHeader
    /// The decoded payload bytes (empty for POST-as-GET).
    let payload: [UInt8]
    private let signingInput: String
    private let signature: [UInt8]

    init(body: [UInt8]) throws(Malformed) {
        guard let flattened = try? JSONDecoder().decode(Flattened.self, from: Data(body)) else {
            throw Malformed(detail: "request body is not a flattened JWS (protected, payload, signature)")
        }
        guard let protectedBytes = Base64URL.decode(flattened.protected),
              let header = try? JSONDecoder().decode(ProtectedHeader.self, from: Data(protectedBytes))
        else {
            throw Malformed(detail: "JWS protected header is not base64url JSON")
        }
        guard let payload = Base64URL.decode(flattened.payload) else {
            throw Malformed(detail: "JWS payload is not base64url")
        }
        guard let signature = Base64URL.decode(flattened.signature) else {
            throw Malformed(detail: "JWS signature is not base64url")
        }
        self.header = header
        self.payload = payload
        self.signingInput = flattened.protected + "." + flattened.payload
        self.signature = signature
    }

    /// Turns a JWK into a P-256 public key, or explains why not.
    static func publicKey(from jwk: JWK) throws(Malformed) -> P256.Signing.PublicKey {
        guard jwk.kty == "EC", jwk.crv == "P-256" else {
            throw Malformed(detail: "JWK must be an EC P-256 key (kty \(jwk.kty ?? "-"), crv \(jwk.crv ?? "-"))")
        }
        guard let x = jwk.x.flatMap(Base64URL.decode), let y = jwk.y.flatMap(Base64URL.decode),
              x.count == 32, y.count == 32,
              let key = try? P256.Signing.PublicKey(x963Representation: [0x04] + x + y)
        else {
            throw Malformed(detail: "JWK x/y are not a valid P-256 point (32-byte base64url coordinates)")
        }
        return key
    }

    /// Whether the ES256 signature (raw r||s) over `protected.payload` verifies with `key`.
    func isSignatureValid(for key: P256.Signing.PublicKey) -> Bool {
        guard signature.count == 64,
              let ecdsa = try? P256.Signing.ECDSASignature(rawRepresentation: signature)
        else { return false }
        return key.isValidSignature(ecdsa, for: Data(signingInput.utf8))
    }

    /// The RFC 7638 thumbprint of a P-256 key; identifies an account.
    static func thumbprint(of key: P256.Signing.PublicKey) -> String {
        TestJWS.thumbprint(of: key)
    }
}
