import CertStore
import CertkeeperConfig
import ClusterTrust
import Foundation
import Logging
import PeerSync

/// `certkeeper status --cluster`: every node's certificates side by side, whether they agree, and the table.
public enum ClusterStatusReport {
    /// This node's catalogue and every peer's.
    /// - Throws: ``AgentError``: no `cluster:` section or no usable identity (configuration), an unreadable store.
    public static func gather(_ context: NodeContext) async throws(AgentError) -> [NodeReport] {
        let configuration = context.configuration
        guard let cluster = configuration.cluster else {
            throw .configuration(["--cluster: the configuration has no cluster: section"])
        }
        guard let credentials = try context.clusterCredentials() else { return [] }
        let local = LocalNode(
            name: context.nodeName, role: cluster.role.rawValue, store: context.store, acmeDirectoryURL: configuration.acme.directoryURL,
            credentials: credentials)
        let catalog: PeerCatalog
        do {
            catalog = try local.catalog(index: SyncIndex(epoch: "0", counter: 0))
        } catch {
            throw .failure("\(error)")
        }
        return await ClusterSurvey.gather(local: catalog, peers: cluster.peers, clientTLS: credentials.current.clientTLS, timeout: .seconds(5))
    }

    /// Whether every node answered and holds the same certificates (by SHA-256).
    public static func allAgree(_ reports: [NodeReport]) -> Bool {
        guard reports.allSatisfy(\.reachable), renewers(reports).count <= 1 else { return false }
        let holdings = reports.map { Dictionary(uniqueKeysWithValues: $0.certificates.map { ($0.name, $0.sha256) }) }
        return holdings.allSatisfy { $0 == holdings.first }
    }

    /// The nodes whose catalogue says `renewer`.
    public static func renewers(_ reports: [NodeReport]) -> [String] {
        reports.filter { $0.role == "renewer" }.map(\.node).sorted()
    }

    /// One line per node and certificate; a node that did not answer gets one line with the reason.
    public static func render(_ reports: [NodeReport], now: Date) -> String {
        var rows: [[String]] = [["NODE", "ADDRESS", "STATE", "ROLE", "CERTIFICATE", "SERIAL", "NOT AFTER", "DAYS"]]
        let formatter = ISO8601DateFormatter()
        for report in reports {
            guard report.reachable else {
                // A 403 is an answer: that node does not list this one in its cluster.peers.
                let refused = report.error?.contains("HTTP 403") == true
                rows.append([report.node, report.address, refused ? "refused" : "unreachable", "-", "-", "-", "-",
                             refused ? "does not list this node in its cluster.peers" : String((report.error ?? "").prefix(60))])
                continue
            }
            if report.certificates.isEmpty {
                rows.append([report.node, report.address, "ok", report.role ?? "-", "(none)", "-", "-", "-"])
            }
            for certificate in report.certificates {
                let days = certificate.notAfter.timeIntervalSince(now) / 86_400
                rows.append([report.node, report.address, "ok", report.role ?? "-", certificate.name, certificate.serial,
                             formatter.string(from: certificate.notAfter), String(format: "%.1f", days)])
            }
        }
        let widths = rows[0].indices.map { column in rows.map { $0[column].count }.max() ?? 0 }
        let lines = rows.map { row in
            row.enumerated().map { $0.element.padding(toLength: widths[$0.offset], withPad: " ", startingAt: 0) }
                .joined(separator: "  ").trimmingCharacters(in: .whitespaces)
        }
        let renewers = renewers(reports)
        let verdict = renewers.count > 1
            ? "\(renewers.count) nodes are the renewer (\(renewers.joined(separator: ", "))): keep role: renewer on one node"
            : allAgree(reports) ? "all nodes agree" : "nodes DISAGREE or are unreachable"
        return (lines + ["", verdict]).joined(separator: "\n")
    }
}
