import Foundation

/// A minimal HTTP(S) client for tests, built on `/usr/bin/curl` so that it shares no code with certkeeper's own
/// HTTP stack.
public enum Curl {
    /// An HTTP response as seen by curl.
    public struct Response: Sendable {
        /// The status code of the final response.
        public let status: Int
        /// Response headers with lower-cased names (the last value wins when a header repeats).
        public let headers: [String: String]
        /// The body.
        public let body: String
    }

    /// Sends one request.
    /// - Parameters:
    ///   - method: `GET`, `HEAD`, `POST`, …
    ///   - url: The URL.
    ///   - caBundlePath: A PEM file to trust for HTTPS (`--cacert`); `nil` uses the system store.
    ///   - headers: Extra request headers.
    ///   - body: A request body, sent as-is.
    ///   - timeout: Bound on the whole request in seconds.
    /// - Throws: ``TestSupportError/http(url:reason:)`` when curl fails (connection refused, TLS error, timeout).
    public static func request(
        _ method: String = "GET",
        _ url: String,
        caBundlePath: String? = nil,
        headers: [String: String] = [:],
        body: String? = nil,
        timeout: Double = 10
    ) async throws -> Response {
        var arguments = ["-sS", "--max-time", String(timeout), "-D", "-", "-X", method]
        if method == "HEAD" { arguments = ["-sS", "--max-time", String(timeout), "-D", "-", "-I"] }
        if let caBundlePath { arguments += ["--cacert", caBundlePath] }
        for (name, value) in headers.sorted(by: { $0.key < $1.key }) { arguments += ["-H", "\(name): \(value)"] }
        if let body { arguments += ["--data-binary", body] }
        arguments.append(url)
        let result = try await OneShotProcess.run(
            executable: "/usr/bin/curl", arguments: arguments, timeout: timeout + 5)
        guard result.exitCode == 0 else {
            throw TestSupportError.http(
                url: url, reason: "curl exit \(result.exitCode): \(result.stderr.trimmingCharacters(in: .whitespacesAndNewlines))")
        }
        return try parse(result.stdout, url: url)
    }

    /// Splits curl's `-D -` output (one or more header blocks, then the body) into a ``Response``.
    private static func parse(_ output: String, url: String) throws -> Response {
        var rest = Substring(output)
        var status = 0
        var headers: [String: String] = [:]
        // Skip interim responses (100 Continue); the last header block belongs to the final response.
        repeat {
            guard let end = rest.range(of: "\r\n\r\n") else {
                throw TestSupportError.http(url: url, reason: "no HTTP header block in curl output")
            }
            let lines = rest[..<end.lowerBound].components(separatedBy: "\r\n")
            rest = rest[end.upperBound...]
            let statusParts = lines.first?.split(separator: " ") ?? []
            status = statusParts.count > 1 ? Int(statusParts[1]) ?? 0 : 0
            headers = [:]
            for line in lines.dropFirst() {
                guard let colon = line.firstIndex(of: ":") else { continue }
                let name = line[..<colon].lowercased()
                headers[name] = line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
            }
        } while (100..<200).contains(status) && rest.hasPrefix("HTTP/")
        return Response(status: status, headers: headers, body: String(rest))
    }
}
