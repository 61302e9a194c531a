/// The validated contents of one certkeeper configuration file.
///
/// Produced by ``ConfigLoader/load(path:)`` or ``ConfigLoader/parse(yaml:source:)``; every value in it has
/// already been checked, so consumers can use it without re-validating.
public struct CertkeeperConfiguration: Sendable, Equatable {
    /// Default for ``keepVersions``.
    public static let defaultKeepVersions = 5
    /// Allowed values for ``keepVersions``.
    public static let keepVersionsRange = 1...100

    /// `state_dir`: absolute path of the directory holding accounts, certificates and state.
    public var stateDirectory: String
    /// `node_name`: this node's name; `nil` means "use the host name".
    public var nodeName: String?
    /// `keep_versions`: how many archived versions of each certificate to keep (1...100).
    public var keepVersions: Int
    /// `acme`: the ACME server and account settings; `nil` when the file has no `acme:` section, which it may leave
    /// out only when no certificate uses ``CertificateIssuer/acme``.
    public var acmeSettings: ACMESettings?
    /// `internal_ca`: the built-in CA for certificates with ``CertificateIssuer/internalCA``.
    public var internalCA: InternalCASettings
    /// `renew`: how renewal runs behave.
    public var renew: RenewSettings
    /// `certificates`: the certificates to keep issued, in file order.
    public var certificates: [CertificateSpec]
    /// `hooks`: commands to run after a certificate changes.
    public var hooks: HookSettings
    /// `cluster`: peer sync settings; `nil` for a single node.
    public var cluster: ClusterSettings?
    /// `proxy`: the daemon's built-in proxy; `nil` for none.
    public var proxy: ProxySettings?
    /// `stats`: the daemon's stats listener; `nil` for none.
    public var stats: StatsSettings?

    /// Creates a configuration; omitted values take the documented defaults.
    public init(
        stateDirectory: String,
        nodeName: String? = nil,
        keepVersions: Int = CertkeeperConfiguration.defaultKeepVersions,
        acme: ACMESettings? = nil,
        internalCA: InternalCASettings = InternalCASettings(),
        renew: RenewSettings = RenewSettings(),
        certificates: [CertificateSpec] = [],
        hooks: HookSettings = HookSettings(),
        cluster: ClusterSettings? = nil,
        proxy: ProxySettings? = nil,
        stats: StatsSettings? = nil
    ) {
        self.stateDirectory = stateDirectory
        self.nodeName = nodeName
        self.keepVersions = keepVersions
        self.acmeSettings = acme
        self.internalCA = internalCA
        self.renew = renew
        self.certificates = certificates
        self.hooks = hooks
        self.cluster = cluster
        self.proxy = proxy
        self.stats = stats
    }

    /// The ACME settings, or ``ACMESettings/unconfigured`` when the file has no `acme:` section.
    ///
    /// For callers that only need a directory URL to compare (the unconfigured one matches no stored account);
    /// code that talks to a CA should use ``acmeSettings``.
    public var acme: ACMESettings {
        get { acmeSettings ?? .unconfigured }
        set { acmeSettings = newValue }
    }

    /// The certificates issued by the internal CA, in file order.
    public var internalCertificates: [CertificateSpec] { certificates.filter { $0.issuer == .internalCA } }

    /// The certificate with this name, if the configuration declares one.
    public func certificate(named name: String) -> CertificateSpec? {
        certificates.first { $0.name == name }
    }
}

/// The `acme:` section: which ACME server to talk to and how.
public struct ACMESettings: Sendable, Equatable {
    /// Default for ``requestTimeout`` in seconds.
    public static let defaultRequestTimeout: Double = 30
    /// Default for ``orderTimeout`` in seconds.
    public static let defaultOrderTimeout: Double = 300

    /// Stands for a missing `acme:` section: an empty directory URL, every other value at its default.
    public static let unconfigured = ACMESettings(directoryURL: "")

