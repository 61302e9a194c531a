import Foundation
import Prometheus

/// Renders a ``StatsReport`` in the Prometheus text exposition format (version 0.0.4).
///
/// Each scrape fills a fresh `PrometheusCollectorRegistry` from the report, so a frontend or server removed by a
/// reconfiguration disappears from the next scrape, and nothing is counted per connection on the proxy's hot
/// path: the proxy keeps its own counters, read once per scrape. Counters (`…_total`) are the proxy's running
/// totals; they restart from 0 when a server is reconfigured or the daemon restarts, which Prometheus treats as a
/// counter reset.
///
/// Metric names, all with the labels in braces:
/// - `certkeeper_frontend_connections{frontend}` (gauge), `certkeeper_frontend_connections_total`,
///   `certkeeper_frontend_refused_connections_total`, `certkeeper_frontend_no_server_closures_total`,
///   `certkeeper_frontend_handshake_failures_total`, `certkeeper_frontend_bytes_in_total`,
///   `certkeeper_frontend_bytes_out_total`, `certkeeper_frontend_max_connections` (when `maxconn` is set);
/// - `certkeeper_backend_up{frontend}` (1 while any server is up), `certkeeper_backend_servers_up{frontend}`;
/// - `certkeeper_server_up{frontend,server,address}` (1 up, 0 down), `certkeeper_server_connections{frontend,server}`,
///   `certkeeper_server_connections_total`, `certkeeper_server_connect_failures_total`,
///   `certkeeper_server_bytes_sent_total`, `certkeeper_server_bytes_received_total`, and for checked servers
///   after their first check `certkeeper_server_check_success`, `certkeeper_server_check_duration_seconds`,
///   `certkeeper_server_check_timestamp_seconds`;
/// - `certkeeper_certificate_expiry_seconds{name}` (seconds left, negative once expired),
///   `certkeeper_certificate_not_after_timestamp_seconds{name}`, `certkeeper_certificate_info{name,serial,sha256}` (1).
public enum PrometheusExposition {
    /// The `Content-Type` of the rendered text.
    public static let contentType = "text/plain; version=0.0.4; charset=utf-8"

    /// The report as exposition text, followed by what `extra` holds (metrics recorded through swift-metrics).
    /// - Parameters:
    ///   - report: What to render.
    ///   - extra: A long-lived registry to append, or `nil`; its metric names must not start with the names above.
    /// - Returns: The text, one sample per line.
    public static func render(_ report: StatsReport, extra: PrometheusCollectorRegistry? = nil) -> String {
        let registry = PrometheusCollectorRegistry()
        record(report, into: registry)
        var buffer = registry.emitToBuffer()
        extra?.emit(into: &buffer)
        return String(decoding: buffer, as: UTF8.self)
    }

