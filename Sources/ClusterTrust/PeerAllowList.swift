import NameRules
import Foundation
import NIOCore
import NIOSSL
import X509

#if canImport(Glibc)
import Glibc
#endif

/// Who may use this node's peer API: the nodes in its `cluster.peers`, each only from the address it is configured
/// at, and only with a node certificate meant for client authentication.
///
/// The TLS handshake already proves the client holds a certificate the cluster CA signed. That is not enough: the
/// CA signs every node ever added (including ones decommissioned or never configured here), and a bundle from the
/// peer API carries private keys. So a connection is served only when all of these hold:
/// - the certificate carries the `clientAuth` extended key usage (every `cluster add-node` certificate does);
/// - one of its node names (subject CN, DNS SANs) is a configured peer of this node;
/// - the socket's remote address is that peer's configured address (`localhost` matches either loopback address).
///
/// Thread safety: a value type, read-only after creation.
public struct PeerAllowList: Sendable, Equatable {
    /// A peer this node serves.
    public struct Peer: Sendable, Equatable {
        /// The node name in its cluster certificate.
        public var name: String
        /// The addresses it may connect from: IP literals, or `localhost`.
        public var hosts: [String]
        /// Whether it may fetch this node's internal CA (root key included): a standby this node's configuration
        /// names as such, so that it can take over internal certificates.
        public var mayFetchInternalCA: Bool

        /// Creates an entry.
        public init(name: String, hosts: [String], mayFetchInternalCA: Bool = false) {
            self.name = name
            self.hosts = hosts
            self.mayFetchInternalCA = mayFetchInternalCA
        }
    }

    /// What the allow-list says about one client.
    public enum Decision: Sendable, Equatable {
        /// Served; the node name it is known by.
        case admitted(node: String)
        /// Refused with 403: which check failed (a short fixed word, for throttling logs by kind), and the reason in
        /// words for the log and the response.
        case refused(check: String, reason: String)
    }

    /// The peers, in configuration order.
    public let peers: [Peer]

    /// Creates the list.
    public init(peers: [Peer]) {
        self.peers = peers
    }

    /// The peers that may fetch the internal CA.
    public var internalCAReaders: Set<String> { Set(peers.filter(\.mayFetchInternalCA).map(\.name)) }

    /// Decides about a client from its verified certificate and its socket address.
    public func decide(certificate: NIOSSLCertificate, remoteAddress: SocketAddress?) -> Decision {
        guard let der = try? certificate.toDERBytes(), let parsed = try? Certificate(derEncoded: der) else {
            return .refused(check: "certificate", reason: "its certificate cannot be parsed")
        }
        return decide(certificate: parsed, remoteIP: remoteAddress?.ipAddress)
    }

    /// The decision for a parsed certificate and a remote IP literal (`nil` when unknown).
    public func decide(certificate: Certificate, remoteIP: String?) -> Decision {
        let usages = (try? certificate.extensions.extendedKeyUsage).flatMap { $0 }
        guard let usages, usages.contains(.clientAuth) else {
            return .refused(check: "clientAuth", reason: "its certificate does not allow client authentication (no clientAuth extended key usage)")
        }
        let names = Self.nodeNames(of: certificate)
        guard let peer = peers.first(where: { names.contains($0.name) }) else {
            let shown = names.first.map { "node '\($0)'" } ?? "a certificate with no node name"
            return .refused(check: "peers", reason: "\(shown) is not in this node's cluster.peers")
        }
        guard let remoteIP, peer.hosts.contains(where: { Self.sameHost($0, remoteIP) }) else {
            return .refused(check: "address", reason: "node '\(peer.name)' connected from \(remoteIP ?? "an unknown address"), not from its configured address \(peer.hosts.joined(separator: ", "))")
        }
        return .admitted(node: peer.name)
    }

    /// The node name a certificate carries: its subject's common name (what `cluster add-node` writes); only a
    /// certificate without a valid one is named by its DNS SANs. A host name given to `--address` that happens to
    /// equal another node's name must not make the certificate count as that node.
    static func nodeNames(of certificate: Certificate) -> [String] {
        if let commonName = CertificateParsing.commonName(certificate), ClusterNames.nameProblem(commonName) == nil { return [commonName] }
        var names: [String] = []
        if let alternativeNames = try? certificate.extensions.subjectAlternativeNames {
            for case .dnsName(let name) in alternativeNames where ClusterNames.nameProblem(name) == nil && !names.contains(name) {
                names.append(name)
            }
        }
        return names
    }

    /// Whether a configured host and a connection's remote IP are the same address (`::ffff:10.0.0.2` is
    /// `10.0.0.2`; `localhost` is 127.0.0.1 or ::1).
    static func sameHost(_ configured: String, _ remote: String) -> Bool {
        guard let remoteBytes = addressBytes(remote) else { return false }
        if configured == "localhost" { return remoteBytes == addressBytes("127.0.0.1") || remoteBytes == addressBytes("::1") }
        return addressBytes(configured) == remoteBytes
    }

    /// An IP literal as 16 bytes (IPv4 as IPv4-mapped IPv6), or `nil`.
    static func addressBytes(_ text: String) -> [UInt8]? {
        IPLiteral.mapped(text)
    }
}
