import ACMEClient
import ACMEProtocol
import AsyncHTTPClient
import CertHooks
import CertStore
import CertkeeperConfig
import Foundation
import InternalCA
import Logging
import RenewalPolicy

/// Everything one run needs: the CA connection (opened on first use), the internal CA (loaded or created on
/// first use), the http-01 responders, the hook runner.
/// Opened once per run under the lock, closed at its end.
final class RenewalSession: Sendable {
    /// How often ARI is asked again when the CA does not say (the Let's Encrypt guide: at least twice a day).
    static let ariPollInterval: TimeInterval = 6 * 3600

    let configuration: CertkeeperConfiguration
    let store: CertificateStore
    let acme: ACMEConnection
    let internalIssuer: InternalIssuer
    let responders: ResponderPool
    let hooks: DeployHookQueue
    let environment: [String: String]
    let logger: Logger
    let clock: @Sendable () -> Date

    init(configuration: CertkeeperConfiguration, store: CertificateStore, environment: [String: String], logger: Logger, clock: @escaping @Sendable () -> Date) {
        self.configuration = configuration
        self.store = store
        self.acme = ACMEConnection(configuration: configuration, store: store, logger: logger, clock: clock)
        self.internalIssuer = InternalIssuer(
            settings: configuration.internalCA, stateDirectory: store.root, clusterRole: configuration.cluster?.role, logger: logger, clock: clock)
        self.responders = ResponderPool(logger: logger)
        self.hooks = DeployHookQueue()
        self.environment = environment
        self.logger = logger
        self.clock = clock
    }

    func close() async {
        await responders.stopAll()
        await acme.close()
    }

    /// Orders a certificate for `spec` with a fresh key and verifies it against the configured names.
    /// An account the CA no longer knows (a reset CA, a deactivated account) is registered again once.
    func issue(_ spec: CertificateSpec, replacing previous: CertificateMeta?, logger: Logger) async throws -> VerifiedBundle {
        let key = try GeneratedCertificateKey.generate(Self.keyType(spec.keyType))
        if spec.issuer == .internalCA {
            return try await internalIssuer.issue(spec, key: key)
        }
        let csr = try CSRBuilder.makeCSR(domains: spec.domains, key: key)
        let solver = try await makeSolver(for: spec, logger: logger)
        // `replaces` only makes sense for a certificate sharing a name with the new order.
        let replaces = previous.flatMap { meta in
            Set(meta.domains.map { $0.lowercased() }).isDisjoint(with: spec.domains.map { $0.lowercased() }) ? nil : meta.ariCertID
        }
        var reregistered = false
        while true {
            let (client, account) = try await acme.clientAndAccount()
            do {
                let issued = try await client.issueCertificate(
                    domains: spec.domains,
                    csrDER: csr,
                    account: account,
                    solverFor: { _ in solver },
                    replaces: replaces,
                    profile: spec.profile ?? configuration.acme.profile,
                    deadline: clock().addingTimeInterval(configuration.acme.orderTimeout)
                )
                let bundle = try CertificateBundle(fullchainPEM: issued.pemChain, privateKeyPEM: key.pem)
                return try BundleVerifier().verify(bundle, expectedDomains: spec.domains, now: clock())
            } catch let error as ACMEError where error.problemKind == .accountDoesNotExist && !reregistered {
                logger.warning("the CA no longer knows this account; registering it again", metadata: ["acme.account": "\(account.url)"])
                try await acme.reregister()
                reregistered = true
            }
        }
    }

    static func keyType(_ type: KeyType) -> CertificateKeyType {
        switch type {
        case .ec256: .ec256
        case .ec384: .ec384
        case .rsa2048: .rsa2048
        case .rsa3072: .rsa3072
        case .rsa4096: .rsa4096
        }
    }