    /// `acme.directory`: the https:// URL of the ACME directory.
    public var directoryURL: String
    /// `acme.email`: contact address registered with the account (without `mailto:`).
    public var email: String?
    /// `acme.ca_bundle`: absolute path of extra PEM roots trusted for the ACME server's TLS certificate.
    public var caBundle: String?
    /// `acme.eab`: external account binding, for CAs that require one.
    public var externalAccountBinding: ExternalAccountBinding?
    /// `acme.profile`: the ACME certificate profile to request (for example `tlsserver`).
    public var profile: String?
    /// `acme.request_timeout`: seconds allowed for one HTTP request to the ACME server.
    public var requestTimeout: Double
    /// `acme.order_timeout`: seconds allowed for one whole issuance, polling included.
    public var orderTimeout: Double

    /// Creates ACME settings; omitted values take the documented defaults.
    public init(
        directoryURL: String,
        email: String? = nil,
        caBundle: String? = nil,
        externalAccountBinding: ExternalAccountBinding? = nil,
        profile: String? = nil,
        requestTimeout: Double = ACMESettings.defaultRequestTimeout,
        orderTimeout: Double = ACMESettings.defaultOrderTimeout
    ) {
        self.directoryURL = directoryURL
        self.email = email
        self.caBundle = caBundle
        self.externalAccountBinding = externalAccountBinding
        self.profile = profile
        self.requestTimeout = requestTimeout
        self.orderTimeout = orderTimeout
    }
}

/// `acme.eab`: the key identifier and MAC key a CA hands out for external account binding (RFC 8555 §7.3.4).
///
/// Its textual forms never include the MAC key, so the value can be logged or printed safely.
public struct ExternalAccountBinding: Sendable, Equatable, CustomStringConvertible, CustomDebugStringConvertible,
    CustomReflectable
{
    /// `acme.eab.kid`: the key identifier issued by the CA.
    public var keyID: String
    /// `acme.eab.hmac_key`: the decoded MAC key. Secret: never log it.
    public var hmacKey: [UInt8]

    /// Creates a binding from a key identifier and the decoded MAC key.
    public init(keyID: String, hmacKey: [UInt8]) {
        self.keyID = keyID
        self.hmacKey = hmacKey
    }

    /// The key identifier and the key's length, never the key itself.
    public var description: String {
        "ExternalAccountBinding(keyID: \(keyID), hmacKey: <\(hmacKey.count) bytes redacted>)"
    }

    /// Same as ``description``: the key stays redacted in `debugPrint` and string interpolation of parents.
    public var debugDescription: String { description }

    /// A mirror without the key, so `dump()` cannot reveal it either.
    public var customMirror: Mirror {
        Mirror(self, children: ["keyID": keyID, "hmacKey": "<\(hmacKey.count) bytes redacted>"])
    }
}

/// The `renew:` section: behaviour of a renewal run as a whole.
public struct RenewSettings: Sendable, Equatable {
    /// Default for ``randomSleepMax`` in seconds (the 8 minutes certbot and lego use).
    public static let defaultRandomSleepMax: Double = 480
    /// Default for ``concurrency``.
    public static let defaultConcurrency = 4
    /// Allowed values for ``concurrency``.
    public static let concurrencyRange = 1...64
    /// Default for ``lockTimeout`` in seconds.
    public static let defaultLockTimeout: Double = 600
    /// Default for ``http01Listen``: all IPv4 addresses, port 80.
    public static let defaultHTTP01Listen = ListenAddress(host: "0.0.0.0", port: 80)

    /// `renew.random_sleep`: upper bound of the random delay before a non-interactive run; 0 disables it.
    public var randomSleepMax: Double
    /// `renew.concurrency`: how many certificates may be renewed at the same time.
    public var concurrency: Int
    /// `renew.lock_timeout`: how long a second run waits for the state-directory lock, in seconds.
    public var lockTimeout: Double
    /// `renew.http01_listen`: where the built-in http-01 responder binds.
    public var http01Listen: ListenAddress

    /// Creates renewal settings; omitted values take the documented defaults.
    public init(
        randomSleepMax: Double = RenewSettings.defaultRandomSleepMax,
        concurrency: Int = RenewSettings.defaultConcurrency,
        lockTimeout: Double = RenewSettings.defaultLockTimeout,
        http01Listen: ListenAddress = RenewSettings.defaultHTTP01Listen
    ) {
        self.randomSleepMax = randomSleepMax
        self.concurrency = concurrency
        self.lockTimeout = lockTimeout
        self.http01Listen = http01Listen
    }
}

