import ACMEProtocol
import AsyncHTTPClient
import CertStore
import Durations
import Foundation
import Logging
import NIOCore
import NIOHTTP1
import NIOSSL

/// One HTTP response, body collected.
public struct ACMEResponse: Sendable {
    public var status: Int
    public var headers: HTTPHeaders
    public var body: [UInt8]

    /// The `Location` header: the URL of a created account or order.
    public var location: String? { headers.first(name: "Location") }
    public var replayNonce: String? { headers.first(name: "Replay-Nonce") }
    public var retryAfterHeader: String? { headers.first(name: "Retry-After") }
}

/// Builds the HTTP client certkeeper uses to talk to a CA: system roots plus an optional extra CA bundle
/// (test CAs such as Pebble serve their API with a certificate from their own root).
public enum ACMEHTTPClientFactory {
    /// - Parameter extraTrustRootsFile: a PEM file of additional roots, or `nil`.
    /// - Throws: `ACMEError` naming the file when it does not hold a usable certificate.
    public static func make(extraTrustRootsFile: String?, requestTimeout: Double) throws(ACMEError) -> HTTPClient {
        var tls = TLSConfiguration.makeClientConfiguration()
        tls.minimumTLSVersion = .tlsv12
        if let extraTrustRootsFile {
            do {
                // Bounded like every file certkeeper reads (a system bundle is about 200 KiB).
                guard let bytes = try SmallFile.read(extraTrustRootsFile) else {
                    throw ACMEError(.transport("cannot load CA bundle \(extraTrustRootsFile): no such file"))
                }
                let roots = try NIOSSLCertificate.fromPEMBytes(bytes)
                guard !roots.isEmpty else { throw ACMEError(.protocolViolation("no certificate in CA bundle \(extraTrustRootsFile)")) }
                tls.additionalTrustRoots = [.certificates(roots)]
            } catch let error as ACMEError {
                throw error
            } catch {
                throw ACMEError(.transport("cannot load CA bundle \(extraTrustRootsFile): \(error)"))
            }
        }
        let timeout = TimeAmount(Duration.clampedSeconds(requestTimeout))
        let configuration = HTTPClient.Configuration(
            tlsConfiguration: tls,
            redirectConfiguration: .disallow,
            timeout: .init(connect: timeout, read: timeout),
            decompression: .disabled
        )
        return HTTPClient(eventLoopGroupProvider: .singleton, configuration: configuration)
    }
}

/// Signed ACME requests over HTTP: nonces, JWS, problem documents, `badNonce` retries.
///
/// Safe to use from concurrent tasks: the nonce pool is an actor and the HTTP client is thread-safe.
public final class ACMETransport: Sendable {
    static let maximumBody = 4 << 20
    static let badNonceRetries = 10
    static let userAgent = "certkeeper/0.1 (+https://github.com/certkeeper)"

    let http: HTTPClient
    let signer: JWSSigner
    let nonces = NoncePool()
    let requestTimeout: TimeAmount
    let logger: Logger
    let clock: @Sendable () -> Date

    public init(http: HTTPClient, accountKey: AccountKey, requestTimeout: Double, logger: Logger, clock: @escaping @Sendable () -> Date = Date.init) {
        self.http = http
        self.signer = JWSSigner(key: accountKey)
        self.requestTimeout = TimeAmount(Duration.clampedSeconds(requestTimeout))
        self.logger = logger
        self.clock = clock
    }

    /// A plain GET (directory, renewalInfo). Maps error statuses to `ACMEError`.
    public func get(_ url: String) async throws(ACMEError) -> ACMEResponse {
        let response = try await send(url: url, method: .GET, body: nil, accept: "application/json")
        try Self.check(response, url: url, clock: clock)
        return response
    }

