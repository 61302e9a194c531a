import Crypto
import Foundation
import NIOConcurrencyHelpers
import SwiftASN1
import X509

#if canImport(Glibc)
import Glibc
#endif

/// An HTTP request as the fake ACME server's logic sees it (no NIO types).
struct FakeACMERequest {
    let method: String
    /// Path with the query string removed.
    let path: String
    /// Headers with lower-cased names.
    let headers: [(String, String)]
    let body: [UInt8]

    func header(_ name: String) -> String? {
        headers.first { $0.0 == name }?.1
    }
}

/// An HTTP response produced by the fake ACME server's logic.
struct FakeACMEResponse {
    var status: Int
    var headers: [(String, String)] = []
    var body: [UInt8] = []
}

/// The fake ACME server's behaviour: all state lives behind one lock, and every request is handled as a whole
/// under it, so tests see consistent records and requests never interleave.
final class FakeACMEEngine: Sendable {
    private let state: NIOLockedValueBox<FakeACMEState>

    init(options: FakeACMEServer.Options, issuer: TestCA) {
        state = NIOLockedValueBox(FakeACMEState(options: options, issuer: issuer))
    }

    func setBaseURL(_ baseURL: String) {
        state.withLockedValue { $0.baseURL = baseURL }
    }

    func handle(_ request: FakeACMERequest) -> FakeACMEResponse {
        state.withLockedValue { $0.handle(request) }
    }

    func withState<T>(_ body: (inout FakeACMEState) -> T) -> T {
        state.withLockedValue(body)
    }
}

/// Mutable state and request handling of the fake ACME server. Only used under ``FakeACMEEngine``'s lock.
struct FakeACMEState {
    typealias Identifier = FakeACMEServer.Identifier

    struct Account {
        let id: Int
        let key: P256.Signing.PublicKey
        var contact: [String]
        var status: String
    }

    struct Order {
        let id: Int
        let accountID: Int
        var status: String
        let identifiers: [Identifier]
        let authorizationIDs: [Int]
        let profile: String
        let requestedProfile: String?
        let replaces: String?
        let expires: Date
        var certificateID: Int?
        var remainingProcessingPolls: Int
    }

    struct Authorization {
        let id: Int
        let identifier: Identifier
        let token: String
        let validated: Date
        let expires: Date
    }

    struct IssuedRecord {
        let id: Int
        let accountID: Int
        let orderID: Int
        let certificate: Certificate
        let chainPEM: String
        let certID: String
        let profile: String
        let replaces: String?
        var replacedByOrderID: Int?
        var revocationReason: Int?
    }

    struct InjectedFailure {
        let status: Int
        let problemType: String
        let detail: String
        let retryAfter: Int?
        var remaining: Int
        let endpoint: FakeACMEServer.Endpoint?
    }

    enum Signer {
        case account(Account)
        case key(P256.Signing.PublicKey)
    }

    let options: FakeACMEServer.Options
    let issuer: TestCA
    var baseURL = "https://127.0.0.1"
    var nonces: Set<String> = []
    var accounts: [Int: Account] = [:]
    var accountIDsByThumbprint: [String: Int] = [:]
    var orders: [Int: Order] = [:]
    var authorizations: [Int: Authorization] = [:]
    var issued: [Int: IssuedRecord] = [:]
    var issuedOrder: [Int] = []
    var renewalWindows: [String: FakeACMEServer.RenewalWindow] = [:]
    var failures: [InjectedFailure] = []
    var badNonceRate: Double = 0
    /// Accumulates ``badNonceRate`` per valid nonce; a nonce is rejected each time it reaches one. Deterministic: a
    /// rate of 0.3 rejects exactly 3 nonces in 10, so a test of the storm never sees none.
    var badNonceCredit: Double = 0
    var recordedOrders: [FakeACMEServer.RecordedOrder] = []
    var requestLog: [FakeACMEServer.RecordedRequest] = []
    private var nextID = 1

    init(options: FakeACMEServer.Options, issuer: TestCA) {
        self.options = options
        self.issuer = issuer
    }

    // MARK: - Entry point

    mutating func handle(_ request: FakeACMERequest) -> FakeACMEResponse {
        var response = route(request)
        response.headers.append(("Replay-Nonce", makeNonce()))
        response.headers.append(("Link", "<\(baseURL)/directory>;rel=\"index\""))
        response.headers.append(("Cache-Control", "no-store"))
        requestLog.append(.init(method: request.method, path: request.path, status: response.status))
        return response
    }

