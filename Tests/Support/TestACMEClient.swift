import Crypto
import Foundation
import NIOConcurrencyHelpers
import SwiftASN1
import X509

/// A deliberately small ACME client for tests (ES256 accounts, http-01 only), built on ``Curl`` and ``TestJWS``.
///
/// It shares no code with certkeeper, so tests can use it to set up state (an account, an issued certificate to
/// renew or revoke) or to check what a server does, without trusting the code under test.
public final class TestACMEClient: Sendable {
    /// The URLs of a server's directory.
    public struct Directory: Sendable {
        /// `newNonce`.
        public let newNonce: String
        /// `newAccount`.
        public let newAccount: String
        /// `newOrder`.
        public let newOrder: String
        /// `revokeCert`.
        public let revokeCert: String
        /// `renewalInfo` (ARI), when offered.
        public let renewalInfo: String?
        /// Profile names from `meta.profiles`.
        public let profiles: [String]
    }

    /// The result of ``obtainCertificate(dnsNames:profile:replaces:certificateKey:http01:)``.
    public struct Issued: Sendable {
        /// The order URL.
        public let orderURL: String
        /// The certificate URL.
        public let certificateURL: String
        /// The PEM chain as served (leaf first).
        public let pemChain: String
        /// The parsed chain, leaf first.
        public let certificates: [Certificate]
        /// The leaf's private key.
        public let key: P256.Signing.PrivateKey
    }

    /// The server's directory URL.
    public let directoryURL: String
    /// PEM file trusted for the server's TLS.
    public let caBundlePath: String
    /// The account key.
    public let accountKey: P256.Signing.PrivateKey
    /// Bound on each poll loop, in seconds.
    public let pollTimeout: Double

    private struct State {
        var directory: Directory?
        var nonce: String?
        var kid: String?
    }
    private let state = NIOLockedValueBox(State())

    /// Creates a client; nothing is sent until the first call.
    public init(directoryURL: String, caBundlePath: String,
                accountKey: P256.Signing.PrivateKey = P256.Signing.PrivateKey(), pollTimeout: Double = 30) {
        self.directoryURL = directoryURL
        self.caBundlePath = caBundlePath
        self.accountKey = accountKey
        self.pollTimeout = pollTimeout
    }

    /// The account URL once ``newAccount(contact:)`` succeeded.
    public var accountURL: String? { state.withLockedValue { $0.kid } }

    /// The key authorization for an http-01 token with this account key.
    public func keyAuthorization(token: String) -> String {
        token + "." + TestJWS.thumbprint(of: accountKey.publicKey)
    }

    /// Fetches (once) and returns the directory.
    /// - Throws: ``TestSupportError/http(url:reason:)``.
    public func directory() async throws -> Directory {
        if let cached = state.withLockedValue({ $0.directory }) { return cached }
        let response = try await Curl.request("GET", directoryURL, caBundlePath: caBundlePath)
        let json = try Self.object(response, url: directoryURL, expecting: [200])
        func url(_ key: String) throws -> String {
            guard let value = json[key] as? String else {
                throw TestSupportError.http(url: directoryURL, reason: "directory has no \(key)")
            }
            return value
        }
        let profiles = ((json["meta"] as? [String: Any])?["profiles"] as? [String: Any]).map { Array($0.keys).sorted() }
        let directory = Directory(
            newNonce: try url("newNonce"), newAccount: try url("newAccount"), newOrder: try url("newOrder"),
            revokeCert: try url("revokeCert"), renewalInfo: json["renewalInfo"] as? String, profiles: profiles ?? [])
        state.withLockedValue { $0.directory = directory }
        return directory
    }

    /// Creates (or finds) the account for ``accountKey`` and remembers its URL as `kid`.
    /// - Returns: The account URL.
    /// - Throws: ``TestSupportError/http(url:reason:)``.
    @discardableResult
    public func newAccount(contact: [String] = []) async throws -> String {
        let directory = try await directory()
        let payload = try Self.jsonText(["termsOfServiceAgreed": true, "contact": contact])
        let response = try await post(directory.newAccount, payload: payload, useJWK: true)
        _ = try Self.object(response, url: directory.newAccount, expecting: [200, 201])
        guard let location = response.headers["location"] else {
            throw TestSupportError.http(url: directory.newAccount, reason: "no Location header")
        }
        state.withLockedValue { $0.kid = location }
        return location
    }

