import NameRules
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// `stats:`: the daemon's stats listener (`/metrics`, a status page, `/status.json`).
///
/// Bound to loopback or the private network: an address that listens on every interface (`0.0.0.0`, `[::]`) or a
/// public address is refused unless ``allowPublic`` is set.
public struct StatsSettings: Sendable, Equatable {
    /// `stats.listen`: where the listener binds.
    public var listen: ListenAddress
    /// `stats.allow_public`: accept a wildcard or public ``listen`` address.
    public var allowPublic: Bool
    /// `stats.path_prefix`: `""` (the root) or a path like `/stats` the endpoints live under (no trailing slash).
    public var pathPrefix: String

    /// Creates stats settings.
    public init(listen: ListenAddress, allowPublic: Bool = false, pathPrefix: String = "") {
        self.listen = listen
        self.allowPublic = allowPublic
        self.pathPrefix = pathPrefix
    }

    /// Who can reach an address.
    public enum Exposure: Sendable, Equatable {
        /// `127.0.0.0/8`, `::1`, `localhost`.
        case loopback
        /// RFC 1918, carrier-grade NAT (`100.64.0.0/10`), link-local, IPv6 unique-local (`fc00::/7`) and link-local.
        case privateNetwork
        /// `0.0.0.0` or `::`: every interface, public ones included.
        case everyInterface
        /// Anything else.
        case publicNetwork
    }

    /// Classifies a ``ListenAddress/host``.
    /// - Parameter host: An IPv4 literal, an IPv6 literal without brackets, or `localhost`.
    public static func exposure(of host: String) -> Exposure {
        if host == "localhost" { return .loopback }
        guard let bytes = IPLiteral.bytes(host) else { return .publicNetwork }
        if bytes.count == 4 { return exposure(ipv4: bytes) }
        if bytes.allSatisfy({ $0 == 0 }) { return .everyInterface }
        if bytes[0..<15].allSatisfy({ $0 == 0 }) && bytes[15] == 1 { return .loopback }
        if bytes[0..<10].allSatisfy({ $0 == 0 }) && bytes[10] == 0xff && bytes[11] == 0xff {
            return exposure(ipv4: Array(bytes[12..<16]))  // ::ffff:a.b.c.d
        }
        if bytes[0] & 0xfe == 0xfc { return .privateNetwork }
        if bytes[0] == 0xfe && bytes[1] & 0xc0 == 0x80 { return .privateNetwork }
        return .publicNetwork
    }

    private static func exposure(ipv4 octets: [UInt8]) -> Exposure {
        switch (octets[0], octets[1]) {
        case (0, _) where octets.allSatisfy({ $0 == 0 }): return .everyInterface
        case (127, _): return .loopback
        case (10, _), (192, 168), (169, 254): return .privateNetwork
        case (172, let second) where (16...31).contains(second): return .privateNetwork
        case (100, let second) where (64...127).contains(second): return .privateNetwork
        default: return .publicNetwork
        }
    }
}
