#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// The one parser of IP address literals (configuration, certificates, peers' addresses, SANs): `inet_pton`'s
/// grammar, so `10.0.0.1` and `fd00::1` are literals and `010.0.0.1`-style or zone-indexed forms are not.
public enum IPLiteral {
    /// The network-order bytes of an IPv4 (4 bytes) or IPv6 (16 bytes) literal, or `nil` when `text` is neither.
    /// - Parameter allowBrackets: Also accept an IPv6 literal written as `[::1]`.
    public static func bytes(_ text: String, allowBrackets: Bool = false) -> [UInt8]? {
        var literal = text
        if allowBrackets, literal.hasPrefix("["), literal.hasSuffix("]") { literal = String(literal.dropFirst().dropLast()) }
        guard !literal.isEmpty, !literal.utf8.contains(0) else { return nil }
        var v4 = in_addr()
        if inet_pton(AF_INET, literal, &v4) == 1 { return withUnsafeBytes(of: &v4) { Array($0) } }
        var v6 = in6_addr()
        if inet_pton(AF_INET6, literal, &v6) == 1 { return withUnsafeBytes(of: &v6) { Array($0) } }
        return nil
    }

    /// Whether `text` is an IPv6 literal (no brackets, no zone index).
    public static func isIPv6(_ text: String) -> Bool { bytes(text)?.count == 16 }

    /// The same address as 16 bytes: IPv4 as IPv4-mapped IPv6 (`::ffff:a.b.c.d`), so `10.0.0.2` and
    /// `::ffff:10.0.0.2` compare equal.
    public static func mapped(_ text: String) -> [UInt8]? {
        guard let bytes = bytes(text) else { return nil }
        return bytes.count == 4 ? [UInt8](repeating: 0, count: 10) + [0xff, 0xff] + bytes : bytes
    }

    /// The canonical text of address bytes (`10.0.0.1`, `fd00::1`, as `inet_ntop` writes them), or `nil` for a
    /// length other than 4 or 16.
    public static func text(_ bytes: [UInt8]) -> String? {
        let family: Int32
        switch bytes.count {
        case 4: family = AF_INET
        case 16: family = AF_INET6
        default: return nil
        }
        var buffer = [CChar](repeating: 0, count: Int(INET6_ADDRSTRLEN) + 1)
        let ok = bytes.withUnsafeBytes { raw in inet_ntop(family, raw.baseAddress, &buffer, socklen_t(buffer.count)) != nil }
        guard ok else { return nil }
        return String(decoding: buffer.prefix(while: { $0 != 0 }).map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
}