    /// Sends a JWS-signed POST (POST-as-GET when `payload` is `nil`), retrying up to 12 times on `badNonce` (Pebble
    /// rejects 20 % of nonces by default: five tries failed about once in 3,000 POSTs).
    /// - Parameters:
    ///   - url: The resource.
    ///   - payload: JSON text, or `nil` for POST-as-GET.
    ///   - useJWK: Embed the public key instead of the account URL (newAccount, revocation by key).
    ///   - key: The signing key; ``accountKey`` by default.
    /// - Returns: The final response, whatever its status.
    /// - Throws: ``TestSupportError/http(url:reason:)`` when the request cannot be sent.
    public func post(_ url: String, payload: String?, useJWK: Bool = false,
                     key: P256.Signing.PrivateKey? = nil) async throws -> Curl.Response {
        var attempt = 0
        while true {
            attempt += 1
            let nonce = try await takeNonce()
            let kid = useJWK ? nil : state.withLockedValue { $0.kid }
            if !useJWK, kid == nil {
                throw TestSupportError.http(url: url, reason: "no account yet: call newAccount() first")
            }
            let body = try TestJWS.sign(payload: payload, url: url, nonce: nonce, key: key ?? accountKey, kid: kid)
            let response = try await Curl.request(
                "POST", url, caBundlePath: caBundlePath, headers: ["Content-Type": "application/jose+json"],
                body: body)
            if let next = response.headers["replay-nonce"] { state.withLockedValue { $0.nonce = next } }
            let isBadNonce = response.status == 400 && response.body.contains("urn:ietf:params:acme:error:badNonce")
            if !isBadNonce || attempt >= 12 { return response }
        }
    }

    /// Orders, solves http-01 through `http01`, finalizes and downloads a certificate.
    /// - Parameters:
    ///   - dnsNames: The names to certify.
    ///   - profile: A profile name to request, if any.
    ///   - replaces: An ARI certID to put in `replaces`, if any.
    ///   - certificateKey: The leaf key; a fresh P-256 key by default.
    ///   - http01: Called for each pending authorization with (token, key authorization) before the challenge is
    ///     triggered; it must make `http://<name>/.well-known/acme-challenge/<token>` serve the key authorization.
    /// - Throws: ``TestSupportError/http(url:reason:)`` with the server's problem text when a step fails.
    public func obtainCertificate(
        dnsNames: [String],
        profile: String? = nil,
        replaces: String? = nil,
        certificateKey: P256.Signing.PrivateKey = P256.Signing.PrivateKey(),
        http01: @Sendable (_ token: String, _ keyAuthorization: String) async throws -> Void = { _, _ in }
    ) async throws -> Issued {
        let directory = try await directory()
        if accountURL == nil { try await newAccount() }
        var orderPayload: [String: Any] = ["identifiers": dnsNames.map { ["type": "dns", "value": $0] }]
        if let profile { orderPayload["profile"] = profile }
        if let replaces { orderPayload["replaces"] = replaces }
        let created = try await post(directory.newOrder, payload: try Self.jsonText(orderPayload))
        var order = try Self.object(created, url: directory.newOrder, expecting: [201])
        guard let orderURL = created.headers["location"] else {
            throw TestSupportError.http(url: directory.newOrder, reason: "no Location header on new order")
        }

        for authorizationURL in order["authorizations"] as? [String] ?? [] {
            let authorization = try Self.object(try await post(authorizationURL, payload: nil), url: authorizationURL,
                                                expecting: [200])
            guard authorization["status"] as? String == "pending" else { continue }
            let challenges = authorization["challenges"] as? [[String: Any]] ?? []
            guard let challenge = challenges.first(where: { $0["type"] as? String == "http-01" }),
                  let challengeURL = challenge["url"] as? String, let token = challenge["token"] as? String
            else {
                throw TestSupportError.http(url: authorizationURL, reason: "no http-01 challenge offered")
            }
            try await http01(token, keyAuthorization(token: token))
            _ = try Self.object(try await post(challengeURL, payload: "{}"), url: challengeURL, expecting: [200])
            _ = try await poll(authorizationURL, until: ["valid"], failOn: ["invalid", "deactivated", "expired", "revoked"])
        }

        order = try await poll(orderURL, until: ["ready", "valid"], failOn: ["invalid"])
        if order["status"] as? String == "ready" {
            guard let finalizeURL = order["finalize"] as? String else {
                throw TestSupportError.http(url: orderURL, reason: "order has no finalize URL")
            }
            let csr = try Self.csrDER(dnsNames: dnsNames, key: certificateKey)
            let finalized = try await post(finalizeURL, payload: try Self.jsonText(["csr": Base64URL.encode(csr)]))
            _ = try Self.object(finalized, url: finalizeURL, expecting: [200])
            order = try await poll(orderURL, until: ["valid"], failOn: ["invalid"])
        }
        guard let certificateURL = order["certificate"] as? String else {
            throw TestSupportError.http(url: orderURL, reason: "valid order has no certificate URL")
        }
        let download = try await post(certificateURL, payload: nil)
        guard download.status == 200 else {
            throw TestSupportError.http(url: certificateURL, reason: "status \(download.status): \(download.body)")
        }
        let certificates: [Certificate]
        do {
            certificates = try PEMDocument.parseMultiple(pemString: download.body).map { try Certificate(pemDocument: $0) }
        } catch {
            throw TestSupportError.http(url: certificateURL, reason: "chain is not PEM certificates: \(error)")
        }
        return Issued(orderURL: orderURL, certificateURL: certificateURL, pemChain: download.body,
                      certificates: certificates, key: certificateKey)
    }