    /// A signed POST (RFC 8555 §6.2). `payload == nil` is POST-as-GET. A `badNonce` answer is retried
    /// transparently with the nonce it carried, up to ten times.
    public func post(
        _ url: String,
        payload: [UInt8]?,
        identification: JWSKeyIdentification,
        newNonceURL: String,
        accept: String = "application/json"
    ) async throws(ACMEError) -> ACMEResponse {
        var attempt = 0
        while true {
            attempt += 1
            let nonce = try await nextNonce(newNonceURL: newNonceURL)
            let jws: FlattenedJWS
            do {
                jws = try signer.sign(payload: payload, url: url, nonce: nonce, identification: identification)
            } catch {
                throw ACMEError(.protocolViolation(error.description), url: url)
            }
            let response = try await send(url: url, method: .POST, body: jws.jsonBody, accept: accept)
            if let fresh = response.replayNonce { await nonces.add(fresh) }
            do {
                try Self.check(response, url: url, clock: clock)
                return response
            } catch let error where error.problemKind == .badNonce && attempt <= Self.badNonceRetries {
                logger.debug("CA rejected nonce; retrying", metadata: ["acme.url": "\(url)", "acme.attempt": "\(attempt)"])
                continue
            }
        }
    }

    func nextNonce(newNonceURL: String) async throws(ACMEError) -> String {
        if let nonce = await nonces.take() { return nonce }
        let response = try await send(url: newNonceURL, method: .HEAD, body: nil, accept: nil)
        guard (200..<300).contains(response.status), let nonce = response.replayNonce else {
            try Self.check(response, url: newNonceURL, clock: clock)
            throw ACMEError(.protocolViolation("newNonce answered without Replay-Nonce"), url: newNonceURL)
        }
        return nonce
    }

    func send(url: String, method: HTTPMethod, body: [UInt8]?, accept: String?) async throws(ACMEError) -> ACMEResponse {
        var request = HTTPClientRequest(url: url)
        request.method = method
        request.headers.add(name: "User-Agent", value: Self.userAgent)
        if let accept { request.headers.add(name: "Accept", value: accept) }
        if let body {
            request.headers.add(name: "Content-Type", value: "application/jose+json")
            request.body = .bytes(ByteBuffer(bytes: body))
        }
        do {
            let response = try await http.execute(request, timeout: requestTimeout)
            let buffer = try await response.body.collect(upTo: Self.maximumBody)
            return ACMEResponse(status: Int(response.status.code), headers: response.headers, body: Array(buffer.readableBytesView))
        } catch let error as HTTPClientError {
            throw ACMEError(.transport(Self.describe(error)), url: url)
        } catch {
            throw ACMEError(.transport("\(error)"), url: url)
        }
    }

    static func describe(_ error: HTTPClientError) -> String {
        switch error {
        case .connectTimeout: "connect timed out"
        case .readTimeout, .deadlineExceeded: "request timed out"
        case .remoteConnectionClosed: "server closed the connection"
        default: "\(error)"
        }
    }

    /// Throws the typed error for a non-2xx response: its problem document when it has one.
    static func check(_ response: ACMEResponse, url: String, clock: () -> Date) throws(ACMEError) {
        guard !(200..<300).contains(response.status) else { return }
        let retryAfter = RetryAfter.seconds(from: response.retryAfterHeader, now: clock())
        let contentType = response.headers.first(name: "Content-Type") ?? ""
        if contentType.contains("problem+json") || contentType.contains("json"),
           let problem = try? ACMEJSON.decoder().decode(ACMEProblem.self, from: Data(response.body)) {
            throw ACMEError(.problem(problem), url: url, retryAfter: retryAfter)
        }
        let snippet = String(decoding: response.body.prefix(200), as: UTF8.self)
            .replacingOccurrences(of: "\n", with: " ")
            .trimmingCharacters(in: .whitespaces)
        throw ACMEError(.unexpectedStatus(response.status, body: snippet), url: url, retryAfter: retryAfter)
    }
}

/// Nonces handed out by the server in `Replay-Nonce`, each used once.
actor NoncePool {
    private var nonces: [String] = []

    func take() -> String? { nonces.popLast() }

    func add(_ nonce: String) {
        nonces.append(nonce)
        if nonces.count > 32 { nonces.removeFirst(nonces.count - 32) }
    }
}
