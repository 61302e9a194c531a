import ACMEProtocol
import AsyncHTTPClient
import Durations
import Foundation
import Logging

/// The account an `ACMEClient` acts as.
public struct ACMEAccountBinding: Sendable, Equatable {
    /// The account URL (`kid`) returned by `newAccount`.
    public var url: String
    public init(url: String) { self.url = url }
}

/// A certificate chain as the CA issued it.
public struct IssuedCertificate: Sendable {
    /// The `application/pem-certificate-chain` body: leaf first.
    public var pemChain: String
    /// The order URL, for logs.
    public var orderURL: String
}

/// An RFC 8555 client: account, orders, challenges, finalization, ARI and revocation against one directory.
///
/// Holds no state besides the cached directory and nonces; callers persist the account URL.
public final class ACMEClient: Sendable {
    public let directoryURL: String
    public let accountKey: AccountKey
    let transport: ACMETransport
    let logger: Logger
    let poll: PollSchedule
    let clock: @Sendable () -> Date
    let cachedDirectory = DirectoryCache()

    /// - Parameters:
    ///   - http: a client from `ACMEHTTPClientFactory`; the caller shuts it down.
    ///   - clock: the time source for Retry-After dates and deadlines.
    public init(
        directoryURL: String,
        accountKey: AccountKey,
        http: HTTPClient,
        requestTimeout: Double = 30,
        poll: PollSchedule = PollSchedule(),
        logger: Logger,
        clock: @escaping @Sendable () -> Date = Date.init
    ) {
        self.directoryURL = directoryURL
        self.accountKey = accountKey
        self.transport = ACMETransport(http: http, accountKey: accountKey, requestTimeout: requestTimeout, logger: logger, clock: clock)
        self.logger = logger
        self.poll = poll
        self.clock = clock
    }

    /// The directory, fetched once per client.
    public func directory() async throws(ACMEError) -> ACMEDirectory {
        if let directory = await cachedDirectory.value { return directory }
        let response = try await transport.get(directoryURL)
        let directory: ACMEDirectory
        do {
            directory = try ACMEJSON.decode(ACMEDirectory.self, from: response.body, what: "directory")
        } catch {
            throw ACMEError(error, url: directoryURL)
        }
        await cachedDirectory.set(directory)
        return directory
    }

    // MARK: Account

    /// Registers the account key, or finds the existing account for it (`newAccount` answers 200 for a known key).
    /// - Parameters:
    ///   - contact: e.g. `["mailto:ops@example.com"]`.
    ///   - externalAccountBinding: key ID and MAC key when the CA requires EAB.
    public func registerAccount(contact: [String], externalAccountBinding: (keyID: String, macKey: [UInt8])? = nil) async throws(ACMEError) -> ACMEAccountBinding {
        let directory = try await directory()
        var request = NewAccountRequest(contact: contact.isEmpty ? nil : contact)
        if let eab = externalAccountBinding {
            let jws = JWSSigner(key: accountKey).externalAccountBinding(keyID: eab.keyID, macKey: eab.macKey, newAccountURL: directory.newAccount)
            request.externalAccountBinding = ExternalAccountBindingJWS(jws)
        }
        let response = try await signedPost(directory.newAccount, request, identification: .jwk, directory: directory)
        guard let location = response.location else {
            throw ACMEError(.protocolViolation("newAccount answered without Location"), url: directory.newAccount)
        }
        let account = try decode(ACMEAccount.self, response, url: directory.newAccount, what: "account")
        guard account.status == "valid" else {
            throw ACMEError(.protocolViolation("account status is \(account.status)"), url: location)
        }
        return ACMEAccountBinding(url: location)
    }

    // MARK: Issuance