/// One entry of `certificates:`.
public struct CertificateSpec: Sendable, Equatable {
    /// `name`: the certificate's directory name; unique in the file.
    public var name: String
    /// `domains`: lower-cased DNS names, the first one is the subject; `*.` marks a wildcard.
    public var domains: [String]
    /// `issuer`: who signs the certificate (default ``CertificateIssuer/acme``).
    public var issuer: CertificateIssuer
    /// `key_type`: the private key algorithm.
    public var keyType: KeyType
    /// `challenge`: how domain control is proven (ACME only; the default for internal certificates, unused).
    public var challenge: ChallengeSpec
    /// `renew_before`: renew once less than this many seconds of validity remain; `nil` = renewal policy default.
    public var renewBefore: Double?
    /// `profile`: ACME profile for this certificate, overriding `acme.profile`.
    public var profile: String?
    /// `hooks`: deploy commands run after this certificate changes, after the global `hooks.deploy`.
    public var deployHooks: [HookCommand]

    /// Creates a certificate entry; omitted values take the documented defaults.
    public init(
        name: String,
        domains: [String],
        issuer: CertificateIssuer = .acme,
        keyType: KeyType = .ec256,
        challenge: ChallengeSpec = .http01(HTTP01Settings()),
        renewBefore: Double? = nil,
        profile: String? = nil,
        deployHooks: [HookCommand] = []
    ) {
        self.name = name
        self.domains = domains
        self.issuer = issuer
        self.keyType = keyType
        self.challenge = challenge
        self.renewBefore = renewBefore
        self.profile = profile
        self.deployHooks = deployHooks
    }

    /// Whether any of the domains is a wildcard (`*.example.com`).
    public var hasWildcard: Bool { domains.contains { $0.hasPrefix("*.") } }
}

/// Who signs a certificate (`certificates[].issuer`).
public enum CertificateIssuer: String, Sendable, Equatable, CaseIterable {
    /// `acme`: an ACME CA (the `acme:` section), proving control of the domains with a challenge.
    case acme
    /// `internal`: certkeeper's own CA in the state directory (like Caddy's `tls internal`): no network, no
    /// challenge, trusted only by clients that were given its root (`certkeeper trust`).
    case internalCA = "internal"
}

/// The `internal_ca:` section: the built-in CA that signs certificates with `issuer: internal`.
///
/// The root is created once, on the first internal issuance, in `<state_dir>/internal-ca/`; ``name`` and
/// ``rootLifetime`` only apply at that moment.
public struct InternalCASettings: Sendable, Equatable {
    /// Default for ``name``.
    public static let defaultName = "certkeeper internal CA"
    /// Default for ``leafLifetime``: 7 days. Short enough that a leaked key soon stops working (the internal CA
    /// publishes no revocation), long enough that the renewal at half the lifetime (the policy for lifetimes
    /// under 10 days) leaves 3.5 days for a stopped daemon or missed cron runs.
    public static let defaultLeafLifetime: Double = 7 * 86_400
    /// Default for ``rootLifetime``: 10 years.
    public static let defaultRootLifetime: Double = 3650 * 86_400
    /// The shortest ``leafLifetime``: leaves are backdated 5 minutes for clock skew, which must stay a small
    /// part of the lifetime.
    public static let minimumLeafLifetime: Double = 3600
    /// The longest ``name`` (the common-name limit of RFC 5280).
    public static let maximumNameLength = 64

    /// `internal_ca.name`: the root's common name (followed by a short key identifier).
    public var name: String
    /// `internal_ca.leaf_lifetime`: seconds a certificate issued by the internal CA is valid.
    public var leafLifetime: Double
    /// `internal_ca.root_lifetime`: seconds the root is valid, from its creation.
    public var rootLifetime: Double

    /// Creates internal CA settings; omitted values take the documented defaults.
    public init(
        name: String = InternalCASettings.defaultName,
        leafLifetime: Double = InternalCASettings.defaultLeafLifetime,
        rootLifetime: Double = InternalCASettings.defaultRootLifetime
    ) {
        self.name = name
        self.leafLifetime = leafLifetime
        self.rootLifetime = rootLifetime
    }
}