    /// Records every value of `report` into `registry` (which should be empty: counters are incremented).
    static func record(_ report: StatsReport, into registry: PrometheusCollectorRegistry) {
        let metrics = Metrics(registry: registry)
        for frontend in report.frontends {
            let labels = [("frontend", frontend.name)]
            metrics.gauge("certkeeper_frontend_connections", "Client connections open now.", labels, frontend.activeConnections)
            metrics.counter("certkeeper_frontend_connections_total", "Client connections accepted.", labels, frontend.totalConnections)
            metrics.counter(
                "certkeeper_frontend_refused_connections_total", "Client connections refused because maxconn was reached.",
                labels, frontend.refusedConnections)
            metrics.counter(
                "certkeeper_frontend_no_server_closures_total", "Clients closed because no server could take them.", labels,
                frontend.noServerClosures)
            metrics.counter(
                "certkeeper_frontend_handshake_failures_total", "TLS handshakes that failed or timed out.", labels,
                frontend.handshakeFailures)
            metrics.counter(
                "certkeeper_frontend_bytes_in_total", "Bytes from clients relayed to servers, counted as connections close.",
                labels, frontend.bytesIn)
            metrics.counter(
                "certkeeper_frontend_bytes_out_total", "Bytes from servers relayed to clients, counted as connections close.",
                labels, frontend.bytesOut)
            if let maxConnections = frontend.maxConnections {
                metrics.gauge("certkeeper_frontend_max_connections", "The frontend's maxconn.", labels, maxConnections)
            }
            if frontend.backend.state != .none {
                metrics.gauge(
                    "certkeeper_backend_up", "1 while at least one of the frontend's servers is up.", labels,
                    frontend.backend.state == .up ? 1 : 0)
                metrics.gauge("certkeeper_backend_servers_up", "Servers of the frontend that are up.", labels, frontend.backend.serversUp)
            }
            for server in frontend.backend.servers {
                let serverLabels = [("frontend", frontend.name), ("server", server.name)]
                metrics.gauge(
                    "certkeeper_server_up", "1 when the server gets new connections, 0 when its check marked it down.",
                    serverLabels + [("address", server.address)], server.state == .up ? 1 : 0)
                metrics.gauge("certkeeper_server_connections", "Connections relayed to the server now.", serverLabels, server.activeConnections)
                metrics.counter(
                    "certkeeper_server_connections_total", "Connections relayed to the server.", serverLabels, server.totalConnections)
                metrics.counter(
                    "certkeeper_server_connect_failures_total", "Connection attempts to the server that failed.", serverLabels,
                    server.connectFailures)
                metrics.counter(
                    "certkeeper_server_bytes_sent_total", "Bytes sent to the server, counted as connections close.", serverLabels,
                    server.bytesToServer)
                metrics.counter(
                    "certkeeper_server_bytes_received_total", "Bytes received from the server, counted as connections close.",
                    serverLabels, server.bytesFromServer)
                if let check = server.lastCheck {
                    metrics.gauge(
                        "certkeeper_server_check_success", "1 when the server's last health check passed.", serverLabels,
                        check.passed ? 1 : 0)
                    metrics.gauge(
                        "certkeeper_server_check_duration_seconds", "How long the server's last health check took.",
                        serverLabels, check.durationSeconds)
                    metrics.gauge(
                        "certkeeper_server_check_timestamp_seconds", "When the server's last health check finished (Unix time).",
                        serverLabels, check.time.timeIntervalSince1970)
                }
            }
        }
        for certificate in report.certificates {
            let labels = [("name", certificate.name)]
            metrics.gauge(
                "certkeeper_certificate_expiry_seconds", "Seconds until the served certificate expires (negative once expired).",
                labels, certificate.secondsLeft)
            metrics.gauge(
                "certkeeper_certificate_not_after_timestamp_seconds", "When the served certificate expires (Unix time).", labels,
                certificate.notAfter.timeIntervalSince1970)
            metrics.gauge(
                "certkeeper_certificate_info", "The served certificate's serial (hex) and SHA-256; always 1.",
                labels + [("serial", certificate.serial), ("sha256", certificate.sha256)], 1)
        }
    }

    /// Thin helpers over the registry that keep one help text per name.
    private struct Metrics {
        let registry: PrometheusCollectorRegistry

        /// The whole name is given (unit suffix included), so the descriptor's unit stays empty.
        func descriptor(_ name: String, _ help: String) -> MetricNameDescriptor {
            MetricNameDescriptor(metricName: name, unitName: "", helpText: help)
        }

        func gauge(_ name: String, _ help: String, _ labels: [(String, String)], _ value: Double) {
            registry.makeGauge(descriptor: descriptor(name, help), labels: labels).set(to: value)
        }

        func gauge(_ name: String, _ help: String, _ labels: [(String, String)], _ value: Int) {
            gauge(name, help, labels, Double(value))
        }

        func counter(_ name: String, _ help: String, _ labels: [(String, String)], _ value: Int) {
            registry.makeCounter(descriptor: descriptor(name, help), labels: labels).increment(by: Int64(value))
        }
    }
}