    /// Orders and downloads a certificate for `domains`.
    ///
    /// Authorizations the CA already holds as valid are reused; pending ones are answered concurrently by the
    /// solver `solverFor` returns for each identifier. Polling follows `PollSchedule` and the server's Retry-After.
    /// - Parameters:
    ///   - csrDER: the CSR for the new key (from `CSRBuilder`).
    ///   - replaces: ARI certID of the certificate this order replaces; dropped and retried once if the CA
    ///     answers `alreadyReplaced`.
    ///   - profile: the ACME profile to request; must be one the directory advertises.
    ///   - deadline: when to give up on the whole order.
    public func issueCertificate(
        domains: [String],
        csrDER: [UInt8],
        account: ACMEAccountBinding,
        solverFor: @escaping @Sendable (ACMEIdentifier) -> (any ChallengeSolver)?,
        replaces: String? = nil,
        profile: String? = nil,
        deadline: Date
    ) async throws(ACMEError) -> IssuedCertificate {
        let directory = try await directory()
        if let profile {
            let offered = directory.meta?.profiles.map { Array($0.keys).sorted() } ?? []
            guard offered.contains(profile) else { throw ACMEError(.profileNotOffered(profile, offered: offered), url: directoryURL) }
        }
        let (orderURL, createdOrder) = try await newOrder(
            NewOrderRequest(domains: domains, replaces: directory.renewalInfo == nil ? nil : replaces, profile: profile),
            account: account, directory: directory
        )
        logger.debug("order created", metadata: ["acme.order": "\(orderURL)", "acme.status": "\(createdOrder.status.rawValue)"])
        var order = createdOrder
        if order.status == .valid || order.status == .processing {
            // A CA that hands back an order it finalized earlier would give us a certificate for another key.
            throw ACMEError(.protocolViolation("new order is already \(order.status.rawValue); it cannot carry this run's key"), url: orderURL)
        }

        if order.status == .pending {
            try await authorize(order.authorizations, account: account, directory: directory, solverFor: solverFor, deadline: deadline)
            order = try await pollOrder(orderURL, account: account, directory: directory, deadline: deadline, until: [.ready, .valid])
        }
        if order.status == .ready {
            let response = try await signedPost(order.finalize, FinalizeRequest(csrDER: csrDER), identification: .kid(account.url), directory: directory)
            order = try decode(ACMEOrder.self, response, url: order.finalize, what: "order")
        }
        if order.status == .processing {
            order = try await pollOrder(orderURL, account: account, directory: directory, deadline: deadline, until: [.valid])
        }
        guard order.status == .valid, let certificateURL = order.certificate else {
            throw ACMEError(.orderFailed(order.error), url: orderURL)
        }
        let response = try await transport.post(
            certificateURL, payload: nil, identification: .kid(account.url),
            newNonceURL: directory.newNonce, accept: "application/pem-certificate-chain"
        )
        return IssuedCertificate(pemChain: String(decoding: response.body, as: UTF8.self), orderURL: orderURL)
    }

    func newOrder(_ request: NewOrderRequest, account: ACMEAccountBinding, directory: ACMEDirectory) async throws(ACMEError) -> (String, ACMEOrder) {
        let response: ACMEResponse
        do {
            response = try await signedPost(directory.newOrder, request, identification: .kid(account.url), directory: directory)
        } catch let error where request.replaces != nil && error.problemKind != nil && error.problemKind?.isTransient == false {
            // alreadyReplaced, or a CA that does not know the old certificate (another account, a copied state
            // directory, staging vs production): the renewal itself must not fail because of the hint.
            logger.info("CA refused 'replaces'; ordering without it", metadata: ["error": "\(error)"])
            var plain = request
            plain.replaces = nil
            return try await newOrder(plain, account: account, directory: directory)
        }
        guard let location = response.location else {
            throw ACMEError(.protocolViolation("newOrder answered without Location"), url: directory.newOrder)
        }
        return (location, try decode(ACMEOrder.self, response, url: directory.newOrder, what: "order"))
    }

    /// A challenge that was published and must be withdrawn once the whole order is validated.
    struct PublishedChallenge: Sendable {
        let solver: any ChallengeSolver
        let domain: String
        let token: String
        let keyAuthorization: String
        let authorizationURL: String
        let challengeType: String
    }

    /// Answers every pending authorization of an order.
    ///
    /// Challenges are published one after another (a DNS hook written for certbot may keep per-domain state in
    /// files, and `example.org` plus `*.example.org` share one record name), then all are polled concurrently, and
    /// only when every authorization is settled is anything withdrawn: cleaning up one name early could delete a
    /// TXT record a sibling is still being validated against.
    func authorize(
        _ authorizationURLs: [String],
        account: ACMEAccountBinding,
        directory: ACMEDirectory,
        solverFor: @escaping @Sendable (ACMEIdentifier) -> (any ChallengeSolver)?,
        deadline: Date
    ) async throws(ACMEError) {
        var published: [PublishedChallenge] = []
        do throws(ACMEError) {
            for url in authorizationURLs {
                if let challenge = try await publish(url, account: account, directory: directory, solverFor: solverFor) {
                    published.append(challenge)
                }
            }
            let failures = await withTaskGroup(of: ACMEError?.self) { group in
                for challenge in published {
                    group.addTask {
                        do throws(ACMEError) {
                            try await self.awaitValidation(challenge, account: account, directory: directory, deadline: deadline)
                            return nil
                        } catch {
                            return error
                        }
                    }
                }
                var failures: [ACMEError] = []
                for await failure in group {
                    if let failure {
                        failures.append(failure)
                        group.cancelAll()
                    }
                }
                return failures
            }
            if let first = failures.first { throw first }
        } catch {
            await withdraw(published)
            throw error
        }
        await withdraw(published)
    }