    private mutating func route(_ request: FakeACMERequest) -> FakeACMEResponse {
        let parts = request.path.split(separator: "/").map(String.init)
        guard let (endpoint, id) = Self.endpoint(for: parts),
              endpoint != .renewalInfo || options.renewalInfoEnabled
        else {
            return Self.problem(404, "malformed", "no resource at \(request.path)")
        }
        let allowed: Set<String>
        switch endpoint {
        case .directory, .renewalInfo: allowed = ["GET"]
        case .newNonce: allowed = ["GET", "HEAD"]
        default: allowed = ["POST"]
        }
        guard allowed.contains(request.method) else {
            var response = Self.problem(405, "malformed", "\(request.method) not allowed on \(request.path)")
            response.headers.append(("Allow", allowed.sorted().joined(separator: ", ")))
            return response
        }
        if let failure = takeFailure(for: endpoint, isPost: request.method == "POST") {
            var response = Self.problem(failure.status, failure.problemType, failure.detail)
            if let retryAfter = failure.retryAfter { response.headers.append(("Retry-After", String(retryAfter))) }
            return response
        }

        switch endpoint {
        case .directory: return directory()
        case .newNonce: return FakeACMEResponse(status: request.method == "HEAD" ? 200 : 204)
        case .renewalInfo: return renewalInfo(certID: id ?? "")
        default: break
        }

        let jws: FakeACMEJWS
        let signer: Signer
        switch authenticate(request, endpoint: endpoint) {
        case .success(let result): (jws, signer) = result
        case .failure(let problem): return problem.response
        }
        let numericID = id.flatMap { Int($0) } ?? -1
        switch endpoint {
        case .newAccount: return newAccount(jws: jws, signer: signer)
        case .account: return account(id: numericID, jws: jws, signer: signer)
        case .newOrder: return newOrder(jws: jws, signer: signer)
        case .order: return order(id: numericID, signer: signer)
        case .finalize: return finalize(orderID: numericID, jws: jws, signer: signer)
        case .authorization: return authorization(id: numericID)
        case .challenge: return challenge(id: numericID)
        case .certificate: return certificate(id: numericID)
        case .revokeCert: return revoke(jws: jws, signer: signer)
        case .keyChange: return Self.problem(400, "malformed", "key rollover is not supported by the fake ACME server")
        case .directory, .newNonce, .renewalInfo: fatalError("handled above")
        }
    }

    private static func endpoint(for parts: [String]) -> (FakeACMEServer.Endpoint, String?)? {
        switch parts.count {
        case 1:
            let map: [String: FakeACMEServer.Endpoint] = [
                "directory": .directory, "new-nonce": .newNonce, "new-account": .newAccount, "new-order": .newOrder,
                "revoke-cert": .revokeCert, "key-change": .keyChange,
            ]
            return map[parts[0]].map { ($0, nil) }
        case 2:
            let map: [String: FakeACMEServer.Endpoint] = [
                "acct": .account, "order": .order, "authz": .authorization, "chall": .challenge, "cert": .certificate,
                "renewal-info": .renewalInfo,
            ]
            return map[parts[0]].map { ($0, parts[1]) }
        case 3 where parts[0] == "order" && parts[2] == "finalize":
            return (.finalize, parts[1])
        default:
            return nil
        }
    }

    // MARK: - Nonces, failures

    mutating func makeNonce() -> String {
        let nonce = Self.randomToken()
        nonces.insert(nonce)
        return nonce
    }

    static func randomToken() -> String {
        var generator = SystemRandomNumberGenerator()
        return Base64URL.encode((0..<16).map { _ in UInt8.random(in: 0...255, using: &generator) })
    }

    private mutating func takeFailure(for endpoint: FakeACMEServer.Endpoint, isPost: Bool) -> InjectedFailure? {
        guard let index = failures.firstIndex(where: { $0.endpoint == endpoint || ($0.endpoint == nil && isPost) })
        else { return nil }
        let failure = failures[index]
        failures[index].remaining -= 1
        if failures[index].remaining <= 0 { failures.remove(at: index) }
        return failure
    }

    // MARK: - JWS

