import ACMEProtocol
import Foundation
import Renewal

/// `certkeeper status` as an aligned text table.
enum StatusTable {
    static func render(_ rows: [CertificateStatus]) -> String {
        var lines = [["NAME", "DOMAINS", "EXPIRES", "DAYS", "NEXT RENEWAL", "LAST ERROR"]]
        for row in rows {
            lines.append([
                row.name,
                row.domains.joined(separator: ","),
                row.notAfter.map(RFC3339.format) ?? "-",
                row.daysLeft.map { String(format: "%.1f", $0) } ?? "-",
                row.nextRenewal.map(RFC3339.format).map { "\($0) (\(row.reason))" }
                    ?? (row.reason == "fromPeers" ? "- (a follower: the renewer renews, peer sync brings it)" : "-"),
                row.lastError ?? row.failedHooks.map { "deploy hook(s) failed: \($0.joined(separator: ", "))" }
                    ?? (row.deployOwed ? "deploy hooks interrupted; the next renew runs them"
                        : row.deployInProgress ? "deploy in progress (another certkeeper run holds the store lock)" : "-"),
            ])
        }
        let widths = (0..<6).map { column in lines.map { $0[column].count }.max() ?? 0 }
        return lines.map { cells in
            cells.enumerated().map { index, cell in
                index == cells.count - 1 ? cell : cell.padding(toLength: widths[index], withPad: " ", startingAt: 0)
            }.joined(separator: "  ")
        }.joined(separator: "\n")
    }
}
