import CertStore
import NameRules
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The name rules for nodes and clusters, and the address syntax of node certificates.
///
/// Node and cluster names follow the store's rules (``CertStore/StoreName``): `[A-Za-z0-9][A-Za-z0-9._-]{0,63}`,
/// never containing `..`, because a node name ends up in file names and log lines.
public enum ClusterNames {
    /// The reason `name` is not a valid node or cluster name, or `nil` when it is fine.
    /// - Parameter name: The candidate name.
    /// - Returns: A sentence fragment such as `"it must start with a letter or digit"`.
    public static func nameProblem(_ name: String) -> String? {
        NameRule.problem(name)
    }

    /// Throws unless `name` is a valid node or cluster name.
    /// - Parameters:
    ///   - name: The candidate name.
    ///   - field: What the name is, for the error (e.g. `"node name"`, `"--name"`).
    /// - Throws: ``ClusterTrustError`` with code ``ClusterTrustError/Code/invalidName``.
    public static func checkName(_ name: String, field: String) throws(ClusterTrustError) {
        if let problem = nameProblem(name) {
            throw ClusterTrustError(code: .invalidName, subject: field, detail: "'\(String(name.prefix(80)))' is not a valid name: \(problem)")
        }
    }

    /// The reason `name` is not a usable DNS host name for a certificate, or `nil` when it is fine.
    ///
    /// LDH labels of 1...63 characters that neither start nor end with a hyphen, at most 253 characters, no
    /// trailing dot, and a last label that is not all digits (so `10.0.0.256` is not taken for a host name).
    /// Single-label names (`node1`) are accepted: a private cluster may resolve them through `/etc/hosts`.
    public static func dnsNameProblem(_ name: String) -> String? {
        guard !name.isEmpty else { return "it is empty" }
        guard name.unicodeScalars.allSatisfy(\.isASCII) else { return "it contains non-ASCII characters" }
        guard !name.hasSuffix(".") else { return "it must not end with a dot" }
        guard name.utf8.count <= 253 else { return "it is longer than 253 characters" }
        let labels = name.split(separator: ".", omittingEmptySubsequences: false)
        for label in labels {
            guard !label.isEmpty else { return "it has an empty label" }
            guard label.utf8.count <= 63 else { return "label '\(label)' is longer than 63 characters" }
            if let bad = label.unicodeScalars.first(where: { !isASCIIAlphanumeric($0) && $0 != "-" }) {
                return "label '\(label)' contains \(describe(bad))"
            }
            if label.hasPrefix("-") || label.hasSuffix("-") { return "label '\(label)' starts or ends with a hyphen" }
        }
        if let last = labels.last, last.allSatisfy(\.isNumber) {
            return "its last label is all digits (a mistyped IP address?)"
        }
        return nil
    }

    /// The network-order bytes of an IPv4 (4 bytes) or IPv6 (16 bytes) literal, or `nil` if `text` is neither.
    /// IPv6 literals may be written in brackets (`[::1]`).
    public static func ipAddressBytes(_ text: String) -> [UInt8]? {
        IPLiteral.bytes(text, allowBrackets: true)
    }

    /// The text form of IPv4 or IPv6 address bytes (`"10.0.0.1"`, `"fd00::1"`), or `nil` for other lengths.
    public static func ipAddressText(_ bytes: [UInt8]) -> String? {
        IPLiteral.text(bytes)
    }

    private static func isASCIIAlphanumeric(_ scalar: Unicode.Scalar) -> Bool {
        ("a"..."z").contains(scalar) || ("A"..."Z").contains(scalar) || ("0"..."9").contains(scalar)
    }

    private static func describe(_ scalar: Unicode.Scalar) -> String {
        switch scalar {
        case " ": return "a space"
        case "/": return "'/'"
        default:
            return scalar.isASCII && scalar.value >= 0x20 && scalar.value < 0x7F
                ? "'\(Character(scalar))'" : "U+\(String(scalar.value, radix: 16, uppercase: true))"
        }
    }
}

/// One address a node is reached at, as it appears in the node certificate's subject alternative names.
public enum NodeAddress: Sendable, Hashable, CustomStringConvertible {
    /// An IP literal; `bytes` are 4 (IPv4) or 16 (IPv6) bytes in network order.
    case ip(text: String, bytes: [UInt8])
    /// A DNS host name.
    case dns(String)

    /// Parses an `--address` value: an IPv4 or IPv6 literal becomes an IP SAN, anything else must be a host name.
    /// - Parameters:
    ///   - text: The address as given.
    ///   - field: The option or field it came from, for the error.
    /// - Throws: ``ClusterTrustError`` with code ``ClusterTrustError/Code/invalidAddress``.
    public init(parsing text: String, field: String = "--address") throws(ClusterTrustError) {
        if let bytes = ClusterNames.ipAddressBytes(text) {
            self = .ip(text: ClusterNames.ipAddressText(bytes) ?? text, bytes: bytes)
            return
        }
        if let problem = ClusterNames.dnsNameProblem(text) {
            throw ClusterTrustError(
                code: .invalidAddress, subject: field,
                detail: "'\(String(text.prefix(80)))' is not an IP address or host name: \(problem)"
            )
        }
        self = .dns(text.lowercased())
    }

    /// The address as text (`"10.0.0.1"`, `"node1.internal"`).
    public var description: String {
        switch self {
        case .ip(let text, _): return text
        case .dns(let name): return name
        }
    }
}