    private struct Problem: Error {
        let response: FakeACMEResponse
        init(_ status: Int, _ type: String, _ detail: String, extra: [String: Any] = [:]) {
            response = FakeACMEState.problem(status, type, detail, extra: extra)
        }
    }

    private mutating func authenticate(_ request: FakeACMERequest, endpoint: FakeACMEServer.Endpoint)
        -> Result<(FakeACMEJWS, Signer), Problem>
    {
        let contentType = request.header("content-type") ?? ""
        guard contentType.lowercased().hasPrefix("application/jose+json") else {
            return .failure(Problem(415, "malformed", "Content-Type must be application/jose+json, got '\(contentType)'"))
        }
        let jws: FakeACMEJWS
        do {
            jws = try FakeACMEJWS(body: request.body)
        } catch {
            return .failure(Problem(400, "malformed", error.detail))
        }
        let header = jws.header
        guard header.alg == "ES256" else {
            return .failure(Problem(400, "badSignatureAlgorithm", "unsupported JWS alg '\(header.alg ?? "")'",
                                    extra: ["algorithms": ["ES256"]]))
        }

        let signer: Signer
        let key: P256.Signing.PublicKey
        switch (header.jwk, header.kid) {
        case (.some, .some):
            return .failure(Problem(400, "malformed", "JWS header has both jwk and kid"))
        case (.some(let jwk), nil):
            guard endpoint == .newAccount || endpoint == .revokeCert else {
                return .failure(Problem(400, "malformed", "\(request.path) requires a kid, not a jwk"))
            }
            do {
                key = try FakeACMEJWS.publicKey(from: jwk)
            } catch {
                return .failure(Problem(400, "badPublicKey", error.detail))
            }
            signer = .key(key)
        case (nil, .some(let kid)):
            guard endpoint != .newAccount else {
                return .failure(Problem(400, "malformed", "newAccount requires a jwk, not a kid"))
            }
            let prefix = baseURL + "/acct/"
            guard kid.hasPrefix(prefix), let id = Int(kid.dropFirst(prefix.count)), let account = accounts[id] else {
                return .failure(Problem(400, "accountDoesNotExist", "no account at kid \(kid)"))
            }
            guard account.status == "valid" else {
                return .failure(Problem(401, "unauthorized", "account \(kid) is \(account.status)"))
            }
            key = account.key
            signer = .account(account)
        case (nil, nil):
            return .failure(Problem(400, "malformed", "JWS header has neither jwk nor kid"))
        }
        guard jws.isSignatureValid(for: key) else {
            return .failure(Problem(400, "malformed", "JWS verification error: ES256 signature does not verify"))
        }
        guard let nonce = header.nonce, nonces.remove(nonce) != nil else {
            return .failure(Problem(400, "badNonce", "JWS has an invalid or reused anti-replay nonce '\(header.nonce ?? "")'"))
        }
        if badNonceRate > 0 {
            badNonceCredit += badNonceRate
            if badNonceCredit >= 1 {
                badNonceCredit -= 1
                return .failure(Problem(400, "badNonce", "nonce '\(nonce)' rejected (fake server badNonceRate)"))
            }
        }
        let expectedURL = baseURL + request.path
        guard header.url == expectedURL else {
            return .failure(Problem(401, "unauthorized", "JWS url '\(header.url ?? "")' does not match request URL '\(expectedURL)'"))
        }
        return .success((jws, signer))
    }

    private func decodePayload<T: Decodable>(_ type: T.Type, _ jws: FakeACMEJWS) -> Result<T, Problem> {
        do {
            return .success(try JSONDecoder().decode(T.self, from: Data(jws.payload)))
        } catch {
            return .failure(Problem(400, "malformed", "payload is not a valid \(T.self): \(error)"))
        }
    }

    // MARK: - Resources

    private func directory() -> FakeACMEResponse {
        struct Meta: Encodable {
            let termsOfService: String
            let profiles: [String: String]?
        }
        struct Directory: Encodable {
            let newNonce, newAccount, newOrder, revokeCert, keyChange: String
            let renewalInfo: String?
            let meta: Meta
        }
        let profiles = options.profiles.isEmpty ? nil : options.profiles.mapValues(\.description)
        return Self.json(200, Directory(
            newNonce: baseURL + "/new-nonce", newAccount: baseURL + "/new-account", newOrder: baseURL + "/new-order",
            revokeCert: baseURL + "/revoke-cert", keyChange: baseURL + "/key-change",
            renewalInfo: options.renewalInfoEnabled ? baseURL + "/renewal-info" : nil,
            meta: Meta(termsOfService: "data:text/plain,fake", profiles: profiles)))
    }

