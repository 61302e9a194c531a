import ACMEClient
import CertProxy
import CertStats
import Foundation
import NIOCore
import NIOEmbedded
import NIOHTTP1
import PeerSync

/// HTTP/1 requests as a listener receives them: the input is the connection's bytes, written into an
/// `EmbeddedChannel` per listener with that listener's own pipeline:
///
/// - the http frontend (`mode: http`): ``ACMEHTTPHandler/configure(channel:settings:idle:logger:)``, answering
///   challenges for the fixture's account;
/// - the http-01 responder: NIO's server pipeline and `HTTP01Handler` with one token;
/// - the stats and peer API listeners: NIO's server pipeline, then every decoded head to
///   ``StatsEndpoints/respond(method:target:)`` and ``PeerAPI/respond(method:uri:peer:logger:)``, the answers
///   written back through the response encoder as their servers do.
///
/// Invariants: every response starts with an HTTP/1 status line whose status that listener can give; a redirect
/// points at `https://`; a stats 405 carries `Allow`; the peer API's answers pass ``PeerQueryTarget``'s checks.
enum HTTPRequestTarget {
    static let token = "fuzz_token-0123456789abcdefABCDEF"

    static let frontendSettings: ProxyHTTPSettings = {
        var settings = ProxyHTTPSettings(
            thumbprints: AccountThumbprintSource(store: FuzzFixture.shared.store, directoryURL: FuzzFixture.directoryURL, logger: FuzzFixture.logger),
            httpsPort: 8443)
        // EmbeddedChannel has no other thread to come back from.
        settings.lookup = .inline
        return settings
    }()

    static let tokens: HTTP01TokenTable = {
        let table = HTTP01TokenTable()
        table.add(token: token, keyAuthorization: token + ".thumbprint")
        return table
    }()

    static let stats: StatsEndpoints = {
        let now = Date(timeIntervalSince1970: 1_800_000_000)
        let certificate = CertificateStatus(
            name: "web", serial: "0a1b", sha256: String(repeating: "ab", count: 32), dnsNames: ["web.fuzz.example"],
            notAfter: now.addingTimeInterval(86400 * 30), now: now)
        let report = StatsReport(generatedAt: now, frontends: [], certificates: [certificate])
        return StatsEndpoints(pathPrefix: "", registry: nil, collect: { report })
    }()

    static func run(_ bytes: UnsafeRawBufferPointer) throws(FuzzViolation) {
        let input = ByteBuffer(bytes: bytes)
        try frontend(input)
        try http01(input)
        try routes(input)
    }

    private static func frontend(_ input: ByteBuffer) throws(FuzzViolation) {
        let channel = EmbeddedChannel()
        defer { _ = try? channel.finish(acceptAlreadyClosed: true) }
        do {
            try ACMEHTTPHandler.configure(channel: channel, settings: frontendSettings, idle: .seconds(30), logger: FuzzFixture.logger)
        } catch {
            fatalError("cannot build the http frontend pipeline: \(error)")
        }
        activate(channel)
        _ = try? channel.writeInbound(input)
        for head in responseHeads(channel) {
            try require([200, 301, 308, 400, 404, 405].contains(head.status), "http frontend answered \(head.status)")
            if head.status == 301 || head.status == 308 {
                try require(head.header("location")?.hasPrefix("https://") == true, "redirect to \(quoted(head.header("location") ?? "nothing"))")
            }
        }
    }

    private static func http01(_ input: ByteBuffer) throws(FuzzViolation) {
        let channel = EmbeddedChannel()
        defer { _ = try? channel.finish(acceptAlreadyClosed: true) }
        do {
            try channel.pipeline.syncOperations.configureHTTPServerPipeline(withErrorHandling: true)
            try channel.pipeline.syncOperations.addHandler(HTTP01Handler(tokens: tokens))
        } catch {
            fatalError("cannot build the http-01 pipeline: \(error)")
        }
        activate(channel)
        _ = try? channel.writeInbound(input)
        for head in responseHeads(channel) {
            try require([200, 400, 404].contains(head.status), "http-01 responder answered \(head.status)")
        }
    }

    private static func routes(_ input: ByteBuffer) throws(FuzzViolation) {
        let channel = EmbeddedChannel()
        defer { _ = try? channel.finish(acceptAlreadyClosed: true) }
        do {
            try channel.pipeline.syncOperations.configureHTTPServerPipeline(withPipeliningAssistance: true, withErrorHandling: true)
        } catch {
            fatalError("cannot build the HTTP server pipeline: \(error)")
        }
        activate(channel)
        _ = try? channel.writeInbound(input)
        var head: HTTPRequestHead?
        while let part = try? channel.readInbound(as: HTTPServerRequestPart.self) {
            switch part {
            case .head(let requestHead): head = requestHead
            case .body: break
            case .end:
                guard let request = head else { continue }
                head = nil
                let statsResponse = stats.respond(method: request.method.rawValue, target: request.uri)
                try require([200, 404, 405].contains(statsResponse.status), "stats answered \(statsResponse.status)")
                if statsResponse.status == 405 {
                    try require(statsResponse.headers.contains { $0.0 == "Allow" }, "stats 405 without Allow")
                }
                var headers = HTTPHeaders()
                headers.add(name: "content-type", value: statsResponse.contentType)
                headers.add(name: "content-length", value: "\(statsResponse.body.count)")
                for (name, value) in statsResponse.headers { headers.add(name: name, value: value) }
                _ = try? channel.writeOutbound(HTTPServerResponsePart.head(HTTPResponseHead(
                    version: request.version, status: HTTPResponseStatus(statusCode: statsResponse.status), headers: headers)))
                _ = try? channel.writeOutbound(HTTPServerResponsePart.end(nil))

                let peerResponse = PeerQueryTarget.respond(request.uri, method: request.method.rawValue)
                try PeerQueryTarget.check(peerResponse, uri: request.uri)
            }
        }
        for response in responseHeads(channel) {
            try require([200, 400, 404, 405].contains(response.status), "stats pipeline wrote \(response.status)")
        }
    }

    /// Makes the channel active, as an accepted connection is.
    private static func activate(_ channel: EmbeddedChannel) {
        do {
            try channel.connect(to: SocketAddress(ipAddress: "192.0.2.1", port: 40000)).wait()
        } catch {
            fatalError("cannot activate an EmbeddedChannel: \(error)")
        }
    }

    /// The status line and headers of every response the channel wrote.
    private static func responseHeads(_ channel: EmbeddedChannel) -> [ResponseHead] {
        var heads: [ResponseHead] = []
        while let data = try? channel.readOutbound(as: IOData.self) {
            guard case .byteBuffer(let buffer) = data, let head = ResponseHead(buffer) else { continue }
            heads.append(head)
        }
        return heads
    }
}

/// A response head as the encoder wrote it: `HTTP/1.x NNN reason`, then header lines.
struct ResponseHead {
    var status: Int
    var lines: [Substring]

    init?(_ buffer: ByteBuffer) {
        let text = String(buffer: buffer)
        guard text.hasPrefix("HTTP/1."), text.contains("\r\n\r\n") else { return nil }
        let parts = text.split(separator: "\r\n", omittingEmptySubsequences: false)
        guard let first = parts.first, first.count >= 12, let status = Int(first.dropFirst(9).prefix(3)) else { return nil }
        self.status = status
        lines = Array(parts.dropFirst())
    }

    /// The first value of header `name` (case-insensitive).
    func header(_ name: String) -> String? {
        for line in lines {
            guard let colon = line.firstIndex(of: ":"), line[..<colon].lowercased() == name else { continue }
            return line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
        }
        return nil
    }
}
