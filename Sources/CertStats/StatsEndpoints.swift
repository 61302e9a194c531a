import Foundation
import Prometheus

/// What the stats listener answers, without any I/O: a method and a request target in, a response out.
///
/// - `GET <prefix>/metrics`: ``PrometheusExposition``;
/// - `GET <prefix>/status.json`: ``StatusJSON``;
/// - `GET <prefix>/` (and `<prefix>` itself): ``StatusPage``;
/// - `HEAD` of any of these: the same headers without a body;
/// - any other path: 404; any other method: 405 with `Allow: GET, HEAD`.
///
/// Each request takes a fresh ``StatsReport`` from `collect`, so nothing is cached between scrapes.
public struct StatsEndpoints: Sendable {
    /// One answer.
    public struct Response: Sendable, Equatable {
        /// The HTTP status code.
        public var status: Int
        /// The `Content-Type`.
        public var contentType: String
        /// The body (sent for GET; for HEAD only its length is).
        public var body: [UInt8]
        /// Extra headers (`Allow` on a 405).
        public var headers: [(String, String)]

        /// Creates a response.
        public init(status: Int, contentType: String, body: [UInt8], headers: [(String, String)] = []) {
            self.status = status
            self.contentType = contentType
            self.body = body
            self.headers = headers
        }

        public static func == (lhs: Response, rhs: Response) -> Bool {
            lhs.status == rhs.status && lhs.contentType == rhs.contentType && lhs.body == rhs.body
                && lhs.headers.map { "\($0.0):\($0.1)" } == rhs.headers.map { "\($0.0):\($0.1)" }
        }
    }

    /// Where the endpoints live: `""` (the root) or a path like `/stats` without a trailing slash.
    public let pathPrefix: String
    /// Takes the report a request shows.
    public let collect: @Sendable () -> StatsReport
    /// Metrics recorded through swift-metrics, appended to `/metrics`.
    public let registry: PrometheusCollectorRegistry?

    /// Creates the endpoints.
    /// - Parameters:
    ///   - pathPrefix: `""` or `/something` (a trailing slash is ignored).
    ///   - registry: A long-lived registry (the one behind the process's `PrometheusMetricsFactory`), appended to
    ///     `/metrics`; `nil` for none.
    ///   - collect: Takes a fresh report; called once per request from the connection's task, so it must be quick
    ///     and must not block (reading the proxy's locked counters is fine).
    public init(pathPrefix: String = "", registry: PrometheusCollectorRegistry? = nil, collect: @escaping @Sendable () -> StatsReport) {
        var prefix = pathPrefix
        while prefix.hasSuffix("/") { prefix.removeLast() }
        self.pathPrefix = prefix
        self.registry = registry
        self.collect = collect
    }

    /// The endpoint a request target names, if any (the query string is ignored).
    public enum Endpoint: String, Sendable, CaseIterable {
        /// The status page.
        case page = "/"
        /// The JSON status.
        case json = "/status.json"
        /// The Prometheus exposition.
        case metrics = "/metrics"
    }

    /// The endpoint of `target`, or `nil` for a 404.
    public func endpoint(for target: String) -> Endpoint? {
        let path = target.split(separator: "?", maxSplits: 1, omittingEmptySubsequences: false).first.map(String.init) ?? ""
        guard path.hasPrefix(pathPrefix) else { return nil }
        let rest = path.dropFirst(pathPrefix.count)
        if rest.isEmpty { return .page }
        return Endpoint(rawValue: String(rest))
    }

    /// Answers one request.
    /// - Parameters:
    ///   - method: The request method (`GET`, `HEAD`, …).
    ///   - target: The request target (`/metrics`, `/stats/status.json?x=1`).
    /// - Returns: The response; for `HEAD` the caller sends the headers only.
    public func respond(method: String, target: String) -> Response {
        guard method == "GET" || method == "HEAD" else {
            return Response(
                status: 405, contentType: "text/plain; charset=utf-8", body: Array("method not allowed\n".utf8),
                headers: [("Allow", "GET, HEAD")])
        }
        guard let endpoint = endpoint(for: target) else {
            return Response(status: 404, contentType: "text/plain; charset=utf-8", body: Array("not found\n".utf8))
        }
        let report = collect()
        switch endpoint {
        case .metrics:
            return Response(status: 200, contentType: PrometheusExposition.contentType, body: Array(PrometheusExposition.render(report, extra: registry).utf8))
        case .json:
            return Response(status: 200, contentType: StatusJSON.contentType, body: Array(StatusJSON.render(report)))
        case .page:
            return Response(status: 200, contentType: StatusPage.contentType, body: Array(StatusPage.render(report, pathPrefix: pathPrefix).utf8))
        }
    }
}
