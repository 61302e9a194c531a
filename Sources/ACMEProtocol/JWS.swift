import Crypto
import Foundation

/// How a JWS identifies its signer (RFC 8555 §6.2): the full key for `newAccount` and `revokeCert`-by-key,
/// the account URL for everything else.
public enum JWSKeyIdentification: Sendable, Equatable {
    case jwk
    case kid(String)
}

/// A JWS in flattened JSON serialization, ready to POST with `Content-Type: application/jose+json`.
public struct FlattenedJWS: Sendable, Equatable {
    public var protected: String
    public var payload: String
    public var signature: String

    /// The request body.
    public var jsonBody: [UInt8] {
        Array(#"{"protected":"\#(protected)","payload":"\#(payload)","signature":"\#(signature)"}"#.utf8)
    }
}

/// Builds signed ACME requests. Pure: the nonce and URL are inputs; nothing is sent.
public struct JWSSigner: Sendable {
    public let key: AccountKey

    public init(key: AccountKey) { self.key = key }

    /// Signs `payload` for `url`.
    /// - Parameters:
    ///   - payload: JSON bytes, or `nil` for POST-as-GET (an empty payload string, RFC 8555 §6.3).
    ///   - url: the exact request URL, copied into the protected header.
    ///   - nonce: a fresh `Replay-Nonce`.
    ///   - identification: `.jwk` for `newAccount`, `.kid(accountURL)` otherwise.
    public func sign(payload: [UInt8]?, url: String, nonce: String, identification: JWSKeyIdentification) throws(ACMEProtocolError) -> FlattenedJWS {
        var header = #"{"alg":"\#(key.algorithm)","#
        switch identification {
        case .jwk: header += #""jwk":\#(key.canonicalJWK),"#
        case .kid(let accountURL): header += #""kid":\#(JSONText.quote(accountURL)),"#
        }
        header += #""nonce":\#(JSONText.quote(nonce)),"url":\#(JSONText.quote(url))}"#
        let protected = Base64URL.encode(header)
        let encodedPayload = payload.map { Base64URL.encode($0) } ?? ""
        let signature = try key.sign(Array("\(protected).\(encodedPayload)".utf8))
        return FlattenedJWS(protected: protected, payload: encodedPayload, signature: Base64URL.encode(signature))
    }

    /// The external account binding (RFC 8555 §7.3.4): an HS256 JWS over the account JWK, keyed by the CA's MAC key.
    public func externalAccountBinding(keyID: String, macKey: [UInt8], newAccountURL: String) -> FlattenedJWS {
        let header = #"{"alg":"HS256","kid":\#(JSONText.quote(keyID)),"url":\#(JSONText.quote(newAccountURL))}"#
        let protected = Base64URL.encode(header)
        let payload = Base64URL.encode(key.canonicalJWK)
        let mac = HMAC<SHA256>.authenticationCode(for: Array("\(protected).\(payload)".utf8), using: SymmetricKey(data: macKey))
        return FlattenedJWS(protected: protected, payload: payload, signature: Base64URL.encode(Array(mac)))
    }
}

/// Minimal JSON string quoting for the few hand-built headers above (they must be byte-stable).
enum JSONText {
    static func quote(_ string: String) -> String {
        var out = "\""
        for scalar in string.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            case _ where scalar.value < 0x20: out += String(format: "\\u%04x", scalar.value)
            default: out.unicodeScalars.append(scalar)
            }
        }
        return out + "\""
    }
}
