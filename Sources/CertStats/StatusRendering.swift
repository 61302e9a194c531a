import Foundation

/// `/status.json`: a ``StatsReport`` as JSON with snake_case keys and ISO 8601 times.
public enum StatusJSON {
    /// The `Content-Type` of the rendered JSON.
    public static let contentType = "application/json; charset=utf-8"

    /// The encoder used for the endpoint (sorted keys, so the output is stable).
    public static func makeEncoder() -> JSONEncoder {
        let encoder = JSONEncoder()
        encoder.keyEncodingStrategy = .convertToSnakeCase
        encoder.dateEncodingStrategy = .iso8601
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        return encoder
    }

    /// A decoder that reads what ``render(_:)`` writes back into a ``StatsReport``.
    public static func makeDecoder() -> JSONDecoder {
        let decoder = JSONDecoder()
        decoder.keyDecodingStrategy = .convertFromSnakeCase
        decoder.dateDecodingStrategy = .iso8601
        return decoder
    }

    /// The report as JSON bytes.
    public static func render(_ report: StatsReport) -> Data {
        // Every field is a plain value; encoding cannot fail.
        (try? makeEncoder().encode(report)) ?? Data("{}".utf8)
    }
}

/// The human status page: one table of frontends, backends and servers, one of certificates.
public enum StatusPage {
    /// The `Content-Type` of the rendered page.
    public static let contentType = "text/html; charset=utf-8"

    /// The report as a small self-contained HTML page (no scripts, no external resources).
    /// - Parameters:
    ///   - report: What to show.
    ///   - pathPrefix: Where the other endpoints are (`""` or `/stats`), for the links at the top.
    public static func render(_ report: StatsReport, pathPrefix: String = "") -> String {
        var html = """
            <!DOCTYPE html>
            <html lang="en"><head><meta charset="utf-8"><title>certkeeper status</title>
            <style>
            body{font:14px system-ui,sans-serif;margin:1.5em}table{border-collapse:collapse;margin-bottom:1.5em}
            th,td{border:1px solid #ccc;padding:.25em .6em;text-align:left}td.n{text-align:right}
            .up{background:#dfd}.down{background:#fdd}.frontend td{background:#eef;font-weight:bold}
            </style></head><body>
            <h1>certkeeper status</h1>
            <p>Taken \(escape(timestamp(report.generatedAt))). Also as <a href="\(escape(pathPrefix))/status.json">JSON</a> \
            and <a href="\(escape(pathPrefix))/metrics">Prometheus metrics</a>.</p>
            <h2>Frontends, backends and servers</h2>

            """
        if report.frontends.isEmpty {
            html += "<p>No proxy frontends.</p>\n"
        } else {
            html += """
                <table><tr><th>Frontend / server</th><th>Address</th><th>State</th><th>Open</th><th>Total</th>\
                <th>Bytes in</th><th>Bytes out</th><th>Failures</th><th>Last check</th></tr>

                """
            for frontend in report.frontends {
                let backend = frontend.backend
                let servers = backend.state == .none ? "no servers" : "backend \(backend.state.rawValue) (\(backend.serversUp)/\(backend.servers.count) up, \(backend.balance))"
                let state = "\(frontend.state.rawValue), \(servers)"
                let failures = "handshake \(frontend.handshakeFailures), refused \(frontend.refusedConnections), no server \(frontend.noServerClosures)"
                html += row(
                    class: "frontend",
                    [frontend.name, ":\(frontend.port)", state, "\(frontend.activeConnections)", "\(frontend.totalConnections)",
                     "\(frontend.bytesIn)", "\(frontend.bytesOut)", failures, ""])
                for server in backend.servers {
                    var flags: [String] = []
                    if server.backup { flags.append("backup") }
                    if server.local { flags.append("local") }
                    let name = flags.isEmpty ? server.name : "\(server.name) (\(flags.joined(separator: ", ")))"
                    html += row(
                        class: server.state.rawValue,
                        [name, server.address, server.state.rawValue, "\(server.activeConnections)", "\(server.totalConnections)",
                         "\(server.bytesToServer)", "\(server.bytesFromServer)", "connect \(server.connectFailures)",
                         checkText(server)])
                }
            }
            html += "</table>\n"
        }
        html += "<h2>Certificates</h2>\n"
        if report.certificates.isEmpty {
            html += "<p>No certificate loaded.</p>\n"
        } else {
            html += "<table><tr><th>Name</th><th>DNS names</th><th>Serial</th><th>Expires</th><th>Seconds left</th></tr>\n"
            for certificate in report.certificates {
                html += row(
                    class: certificate.secondsLeft > 0 ? "" : "down",
                    [certificate.name, certificate.dnsNames.joined(separator: ", "), certificate.serial,
                     timestamp(certificate.notAfter), "\(certificate.secondsLeft)"])
            }
            html += "</table>\n"
        }
        html += "</body></html>\n"
        return html
    }

    private static func checkText(_ server: ServerStatus) -> String {
        guard server.checked else { return "no check" }
        guard let check = server.lastCheck else { return "not checked yet" }
        let milliseconds = Int((check.durationSeconds * 1000).rounded())
        return "\(check.passed ? "passed" : "failed"): \(check.detail) (\(milliseconds) ms, \(timestamp(check.time)))"
    }

    private static func row(class className: String, _ cells: [String]) -> String {
        let classAttribute = className.isEmpty ? "" : " class=\"\(className)\""
        let numeric: Set<Int> = [3, 4, 5, 6]
        let body = cells.enumerated().map { index, cell in
            numeric.contains(index) && Int(cell) != nil ? "<td class=\"n\">\(escape(cell))</td>" : "<td>\(escape(cell))</td>"
        }.joined()
        return "<tr\(classAttribute)>\(body)</tr>\n"
    }

    private static func timestamp(_ date: Date) -> String {
        date.formatted(.iso8601)
    }

    /// Escapes text for HTML element content and double-quoted attributes.
    static func escape(_ text: String) -> String {
        var escaped = ""
        escaped.reserveCapacity(text.count)
        for character in text {
            switch character {
            case "&": escaped += "&amp;"
            case "<": escaped += "&lt;"
            case ">": escaped += "&gt;"
            case "\"": escaped += "&quot;"
            case "'": escaped += "&#39;"
            default: escaped.append(character)
            }
        }
        return escaped
    }
}