/// The private key algorithm of a certificate (`key_type`).
public enum KeyType: String, Sendable, Equatable, CaseIterable {
    /// ECDSA on P-256 (the default).
    case ec256
    /// ECDSA on P-384.
    case ec384
    /// RSA, 2048-bit modulus.
    case rsa2048
    /// RSA, 3072-bit modulus.
    case rsa3072
    /// RSA, 4096-bit modulus.
    case rsa4096
}

/// How a certificate proves control of its domains (`challenge:`).
public enum ChallengeSpec: Sendable, Equatable {
    /// `type: http-01`: answer over HTTP on port 80, from a webroot or a responder.
    case http01(HTTP01Settings)
    /// `type: dns-01`: publish TXT records through an external hook program.
    case dns01(DNS01Settings)

    /// The ACME challenge type name, `http-01` or `dns-01`.
    public var typeName: String {
        switch self {
        case .http01: "http-01"
        case .dns01: "dns-01"
        }
    }
}

/// Settings of an http-01 challenge. With no field set the built-in responder answers on `renew.http01_listen`.
public struct HTTP01Settings: Sendable, Equatable {
    /// `webroot`: write tokens below `<webroot>/.well-known/acme-challenge/` for an existing web server.
    public var webroot: String?
    /// `listen`: run the built-in responder on this address instead of `renew.http01_listen`.
    public var listen: ListenAddress?
    /// `stateless`: publish nothing; the `mode: http` proxy frontends of the cluster's daemons answer every token
    /// with the replicated account's thumbprint.
    public var stateless: Bool

    /// Creates http-01 settings; set at most one of the three.
    public init(webroot: String? = nil, listen: ListenAddress? = nil, stateless: Bool = false) {
        self.webroot = webroot
        self.listen = listen
        self.stateless = stateless
    }
}

/// Settings of a dns-01 challenge.
public struct DNS01Settings: Sendable, Equatable {
    /// Default for ``propagationDelay`` in seconds.
    public static let defaultPropagationDelay: Double = 0
    /// Default for ``timeout`` in seconds.
    public static let defaultTimeout: Double = 120

    /// `hook`: absolute path of the program that adds and removes the TXT records.
    public var hook: String
    /// `propagation_delay`: seconds to wait after the hook succeeds before asking the CA to validate.
    public var propagationDelay: Double
    /// `timeout`: seconds one hook invocation may run.
    public var timeout: Double

    /// Creates dns-01 settings; omitted values take the documented defaults.
    public init(
        hook: String,
        propagationDelay: Double = DNS01Settings.defaultPropagationDelay,
        timeout: Double = DNS01Settings.defaultTimeout
    ) {
        self.hook = hook
        self.propagationDelay = propagationDelay
        self.timeout = timeout
    }
}

/// The `hooks:` section: what runs after any certificate changes.
public struct HookSettings: Sendable, Equatable {
    /// Default for ``timeout`` in seconds.
    public static let defaultTimeout: Double = 60

    /// `hooks.deploy`: commands run, in order, after any certificate changes.
    public var deploy: [HookCommand]
    /// `hooks.directory`: absolute path of a directory whose executables run in name order (run-parts style).
    public var directory: String?
    /// `hooks.timeout`: seconds a hook may run when it sets no `timeout` of its own.
    public var timeout: Double

    /// Creates hook settings; omitted values take the documented defaults.
    public init(deploy: [HookCommand] = [], directory: String? = nil, timeout: Double = HookSettings.defaultTimeout) {
        self.deploy = deploy
        self.directory = directory
        self.timeout = timeout
    }
}

/// One deploy command (`{command: ..., timeout: ...}` or a bare string).
public struct HookCommand: Sendable, Equatable {
    /// `command`: the command line, exactly as written in the file.
    public var command: String
    /// `timeout`: seconds this command may run; `nil` = `hooks.timeout`.
    public var timeout: Double?

    /// Creates a deploy command.
    public init(command: String, timeout: Double? = nil) {
        self.command = command
        self.timeout = timeout
    }
}
