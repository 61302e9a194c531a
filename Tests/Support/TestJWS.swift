import Crypto
import Foundation

/// Builds ES256 flattened JWS requests (RFC 7515 / RFC 8555 §6.2) by hand, independently of certkeeper's own
/// JOSE code, so tests can talk to an ACME server or craft deliberately broken requests.
public enum TestJWS {
    /// The public JWK of a P-256 key as a JSON object: `{"crv":"P-256","kty":"EC","x":…,"y":…}`.
    public static func jwk(of key: P256.Signing.PublicKey) -> [String: String] {
        let point = Array(key.x963Representation)  // 0x04 || x || y
        return [
            "crv": "P-256", "kty": "EC",
            "x": Base64URL.encode(point[1..<33]), "y": Base64URL.encode(point[33..<65]),
        ]
    }

    /// The RFC 7638 JWK thumbprint (base64url SHA-256 of the canonical JWK), as used in key authorizations.
    public static func thumbprint(of key: P256.Signing.PublicKey) -> String {
        let jwk = jwk(of: key)
        let canonical = #"{"crv":"P-256","kty":"EC","x":"\#(jwk["x"]!)","y":"\#(jwk["y"]!)"}"#
        return Base64URL.encode(SHA256.hash(data: Data(canonical.utf8)))
    }

    /// Signs a request body.
    /// - Parameters:
    ///   - payload: The JSON payload text, or `nil` for POST-as-GET (empty payload).
    ///   - url: The request URL (the `url` header).
    ///   - nonce: A nonce from the server.
    ///   - key: The account key (or certificate key for revocation).
    ///   - kid: The account URL; when `nil` the public key is embedded as `jwk`.
    /// - Returns: The flattened JSON serialisation, ready to POST as `application/jose+json`.
    public static func sign(
        payload: String?, url: String, nonce: String, key: P256.Signing.PrivateKey, kid: String? = nil
    ) throws -> String {
        var protected: [String: Any] = ["alg": "ES256", "nonce": nonce, "url": url]
        if let kid { protected["kid"] = kid } else { protected["jwk"] = jwk(of: key.publicKey) }
        let protectedJSON = try JSONSerialization.data(withJSONObject: protected, options: [.sortedKeys])
        let protected64 = Base64URL.encode(protectedJSON)
        let payload64 = payload.map { Base64URL.encode(Data($0.utf8)) } ?? ""
        let signature = try key.signature(for: Data("\(protected64).\(payload64)".utf8))
        return flattened(protected: protected64, payload: payload64, signature: Base64URL.encode(signature.rawRepresentation))
    }

    /// Assembles a flattened JWS from already-encoded parts (useful to tamper with one of them).
    public static func flattened(protected: String, payload: String, signature: String) -> String {
        #"{"payload":"\#(payload)","protected":"\#(protected)","signature":"\#(signature)"}"#
    }

    /// Encodes bytes as unpadded base64url.
    public static func base64url<Bytes: Sequence>(_ bytes: Bytes) -> String where Bytes.Element == UInt8 {
        Base64URL.encode(bytes)
    }

    /// Decodes unpadded base64url; `nil` when malformed.
    public static func base64urlDecode(_ text: String) -> [UInt8]? {
        Base64URL.decode(text)
    }
}