    private struct AccountDocument: Encodable {
        let status: String
        let contact: [String]
        let orders: String
    }

    private func accountResponse(_ account: Account, status: Int) -> FakeACMEResponse {
        let url = baseURL + "/acct/\(account.id)"
        var response = Self.json(status, AccountDocument(status: account.status, contact: account.contact,
                                                         orders: url + "/orders"))
        response.headers.append(("Location", url))
        return response
    }

    private mutating func newAccount(jws: FakeACMEJWS, signer: Signer) -> FakeACMEResponse {
        struct Payload: Decodable {
            let contact: [String]?
            let termsOfServiceAgreed: Bool?
            let onlyReturnExisting: Bool?
        }
        guard case .key(let key) = signer else { return Self.problem(400, "malformed", "newAccount needs a jwk") }
        let payload: Payload
        switch decodePayload(Payload.self, jws) {
        case .success(let value): payload = value
        case .failure(let problem): return problem.response
        }
        let thumbprint = FakeACMEJWS.thumbprint(of: key)
        if let id = accountIDsByThumbprint[thumbprint], let existing = accounts[id] {
            return accountResponse(existing, status: 200)
        }
        if payload.onlyReturnExisting == true {
            return Self.problem(400, "accountDoesNotExist", "no account exists for this key")
        }
        let account = Account(id: takeID(), key: key, contact: payload.contact ?? [], status: "valid")
        accounts[account.id] = account
        accountIDsByThumbprint[thumbprint] = account.id
        return accountResponse(account, status: 201)
    }

    private mutating func account(id: Int, jws: FakeACMEJWS, signer: Signer) -> FakeACMEResponse {
        struct Payload: Decodable {
            let contact: [String]?
            let status: String?
        }
        guard case .account(var account) = signer, account.id == id else {
            return Self.problem(403, "unauthorized", "an account can only be read or updated by itself")
        }
        if !jws.payload.isEmpty {
            switch decodePayload(Payload.self, jws) {
            case .success(let payload):
                if let contact = payload.contact { account.contact = contact }
                if payload.status == "deactivated" { account.status = "deactivated" }
            case .failure(let problem):
                return problem.response
            }
            accounts[id] = account
        }
        return accountResponse(account, status: 200)
    }

    private mutating func newOrder(jws: FakeACMEJWS, signer: Signer) -> FakeACMEResponse {
        struct Payload: Decodable {
            let identifiers: [Identifier]?
            let notBefore: String?
            let notAfter: String?
            let replaces: String?
            let profile: String?
        }
        guard case .account(let account) = signer else { return Self.problem(400, "malformed", "newOrder needs a kid") }
        let payload: Payload
        switch decodePayload(Payload.self, jws) {
        case .success(let value): payload = value
        case .failure(let problem): return problem.response
        }
        let identifiers = payload.identifiers ?? []
        let accountURL = baseURL + "/acct/\(account.id)"
        func reject(_ status: Int, _ type: String, _ detail: String) -> FakeACMEResponse {
            recordedOrders.append(.init(identifiers: identifiers, replaces: payload.replaces, profile: payload.profile,
                                        account: accountURL, orderURL: nil, rejectedWith: Self.problemURN(type)))
            return Self.problem(status, type, detail)
        }
        guard !identifiers.isEmpty else { return reject(400, "malformed", "order has no identifiers") }
        if let unsupported = identifiers.first(where: { $0.type != "dns" && $0.type != "ip" }) {
            return reject(400, "unsupportedIdentifier", "identifier type '\(unsupported.type)' is not supported")
        }
        if let empty = identifiers.first(where: { $0.value.isEmpty }) {
            return reject(400, "rejectedIdentifier", "empty \(empty.type) identifier")
        }
        let profileName = payload.profile ?? options.defaultProfile
        guard options.profiles[profileName] != nil else {
            let offered = options.profiles.keys.sorted().joined(separator: ", ")
            return reject(400, options.unknownProfileProblemType,
                          "profile '\(profileName)' is not offered (offered: \(offered))")
        }
        if let replaces = payload.replaces {
            guard let replaced = issued.values.first(where: { $0.certID == replaces }) else {
                return reject(400, "malformed", "replaces names certificate '\(replaces)', which this CA did not issue")
            }
            if replaced.replacedByOrderID != nil {
                return reject(409, "alreadyReplaced", "certificate '\(replaces)' has already been replaced")
            }
        }

        let now = options.now()
        let authorizationIDs = identifiers.map { identifier -> Int in
            let authorization = Authorization(id: takeID(), identifier: identifier, token: Self.randomToken(),
                                              validated: now, expires: now.addingTimeInterval(30 * 86400))
            authorizations[authorization.id] = authorization
            return authorization.id
        }
        let order = Order(id: takeID(), accountID: account.id, status: "ready", identifiers: identifiers,
                          authorizationIDs: authorizationIDs, profile: profileName, requestedProfile: payload.profile,
                          replaces: payload.replaces, expires: now.addingTimeInterval(7 * 86400), certificateID: nil,
                          remainingProcessingPolls: 0)
        orders[order.id] = order
        let orderURL = baseURL + "/order/\(order.id)"
        recordedOrders.append(.init(identifiers: identifiers, replaces: payload.replaces, profile: payload.profile,
                                    account: accountURL, orderURL: orderURL, rejectedWith: nil))
        var response = orderResponse(order, status: 201)
        response.headers.append(("Location", orderURL))
        return response
    }