    func withdraw(_ published: [PublishedChallenge]) async {
        for challenge in published {
            await challenge.solver.cleanUp(domain: challenge.domain, token: challenge.token, keyAuthorization: challenge.keyAuthorization)
        }
    }

    /// Fetches one authorization; if pending, publishes its challenge and tells the CA to validate.
    /// Returns `nil` for an authorization that is already valid (reused by the CA).
    func publish(
        _ url: String,
        account: ACMEAccountBinding,
        directory: ACMEDirectory,
        solverFor: @Sendable (ACMEIdentifier) -> (any ChallengeSolver)?
    ) async throws(ACMEError) -> PublishedChallenge? {
        let authorization = try await fetch(ACMEAuthorization.self, url, account: account, directory: directory, what: "authorization")
        let domain = (authorization.wildcard == true ? "*." : "") + authorization.identifier.value
        switch authorization.status {
        case .valid:
            logger.debug("authorization reused", metadata: ["acme.domain": "\(domain)"])
            return nil
        case .pending:
            break
        default:
            let problem = authorization.challenges.compactMap(\.error).first
            throw ACMEError(.authorizationFailed(domain: domain, problem), url: url)
        }
        guard let solver = solverFor(authorization.identifier) else {
            throw ACMEError(.solverFailed(domain: domain, reason: "no solver configured"), url: url)
        }
        let wanted = solver.challengeType.rawValue
        guard let challenge = authorization.challenges.first(where: { $0.type == wanted }) else {
            throw ACMEError(.noUsableChallenge(domain: domain, wanted: wanted, offered: authorization.challenges.map(\.type)), url: url)
        }
        guard let token = challenge.token, KeyAuthorization.isValidToken(token) else {
            throw ACMEError(.protocolViolation("challenge token is missing or not base64url"), url: challenge.url)
        }
        let keyAuthorization = KeyAuthorization.http01(token: token, thumbprint: accountKey.thumbprint)
        let published = PublishedChallenge(solver: solver, domain: domain, token: token, keyAuthorization: keyAuthorization, authorizationURL: url, challengeType: wanted)
        do {
            try await solver.present(domain: domain, token: token, keyAuthorization: keyAuthorization)
        } catch {
            // present may have published part of its answer before failing (a hook killed at its timeout).
            await solver.cleanUp(domain: domain, token: token, keyAuthorization: keyAuthorization)
            throw ACMEError(.solverFailed(domain: domain, reason: "\(error)"), url: challenge.url)
        }
        do throws(ACMEError) {
            if challenge.status == .pending {
                _ = try await transport.post(challenge.url, payload: Array("{}".utf8), identification: .kid(account.url), newNonceURL: directory.newNonce)
            }
        } catch {
            await solver.cleanUp(domain: domain, token: token, keyAuthorization: keyAuthorization)
            throw error
        }
        return published
    }

    /// Polls one authorization until it is valid or has failed.
    func awaitValidation(_ challenge: PublishedChallenge, account: ACMEAccountBinding, directory: ACMEDirectory, deadline: Date) async throws(ACMEError) {
        var attempt = 0
        while true {
            let current = try await fetchWithRetryAfter(ACMEAuthorization.self, challenge.authorizationURL, account: account, directory: directory, what: "authorization")
            switch current.value.status {
            case .valid:
                logger.debug("authorization valid", metadata: ["acme.domain": "\(challenge.domain)"])
                return
            case .pending:
                break
            default:
                let problem = current.value.challenges.first(where: { $0.type == challenge.challengeType })?.error
                throw ACMEError(.authorizationFailed(domain: challenge.domain, problem), url: challenge.authorizationURL)
            }
            try await sleep(poll.delay(attempt: attempt, retryAfter: current.retryAfter), deadline: deadline, what: "validation of \(challenge.domain)")
            attempt += 1
        }
    }

