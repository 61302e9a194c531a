import ACMEProtocol
import Foundation
import Renewal

/// The one-line-per-certificate summary `renew` prints on standard output.
enum SummaryLine {
    static func render(name: String, outcome: CertificateOutcome) -> String {
        switch outcome {
        case .renewed(let meta, let reason):
            "\(name): renewed (\(reason.rawValue)), serial \(meta.serial), expires \(RFC3339.format(meta.notAfter))"
        case .renewedWithHookFailures(let meta, let reason, let hooks):
            "\(name): renewed (\(reason.rawValue)), serial \(meta.serial), but deploy hook(s) failed: \(hooks.joined(separator: ", "))"
        case .renewedButDueAgain(let meta, let error, let next):
            "\(name): renewed, serial \(meta.serial), but ERROR: \(error) (not ordered again before \(RFC3339.format(next)))"
        case .redeployed(let meta, let failed):
            failed.isEmpty
                ? "\(name): deploy hooks for serial \(meta.serial) succeeded on retry"
                : "\(name): deploy hook(s) still failing for serial \(meta.serial): \(failed.joined(separator: ", "))"
        case .notDue(let until, _):
            "\(name): not due until \(RFC3339.format(until))"
        case .backingOff(let until, let lastError):
            "\(name): due, backing off until \(RFC3339.format(until))" + (lastError.isEmpty ? "" : " after: \(lastError)")
        case .failed(_, let error, let next):
            "\(name): FAILED: \(error) (next attempt after \(RFC3339.format(next)))"
        }
    }
}

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
                row.nextRenewal.map(RFC3339.format).map { "\($0) (\(row.reason))" } ?? "-",
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