    private func orderResponse(_ order: Order, status: Int) -> FakeACMEResponse {
        struct Document: Encodable {
            let status: String
            let expires: String
            let identifiers: [Identifier]
            let authorizations: [String]
            let finalize: String
            let certificate: String?
            let profile: String?
            let replaces: String?
        }
        var response = Self.json(status, Document(
            status: order.status, expires: Self.timestamp(order.expires), identifiers: order.identifiers,
            authorizations: order.authorizationIDs.map { baseURL + "/authz/\($0)" },
            finalize: baseURL + "/order/\(order.id)/finalize",
            certificate: order.status == "valid" ? order.certificateID.map { baseURL + "/cert/\($0)" } : nil,
            profile: order.requestedProfile, replaces: order.replaces))
        if order.status == "processing" { response.headers.append(("Retry-After", "1")) }
        return response
    }

    private mutating func order(id: Int, signer: Signer) -> FakeACMEResponse {
        guard var order = orders[id] else { return Self.problem(404, "malformed", "no order \(id)") }
        guard case .account(let account) = signer, account.id == order.accountID else {
            return Self.problem(403, "unauthorized", "order \(id) belongs to another account")
        }
        let response = orderResponse(order, status: 200)
        if order.status == "processing" {
            order.remainingProcessingPolls -= 1
            if order.remainingProcessingPolls <= 0 { order.status = "valid" }
            orders[id] = order
        }
        return response
    }

