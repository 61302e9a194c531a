import Foundation

/// Base64url without padding (RFC 4648 §5), the encoding JOSE and ACME use everywhere.
public enum Base64URL {
    /// Encodes bytes as unpadded base64url.
    public static func encode<Bytes: DataProtocol>(_ bytes: Bytes) -> String {
        Data(bytes).base64EncodedString()
            .replacingOccurrences(of: "+", with: "-")
            .replacingOccurrences(of: "/", with: "_")
            .replacingOccurrences(of: "=", with: "")
    }

    /// Encodes a UTF-8 string as unpadded base64url.
    public static func encode(_ string: String) -> String {
        encode(Array(string.utf8))
    }

    /// Decodes base64url with or without padding; `nil` when the text is not base64url.
    public static func decode(_ text: String) -> [UInt8]? {
        var base64 = text.replacingOccurrences(of: "-", with: "+").replacingOccurrences(of: "_", with: "/")
        guard !base64.contains("=") || text.hasSuffix("=") else { return nil }
        base64 = base64.replacingOccurrences(of: "=", with: "")
        switch base64.count % 4 {
        case 2: base64 += "=="
        case 3: base64 += "="
        case 1: return nil
        default: break
        }
        return Data(base64Encoded: base64).map { Array($0) }
    }
}
