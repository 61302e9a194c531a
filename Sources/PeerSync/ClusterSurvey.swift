import AsyncHTTPClient
import CertkeeperConfig
import Foundation
import NIOSSL

/// What one node holds, as `certkeeper status --cluster` shows it.
public struct NodeReport: Codable, Sendable, Equatable {
    /// The node's name.
    public var node: String
    /// `self` for this node, else the peer's address.
    public var address: String
    /// Whether it answered.
    public var reachable: Bool
    /// Its role, when it answered.
    public var role: String?
    /// Why it did not answer.
    public var error: String?
    /// Its certificates, when it answered.
    public var certificates: [CatalogCertificate]
}

/// Asks every peer for its catalogue at once (no long-poll) and puts this node's beside them.
public enum ClusterSurvey {
    /// Gathers the reports, this node first, then the peers in configuration order.
    /// - Parameters:
    ///   - local: This node's catalogue.
    ///   - peers: The configured peers.
    ///   - clientTLS: This node's client side of mutual TLS.
    ///   - timeout: The longest wait for any one peer.
    /// A failed request to a peer in words an operator acts on (TLS failures name the side that refused), not
    /// BoringSSL's text; anything unrecognised keeps its own one-line text.
    static func inWords(_ error: any Error) -> String {
        let peerError = error as? PeerError
        let text = peerError?.reason ?? "\(error)"
        if peerError?.isRefusal == true { return "refused (403): this node is not in its cluster.peers, or connects from another address" }
        if text.contains("CERTIFICATE_VERIFY_FAILED") { return "TLS: the peer presented a certificate from another CA (or for another address)" }
        if text.contains("UNKNOWN_CA") || text.contains("BAD_CERTIFICATE") || text.contains("CERTIFICATE_REQUIRED") || text.contains("CERTIFICATE_UNKNOWN") {
            return "TLS: the peer refused this node's certificate (another cluster CA?)"
        }
        if text.contains("deadlineExceeded") || text.contains("connectTimeout") || text.contains("timed out") { return "timed out" }
        if text.contains("Connection refused") { return "connection refused (is its daemon running?)" }
        return String(text.split(whereSeparator: \.isNewline).joined(separator: " ").prefix(120))
    }

    public static func gather(local: PeerCatalog, peers: [ClusterSettings.Peer], clientTLS: TLSConfiguration, timeout: Duration) async -> [NodeReport] {
        var configuration = HTTPClient.Configuration(tlsConfiguration: clientTLS)
        configuration.timeout = .init(connect: timeout.timeAmount, read: timeout.timeAmount)
        configuration.connectionPool.retryConnectionEstablishment = false
        let http = HTTPClient(eventLoopGroupProvider: .singleton, configuration: configuration)
        let reports = await withTaskGroup(of: (Int, NodeReport).self) { group in
            for (offset, peer) in peers.enumerated() {
                group.addTask {
                    let client = PeerClient(peerName: peer.name, host: peer.address.host, port: peer.address.port, http: http)
                    do {
                        let catalog = try await client.catalog(after: nil, wait: .zero)
                        return (offset, NodeReport(node: peer.name, address: "\(peer.address)", reachable: true, role: catalog.role, error: nil, certificates: catalog.certificates))
                    } catch {
                        return (offset, NodeReport(node: peer.name, address: "\(peer.address)", reachable: false, role: nil, error: Self.inWords(error), certificates: []))
                    }
                }
            }
            var collected: [(Int, NodeReport)] = []
            for await report in group { collected.append(report) }
            return collected.sorted { $0.0 < $1.0 }.map(\.1)
        }
        try? await http.shutdown()
        let me = NodeReport(node: local.node, address: "self", reachable: true, role: local.role, error: nil, certificates: local.certificates)
        return [me] + reports
    }
}