    /// Revokes a certificate with the account key.
    /// - Returns: The server's response (200 on success).
    /// - Throws: ``TestSupportError/http(url:reason:)`` when the request cannot be sent.
    public func revoke(_ certificate: Certificate, reason: Int? = nil) async throws -> Curl.Response {
        let directory = try await directory()
        var serializer = DER.Serializer()
        try serializer.serialize(certificate)
        var payload: [String: Any] = ["certificate": Base64URL.encode(serializer.serializedBytes)]
        if let reason { payload["reason"] = reason }
        return try await post(directory.revokeCert, payload: try Self.jsonText(payload))
    }

    /// A DER PKCS#10 request for `dnsNames` (SAN extension request) signed by `key`.
    /// - Throws: ``TestSupportError/certificate(what:reason:)``.
    public static func csrDER(dnsNames: [String], key: P256.Signing.PrivateKey) throws -> [UInt8] {
        try TestCA.wrap("CSR for \(dnsNames.joined(separator: ","))") {
            let extensions = try Certificate.Extensions { SubjectAlternativeNames(dnsNames.map { .dnsName($0) }) }
            let attributes = CertificateSigningRequest.Attributes(
                [try CertificateSigningRequest.Attribute(ExtensionRequest(extensions: extensions))])
            let csr = try CertificateSigningRequest(
                version: .v1, subject: try DistinguishedName { CommonName(dnsNames.first ?? "") },
                privateKey: Certificate.PrivateKey(key), attributes: attributes, signatureAlgorithm: .ecdsaWithSHA256)
            var serializer = DER.Serializer()
            try serializer.serialize(csr)
            return serializer.serializedBytes
        }
    }

    // MARK: - Internals

    private func takeNonce() async throws -> String {
        if let nonce = state.withLockedValue({ state -> String? in
            defer { state.nonce = nil }
            return state.nonce
        }) {
            return nonce
        }
        let url = try await directory().newNonce
        let response = try await Curl.request("HEAD", url, caBundlePath: caBundlePath)
        guard let nonce = response.headers["replay-nonce"] else {
            throw TestSupportError.http(url: url, reason: "no Replay-Nonce header (status \(response.status))")
        }
        return nonce
    }

    private func poll(_ url: String, until done: Set<String>, failOn: Set<String>) async throws -> [String: Any] {
        let deadline = ContinuousClock.now + .milliseconds(Int(pollTimeout * 1000))
        while true {
            let object = try Self.object(try await post(url, payload: nil), url: url, expecting: [200])
            let status = object["status"] as? String ?? ""
            if done.contains(status) { return object }
            if failOn.contains(status) {
                throw TestSupportError.http(url: url, reason: "status became \(status): \(object["error"] ?? "")")
            }
            if ContinuousClock.now >= deadline {
                throw TestSupportError.timedOut(what: "polling \(url) (last status \(status))", seconds: pollTimeout,
                                                logTail: "")
            }
            try await Task.sleep(for: .milliseconds(200))
        }
    }

    private static func object(_ response: Curl.Response, url: String, expecting: Set<Int>) throws -> [String: Any] {
        guard expecting.contains(response.status) else {
            throw TestSupportError.http(url: url, reason: "status \(response.status): \(response.body)")
        }
        guard let object = try? JSONSerialization.jsonObject(with: Data(response.body.utf8)) as? [String: Any] else {
            throw TestSupportError.http(url: url, reason: "body is not a JSON object: \(response.body.prefix(200))")
        }
        return object
    }

    private static func jsonText(_ object: [String: Any]) throws -> String {
        String(decoding: try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys]), as: UTF8.self)
    }
}