    private mutating func finalize(orderID: Int, jws: FakeACMEJWS, signer: Signer) -> FakeACMEResponse {
        struct Payload: Decodable { let csr: String }
        guard var order = orders[orderID] else { return Self.problem(404, "malformed", "no order \(orderID)") }
        guard case .account(let account) = signer, account.id == order.accountID else {
            return Self.problem(403, "unauthorized", "order \(orderID) belongs to another account")
        }
        guard order.status == "ready" else {
            return Self.problem(403, "orderNotReady", "order \(orderID) is \(order.status), not ready")
        }
        let payload: Payload
        switch decodePayload(Payload.self, jws) {
        case .success(let value): payload = value
        case .failure(let problem): return problem.response
        }
        guard let der = Base64URL.decode(payload.csr) else {
            return Self.problem(400, "badCSR", "csr is not base64url")
        }
        let csr: CertificateSigningRequest
        do {
            csr = try CertificateSigningRequest(derEncoded: der)
        } catch {
            return Self.problem(400, "badCSR", "csr is not a DER PKCS#10 request: \(error)")
        }
        guard csr.publicKey.isValidSignature(csr.signature, for: csr) else {
            return Self.problem(400, "badCSR", "CSR signature does not verify")
        }
        guard csr.publicKey != Certificate.PublicKey(account.key) else {
            return Self.problem(400, "badCSR", "CSR public key must not be the account key")
        }
        let (dnsNames, ipAddresses) = Self.names(in: csr)
        let csrNames = Set((dnsNames + ipAddresses).map { $0.lowercased() })
        let orderNames = Set(order.identifiers.map { $0.value.lowercased() })
        guard csrNames == orderNames else {
            return Self.problem(400, "badCSR",
                                "CSR names \(csrNames.sorted()) do not match order identifiers \(orderNames.sorted())")
        }
        let now = options.now()
        let validity = options.profiles[order.profile]?.validity ?? 90 * 86400
        let certificate: Certificate
        let certID: String
        do {
            certificate = try issuer.issueCertificate(
                publicKey: csr.publicKey, dnsNames: dnsNames, ipAddresses: ipAddresses,
                notBefore: now, notAfter: now.addingTimeInterval(validity))
            certID = try FakeACMEServer.certID(of: certificate)
        } catch {
            return Self.problem(500, "serverInternal", "issuance failed: \(error)")
        }
        let record = IssuedRecord(
            id: takeID(), accountID: account.id, orderID: order.id, certificate: certificate,
            chainPEM: TestCA.pem(certificate) + issuer.certificatePEM, certID: certID, profile: order.profile,
            replaces: order.replaces, replacedByOrderID: nil, revocationReason: nil)
        issued[record.id] = record
        issuedOrder.append(record.id)
        if let replaces = order.replaces, let old = issued.values.first(where: { $0.certID == replaces }) {
            issued[old.id]?.replacedByOrderID = order.id
        }
        order.certificateID = record.id
        order.remainingProcessingPolls = options.processingPolls
        order.status = options.processingPolls > 0 ? "processing" : "valid"
        orders[order.id] = order
        var response = orderResponse(order, status: 200)
        response.headers.append(("Location", baseURL + "/order/\(order.id)"))
        return response
    }

    private func authorization(id: Int) -> FakeACMEResponse {
        guard let authorization = authorizations[id] else {
            return Self.problem(404, "malformed", "no authorization \(id)")
        }
        struct Document: Encodable {
            let status: String
            let expires: String
            let identifier: Identifier
            let challenges: [ChallengeDocument]
        }
        return Self.json(200, Document(status: "valid", expires: Self.timestamp(authorization.expires),
                                       identifier: authorization.identifier,
                                       challenges: [challengeDocument(authorization)]))
    }

    private struct ChallengeDocument: Encodable {
        let type: String
        let url: String
        let status: String
        let token: String
        let validated: String
    }

    private func challengeDocument(_ authorization: Authorization) -> ChallengeDocument {
        ChallengeDocument(type: "http-01", url: baseURL + "/chall/\(authorization.id)", status: "valid",
                          token: authorization.token, validated: Self.timestamp(authorization.validated))
    }

    private func challenge(id: Int) -> FakeACMEResponse {
        // Challenge ids are the ids of their authorizations (one challenge per authorization).
        guard let authorization = authorizations[id] else {
            return Self.problem(404, "malformed", "no challenge \(id)")
        }
        var response = Self.json(200, challengeDocument(authorization))
        response.headers.append(("Link", "<\(baseURL)/authz/\(id)>;rel=\"up\""))
        return response
    }

    private func certificate(id: Int) -> FakeACMEResponse {
        guard let record = issued[id] else { return Self.problem(404, "malformed", "no certificate \(id)") }
        return FakeACMEResponse(status: 200, headers: [("Content-Type", "application/pem-certificate-chain")],
                                body: Array(record.chainPEM.utf8))
    }

    private mutating func revoke(jws: FakeACMEJWS, signer: Signer) -> FakeACMEResponse {
        struct Payload: Decodable {
            let certificate: String
            let reason: Int?
        }
        let payload: Payload
        switch decodePayload(Payload.self, jws) {
        case .success(let value): payload = value
        case .failure(let problem): return problem.response
        }
        guard let der = Base64URL.decode(payload.certificate), let certificate = try? Certificate(derEncoded: der) else {
            return Self.problem(400, "malformed", "certificate is not base64url DER")
        }
        guard let record = issued.values.first(where: { $0.certificate == certificate }) else {
            return Self.problem(404, "malformed", "this CA did not issue that certificate")
        }
        switch signer {
        case .account(let account) where account.id != record.accountID:
            return Self.problem(403, "unauthorized", "certificate was issued to another account")
        case .key(let key) where Certificate.PublicKey(key) != record.certificate.publicKey:
            return Self.problem(403, "unauthorized", "jwk is not the certificate's key")
        default:
            break
        }
        let reason = payload.reason ?? 0
        guard [0, 1, 2, 3, 4, 5, 6, 8, 9, 10].contains(reason) else {
            return Self.problem(400, "badRevocationReason", "revocation reason \(reason) is not allowed")
        }
        guard record.revocationReason == nil else {
            return Self.problem(400, "alreadyRevoked", "certificate is already revoked")
        }
        issued[record.id]?.revocationReason = reason
        return FakeACMEResponse(status: 200)
    }