    func makeSolver(for spec: CertificateSpec, logger: Logger) async throws -> any ChallengeSolver {
        switch spec.challenge {
        case .http01(let settings):
            if settings.stateless { return StatelessHTTP01Solver() }
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
            guard let answer = try await acme.client().renewalInfo(certID: certID) else {
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

    /// Runs the global and per-certificate deploy hooks, one certificate at a time (four certificates renewed
    /// together must not reload HAProxy four times at once); returns the labels of those that failed.
    func runDeployHooks(spec: CertificateSpec, meta: CertificateMeta, liveDirectory: String, logger: Logger) async -> [String] {
        let plan = DeployPlan(configuration: configuration, environment: environment)
        return await hooks.run { await plan.run(spec: spec, meta: meta, liveDirectory: liveDirectory, logger: logger) }
    }
}

/// The internal CA of one run: loaded, or created, on first use. Runs hold the store lock, so two processes
/// never create two roots; the actor keeps two certificates of the same run from doing it twice.
///
/// Only a single node or a cluster's renewer creates a root. A standby taking over (or a follower renewing by
/// hand) with a root of its own would sign certificates no client trusts, and peer sync would then carry them to
/// every node as the newest ones: such a node issues only with a root copied from the renewer.
actor InternalIssuer {
    let settings: InternalCASettings
    let directory: InternalCADirectory
    let clusterRole: ClusterSettings.Role?
    let logger: Logger
    let clock: @Sendable () -> Date
    private var loaded: InternalCA?

    init(settings: InternalCASettings, stateDirectory: String, clusterRole: ClusterSettings.Role?, logger: Logger, clock: @escaping @Sendable () -> Date) {
        self.settings = settings
        self.directory = InternalCADirectory(stateDirectory: stateDirectory)
        self.clusterRole = clusterRole
        self.logger = logger
        self.clock = clock
    }

    /// The CA, loaded or created (and logged once when created).
    func ca() throws(InternalCAError) -> InternalCA {
        if let loaded { return loaded }
        if let clusterRole, clusterRole != .renewer {
            guard let existing = try directory.load() else {
                let detail = clusterRole == .standby
                    ? "no internal CA here yet, and a standby does not create one (its certificates would not chain to the renewer's root): the renewer sends its root to the standbys its cluster.peers lists with role: standby"
                    : "a cluster follower does not issue internal certificates: they come from the renewer by peer sync"
                throw InternalCAError(code: .missing, subject: directory.path, detail: detail)
            }
            loaded = existing
            return existing
        }
        // A node that pinned a peer's root (it installed that root's certificates) never starts a second one.
        if try directory.loadRoot() == nil, let pinned = try directory.acceptedPeerRoot() {
            throw InternalCAError(
                code: .missing, subject: directory.peerRootPath,
                detail: "this cluster's internal root ('\(pinned.certificate.subject)') came from a peer and its key is not here; a second root would split the cluster: is another node the renewer?")
        }
        var generator = SystemRandomNumberGenerator()
        let (ca, created) = try directory.loadOrCreate(
            name: settings.name, lifetime: settings.rootLifetime, now: clock(), generator: &generator)
        if created {
            logger.notice("created the internal CA root; 'certkeeper trust' prints it for clients to trust", metadata: [
                "ca.root": "\(directory.certificatePath)", "ca.fingerprint": "\(ca.root.fingerprint)",
                "ca.not_after": "\(RFC3339.format(ca.root.certificate.notValidAfter))",
            ])
        }
        loaded = ca
        return ca
    }

    /// Signs a leaf for `spec` with `key` and checks it exactly as an ACME certificate is checked.
    func issue(_ spec: CertificateSpec, key: GeneratedCertificateKey) throws -> VerifiedBundle {
        let signer = try ca()
        var generator = SystemRandomNumberGenerator()
        let leaf = try signer.issue(
            LeafRequest(names: spec.domains, publicKey: key.privateKey.publicKey, lifetime: settings.leafLifetime),
            now: clock(), generator: &generator)
        let bundle = CertificateBundle(certificatePEM: leaf.certificatePEM, chainPEM: leaf.chainPEM, privateKeyPEM: key.pem)
        return try BundleVerifier().verify(bundle, expectedDomains: spec.domains, now: clock())
    }
}

/// Runs deploy hook batches one after another.
actor DeployHookQueue {
    private var busy = false
    private var waiting: [CheckedContinuation<Void, Never>] = []

    func run<T: Sendable>(_ body: @Sendable () async -> T) async -> T {
        if busy {
            await withCheckedContinuation { waiting.append($0) }
        }
        busy = true
        let result = await body()
        if waiting.isEmpty {
            busy = false
        } else {
            waiting.removeFirst().resume()
        }
        return result
    }
}

/// The CA connection of one run, opened on first use: a run that only re-runs hooks or finds nothing due
/// makes no request, and an ARI poll needs no account.
actor ACMEConnection {
    let configuration: CertkeeperConfiguration
    let store: CertificateStore
    let logger: Logger
    let clock: @Sendable () -> Date
    private var http: HTTPClient?
    private var opened: ACMEClient?
    private var account: Task<ACMEAccountBinding, any Error>?

    init(configuration: CertkeeperConfiguration, store: CertificateStore, logger: Logger, clock: @escaping @Sendable () -> Date) {
        self.configuration = configuration
        self.store = store
        self.logger = logger
        self.clock = clock
    }

    /// The HTTP client and the account key, loaded or created (0600 in the store).
    func client() throws -> ACMEClient {
        if let opened { return opened }
        let acme = configuration.acme
        let http: HTTPClient
        do {
            http = try ACMEHTTPClientFactory.make(extraTrustRootsFile: acme.caBundle, requestTimeout: acme.requestTimeout)
        } catch {
            throw RenewalSetupError("acme.ca_bundle: \(error)")
        }
        self.http = http
        let key = try AccountLoader.loadOrCreateKey(store: store, directoryURL: acme.directoryURL, logger: logger).0
        let client = ACMEClient(directoryURL: acme.directoryURL, accountKey: key, http: http, requestTimeout: acme.requestTimeout, logger: logger, clock: clock)
        opened = client
        return client
    }

    /// A client on the same connection that signs with `key` (a certificate's own key, for revocation).
    func client(signingWith key: AccountKey) throws -> ACMEClient {
        _ = try client()
        let acme = configuration.acme
        return ACMEClient(directoryURL: acme.directoryURL, accountKey: key, http: http!, requestTimeout: acme.requestTimeout, logger: logger, clock: clock)
    }

    /// The client and the account, registered on first use if the store has no account URL.
    ///
    /// Certificates renewed concurrently all wait for the same registration (an actor alone would let each of
    /// them send its own `newAccount` while the first one is in flight).
    func clientAndAccount() async throws -> (ACMEClient, ACMEAccountBinding) {
        let client = try client()
        if account == nil {
            let acme = configuration.acme
            if let record = try store.loadAccount(directoryURL: acme.directoryURL)?.record {
                account = Task { ACMEAccountBinding(url: record.accountURL) }
            } else {
                account = registration(client)
            }
        }
        return (client, try await account!.value)
    }

    /// Registers the key again (newAccount answers with the existing account, or creates a new one).
    func reregister() async throws {
        let task = registration(try client())
        account = task
        _ = try await task.value
    }

    private func registration(_ client: ACMEClient) -> Task<ACMEAccountBinding, any Error> {
        let acme = configuration.acme
        let contact = acme.email.map { ["mailto:\($0)"] } ?? []
        let eab = acme.externalAccountBinding.map { (keyID: $0.keyID, macKey: $0.hmacKey) }
        let (store, logger, clock) = (store, logger, clock)
        return Task {
            let binding = try await client.registerAccount(contact: contact, externalAccountBinding: eab)
            try store.saveAccountRecord(directoryURL: acme.directoryURL, record: AccountRecord(directoryURL: acme.directoryURL, accountURL: binding.url, contact: contact, createdAt: clock()))
            logger.info("ACME account registered", metadata: ["acme.account": "\(binding.url)"])
            return binding
        }
    }

    func close() async {
        try? await http?.shutdown()
        http = nil
        opened = nil
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