    func pollOrder(_ url: String, account: ACMEAccountBinding, directory: ACMEDirectory, deadline: Date, until wanted: Set<OrderStatus>) async throws(ACMEError) -> ACMEOrder {
        var attempt = 0
        while true {
            let current = try await fetchWithRetryAfter(ACMEOrder.self, url, account: account, directory: directory, what: "order")
            if wanted.contains(current.value.status) { return current.value }
            if current.value.status == .invalid { throw ACMEError(.orderFailed(current.value.error), url: url) }
            try await sleep(poll.delay(attempt: attempt, retryAfter: current.retryAfter), deadline: deadline, what: "order \(url)")
            attempt += 1
        }
    }

    // MARK: ARI and revocation

    /// ARI's suggested renewal window for `certID`, and the server's Retry-After (seconds) for the next poll.
    /// Returns `nil` when the directory has no `renewalInfo`.
    public func renewalInfo(certID: String) async throws(ACMEError) -> (info: RenewalInfo, retryAfter: Double?)? {
        let directory = try await directory()
        guard let base = directory.renewalInfo else { return nil }
        let url = ARICertificateID.url(renewalInfoBase: base, certID: certID)
        let response = try await transport.get(url)
        let info: RenewalInfo
        do {
            info = try ACMEJSON.decode(RenewalInfo.self, from: response.body, what: "renewalInfo")
        } catch {
            throw ACMEError(error, url: url)
        }
        guard info.suggestedWindow.start <= info.suggestedWindow.end else {
            throw ACMEError(.malformedResponse("renewalInfo window ends before it starts"), url: url)
        }
        return (info, RetryAfter.seconds(from: response.retryAfterHeader, now: clock()))
    }

    /// Revokes a certificate.
    /// - Parameter account: the account that ordered it; `nil` signs with this client's key as a JWK, which is how a
    ///   request signed by the certificate's own private key is sent (required by Let's Encrypt for keyCompromise).
    public func revoke(certificateDER: [UInt8], reason: RevocationReason?, account: ACMEAccountBinding?) async throws(ACMEError) {
        let directory = try await directory()
        guard let url = directory.revokeCert else {
            throw ACMEError(.protocolViolation("directory has no revokeCert"), url: directoryURL)
        }
        _ = try await signedPost(url, RevocationRequest(certificateDER: certificateDER, reason: reason), identification: account.map { .kid($0.url) } ?? .jwk, directory: directory)
    }

    // MARK: Helpers

    func signedPost<T: Encodable>(_ url: String, _ payload: T, identification: JWSKeyIdentification, directory: ACMEDirectory) async throws(ACMEError) -> ACMEResponse {
        let body: [UInt8]
        do {
            body = try ACMEJSON.encode(payload)
        } catch {
            throw ACMEError(error, url: url)
        }
        return try await transport.post(url, payload: body, identification: identification, newNonceURL: directory.newNonce)
    }

    func fetch<T: Decodable>(_ type: T.Type, _ url: String, account: ACMEAccountBinding, directory: ACMEDirectory, what: String) async throws(ACMEError) -> T {
        try await fetchWithRetryAfter(type, url, account: account, directory: directory, what: what).value
    }

    func fetchWithRetryAfter<T: Decodable>(_ type: T.Type, _ url: String, account: ACMEAccountBinding, directory: ACMEDirectory, what: String) async throws(ACMEError) -> (value: T, retryAfter: Double?) {
        let response = try await transport.post(url, payload: nil, identification: .kid(account.url), newNonceURL: directory.newNonce)
        return (try decode(type, response, url: url, what: what), RetryAfter.seconds(from: response.retryAfterHeader, now: clock()))
    }

    func decode<T: Decodable>(_ type: T.Type, _ response: ACMEResponse, url: String, what: String) throws(ACMEError) -> T {
        do {
            return try ACMEJSON.decode(type, from: response.body, what: what)
        } catch {
            throw ACMEError(error, url: url)
        }
    }

    func sleep(_ seconds: Double, deadline: Date, what: String) async throws(ACMEError) {
        let remaining = deadline.timeIntervalSince(clock())
        guard remaining > 0 else { throw ACMEError(.timedOut(what)) }
        do {
            try await Task.sleep(for: .clampedSeconds(min(seconds, remaining)))
        } catch {
            throw ACMEError(.timedOut("\(what): cancelled"))
        }
    }
}

/// The directory, cached after the first fetch.
actor DirectoryCache {
    private(set) var value: ACMEDirectory?
    func set(_ directory: ACMEDirectory) { value = directory }
}