    private func renewalInfo(certID: String) -> FakeACMEResponse {
        let parts = certID.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 2, parts.allSatisfy({ !$0.isEmpty && Base64URL.decode(String($0)) != nil }) else {
            return Self.problem(400, "malformed", "'\(certID)' is not an ARI certID (base64url(AKI).base64url(serial))")
        }
        let window: FakeACMEServer.RenewalWindow
        if let configured = renewalWindows[certID] {
            window = configured
        } else if let record = issued.values.first(where: { $0.certID == certID }) {
            window = Self.defaultWindow(for: record.certificate)
        } else {
            return Self.problem(404, "malformed", "no certificate with certID '\(certID)'")
        }
        struct Window: Encodable { let start, end: String }
        struct Document: Encodable { let suggestedWindow: Window }
        var response = Self.json(200, Document(suggestedWindow: Window(start: Self.timestamp(window.start),
                                                                       end: Self.timestamp(window.end))))
        response.headers.append(("Retry-After", String(options.renewalInfoRetryAfter)))
        return response
    }

    /// The middle tenth of the certificate's lifetime (45 %–55 %).
    static func defaultWindow(for certificate: Certificate) -> FakeACMEServer.RenewalWindow {
        let start = certificate.notValidBefore
        let lifetime = certificate.notValidAfter.timeIntervalSince(start)
        return .init(start: start.addingTimeInterval(lifetime * 0.45), end: start.addingTimeInterval(lifetime * 0.55))
    }

    // MARK: - Helpers

    private mutating func takeID() -> Int {
        defer { nextID += 1 }
        return nextID
    }

    private static func names(in csr: CertificateSigningRequest) -> (dns: [String], ip: [String]) {
        guard let extensions = try? csr.attributes.extensionRequest?.extensions,
              let sans = try? extensions.subjectAlternativeNames
        else { return ([], []) }
        var dns: [String] = []
        var ip: [String] = []
        for name in sans {
            switch name {
            case .dnsName(let value): dns.append(value)
            case .ipAddress(let octets): ip.append(ipText(Array(octets.bytes)))
            default: break
            }
        }
        return (dns, ip)
    }

    private static func ipText(_ bytes: [UInt8]) -> String {
        let family = bytes.count == 4 ? AF_INET : AF_INET6
        var buffer = [CChar](repeating: 0, count: Int(INET6_ADDRSTRLEN))
        let ok = bytes.withUnsafeBytes { inet_ntop(family, $0.baseAddress, &buffer, socklen_t(buffer.count)) != nil }
        return ok ? String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self) : "?"
    }

    static func timestamp(_ date: Date) -> String {
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withInternetDateTime]
        return formatter.string(from: date)
    }

    static func problemURN(_ type: String) -> String {
        type.contains(":") ? type : "urn:ietf:params:acme:error:" + type
    }

    static func problem(_ status: Int, _ type: String, _ detail: String, extra: [String: Any] = [:]) -> FakeACMEResponse {
        var document: [String: Any] = ["type": problemURN(type), "detail": detail, "status": status]
        document.merge(extra) { current, _ in current }
        let body = (try? JSONSerialization.data(withJSONObject: document, options: [.sortedKeys])) ?? Data()
        return FakeACMEResponse(status: status, headers: [("Content-Type", "application/problem+json")],
                                body: Array(body))
    }

    static func json<T: Encodable>(_ status: Int, _ value: T) -> FakeACMEResponse {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        let body = (try? encoder.encode(value)) ?? Data("{}".utf8)
        return FakeACMEResponse(status: status, headers: [("Content-Type", "application/json")], body: Array(body))
    }
}
