import ACMEClient
import ACMEProtocol
import AsyncHTTPClient
import CertHooks
import CertStore
import CertkeeperConfig
import Foundation
import Logging
import RenewalPolicy

/// Everything one run needs to talk to the CA: the HTTP client, the account, the http-01 responders.
/// Opened once per run under the lock, closed at its end.
final class RenewalSession: Sendable {
    /// How often ARI is asked again when the CA does not say (the Let's Encrypt guide: at least twice a day).
    static let ariPollInterval: TimeInterval = 6 * 3600

    let configuration: CertkeeperConfiguration
    let store: CertificateStore
    let http: HTTPClient
    let client: ACMEClient
    let account: ACMEAccountBinding
    let responders: ResponderPool
    let environment: [String: String]
    let logger: Logger
    let clock: @Sendable () -> Date

    private init(configuration: CertkeeperConfiguration, store: CertificateStore, http: HTTPClient, client: ACMEClient, account: ACMEAccountBinding, environment: [String: String], logger: Logger, clock: @escaping @Sendable () -> Date) {
        self.configuration = configuration
        self.store = store
        self.http = http
        self.client = client
        self.account = account
        self.responders = ResponderPool(logger: logger)
        self.environment = environment
        self.logger = logger
        self.clock = clock
    }

    /// Loads or creates the account key (0600 in the store), registers it if the store has no account URL.
    static func open(configuration: CertkeeperConfiguration, store: CertificateStore, environment: [String: String], logger: Logger, clock: @escaping @Sendable () -> Date) async throws(RenewalSetupError) -> RenewalSession {
        let acme = configuration.acme
        let http: HTTPClient
        do {
            http = try ACMEHTTPClientFactory.make(extraTrustRootsFile: acme.caBundle, requestTimeout: acme.requestTimeout)
        } catch {
            throw RenewalSetupError("acme.ca_bundle: \(error)")
        }
        do {
            let (key, record) = try AccountLoader.loadOrCreateKey(store: store, directoryURL: acme.directoryURL, logger: logger)
            let client = ACMEClient(directoryURL: acme.directoryURL, accountKey: key, http: http, requestTimeout: acme.requestTimeout, logger: logger, clock: clock)
            let account: ACMEAccountBinding
            if let record {
                account = ACMEAccountBinding(url: record.accountURL)
            } else {
                let contact = acme.email.map { ["mailto:\($0)"] } ?? []
                let eab = acme.externalAccountBinding.map { (keyID: $0.keyID, macKey: $0.hmacKey) }
                account = try await client.registerAccount(contact: contact, externalAccountBinding: eab)
                try store.saveAccountRecord(directoryURL: acme.directoryURL, record: AccountRecord(directoryURL: acme.directoryURL, accountURL: account.url, contact: contact, createdAt: clock()))
                logger.info("ACME account registered", metadata: ["acme.account": "\(account.url)"])
            }
            return RenewalSession(configuration: configuration, store: store, http: http, client: client, account: account, environment: environment, logger: logger, clock: clock)
        } catch {
            try? await http.shutdown()
            throw RenewalSetupError("\(error)")
        }
    }

    func close() async {
        await responders.stopAll()
        try? await http.shutdown()
    }

    /// Orders a certificate for `spec` with a fresh key and verifies it against the configured names.
    func issue(_ spec: CertificateSpec, replacing previous: CertificateMeta?, logger: Logger) async throws -> VerifiedBundle {
        let key = try GeneratedCertificateKey.generate(CertificateKeyType(rawValue: spec.keyType.rawValue) ?? .ec256)
        let csr = try CSRBuilder.makeCSR(domains: spec.domains, key: key)
        let solver = try await makeSolver(for: spec, logger: logger)
        let issued = try await client.issueCertificate(
            domains: spec.domains,
            csrDER: csr,
            account: account,
            solverFor: { _ in solver },
            replaces: previous?.ariCertID,
            profile: spec.profile ?? configuration.acme.profile,
            deadline: clock().addingTimeInterval(configuration.acme.orderTimeout)
        )
        let bundle = try CertificateBundle(fullchainPEM: issued.pemChain, privateKeyPEM: key.pem)
        return try BundleVerifier().verify(bundle, expectedDomains: spec.domains, now: clock())
    }

    func makeSolver(for spec: CertificateSpec, logger: Logger) async throws -> any ChallengeSolver {
        switch spec.challenge {
        case .http01(let settings):
            if let webroot = settings.webroot { return WebrootSolver(webroot: webroot) }
            let address = settings.listen ?? configuration.renew.http01Listen
            return HTTP01ResponderSolver(tokens: try await responders.responder(host: address.host, port: address.port).tokens)
        case .dns01(let settings):
            return DNS01HookSolver(hook: settings.hook, propagationDelay: settings.propagationDelay, timeout: settings.timeout, allDomains: spec.domains, baseEnvironment: environment, logger: logger)
        }
    }

    /// Asks ARI for the window of `certID`; on failure keeps the previous answer and tries again later.
    func pollARI(certID: String, previous: ARIRecord?, logger: Logger) async -> ARIRecord {
        do {
            guard let answer = try await client.renewalInfo(certID: certID) else {
                return ARIRecord(certID: certID, window: nil, nextPoll: clock().addingTimeInterval(24 * 3600))
            }
            let window = SuggestedWindow(start: answer.info.suggestedWindow.start, end: answer.info.suggestedWindow.end)
            let wait = min(max(answer.retryAfter ?? Self.ariPollInterval, 60), 24 * 3600)
            logger.debug("ARI window", metadata: ["ari.start": "\(RFC3339.format(window.start))", "ari.end": "\(RFC3339.format(window.end))"])
            return ARIRecord(certID: certID, window: window, nextPoll: clock().addingTimeInterval(wait))
        } catch {
            logger.warning("ARI request failed; using the previous window or the lifetime rule", metadata: ["error": "\(error)"])
            return ARIRecord(certID: certID, window: previous?.certID == certID ? previous?.window : nil, nextPoll: clock().addingTimeInterval(3600))
        }
    }

    /// Runs the global and per-certificate deploy hooks; returns the labels of those that failed.
    func runDeployHooks(spec: CertificateSpec, meta: CertificateMeta, liveDirectory: String, logger: Logger) async -> [String] {
        let hooks = (configuration.hooks.deploy + spec.deployHooks).map { command in
            DeployHook(kind: .shell(command.command), timeout: command.timeout ?? configuration.hooks.timeout)
        }
        let runner = DeployHookRunner(hooks: hooks, directory: configuration.hooks.directory, defaultTimeout: configuration.hooks.timeout, baseEnvironment: environment, logger: logger)
        let event = DeployEvent(name: spec.name, liveDirectory: liveDirectory, domains: meta.domains, serial: meta.serial, notAfter: meta.notAfter, issuedBy: meta.issuedBy)
        return await runner.run(event).failures.map(\.hook.label)
    }
}

/// http-01 responders by listen address, started on first use and shared by every certificate of the run.
///
/// Concurrent first uses of one address await the same start (an actor alone would let both bind).
actor ResponderPool {
    private var starting: [String: Task<HTTP01Responder, any Error>] = [:]
    let logger: Logger

    init(logger: Logger) { self.logger = logger }

    func responder(host: String, port: Int) async throws -> HTTP01Responder {
        let key = "\(host):\(port)"
        let start = starting[key] ?? Task { [logger] in
            try await HTTP01Responder.start(host: host, port: port, tokens: HTTP01TokenTable(), logger: logger)
        }
        starting[key] = start
        do {
            return try await start.value
        } catch {
            // Let a later certificate try again (the port may have been freed).
            if starting[key] == start { starting[key] = nil }
            throw error
        }
    }

    func stopAll() async {
        for start in starting.values {
            if let responder = try? await start.value { await responder.stop() }
        }
        starting = [:]
    }
}

/// The account key lives in the store (0600); created on first use.
enum AccountLoader {
    static func loadOrCreateKey(store: CertificateStore, directoryURL: String, logger: Logger) throws -> (AccountKey, AccountRecord?) {
        if let stored = try store.loadAccount(directoryURL: directoryURL) {
            return (try AccountKey(pem: stored.keyPEM), stored.record)
        }
        let key = AccountKey.generate()
        try store.saveAccountKey(directoryURL: directoryURL, keyPEM: key.pemRepresentation)
        logger.info("created ACME account key", metadata: ["acme.directory": "\(directoryURL)"])
        return (key, nil)
    }
}
