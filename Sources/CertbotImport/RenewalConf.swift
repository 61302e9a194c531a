/// What certkeeper reads from one certbot `renewal/<lineage>.conf`.
///
/// ```
/// # renew_before_expiry = 30 days
/// version = 2.1.0
/// archive_dir = /etc/letsencrypt/archive/example.com
/// cert = /etc/letsencrypt/live/example.com/cert.pem
/// privkey = /etc/letsencrypt/live/example.com/privkey.pem
/// chain = /etc/letsencrypt/live/example.com/chain.pem
/// fullchain = /etc/letsencrypt/live/example.com/fullchain.pem
///
/// [renewalparams]
/// account = 0123456789abcdef0123456789abcdef
/// server = https://acme-v02.api.letsencrypt.org/directory
/// authenticator = webroot
/// webroot_path = /var/www/html,
/// key_type = ecdsa
/// [[webroot_map]]
/// example.com = /var/www/html
/// ```
public struct CertbotRenewalConf: Sendable, Equatable {
    /// The lineage name: the file name without `.conf` (also the `live/` and `archive/` directory names).
    public var lineage: String
    /// The certbot version that last wrote the file.
    public var version: String?
    /// `archive_dir`: where the numbered versions are (`cert1.pem`, `privkey1.pem`, …).
    public var archiveDirectory: String?
    /// `cert`: the live leaf certificate (a symlink into the archive).
    public var certificatePath: String
    /// `privkey`: the live private key.
    public var privateKeyPath: String
    /// `chain`: the live intermediates.
    public var chainPath: String
    /// `fullchain`: the live leaf and intermediates.
    public var fullchainPath: String
    /// `renew_before_expiry` when set (certbot writes it commented out, which means its default).
    public var renewBeforeExpiry: String?
    /// The `[renewalparams]` section.
    public var parameters: CertbotRenewalParameters

    /// Creates a renewal configuration.
    public init(
        lineage: String, version: String? = nil, archiveDirectory: String? = nil, certificatePath: String,
        privateKeyPath: String, chainPath: String, fullchainPath: String, renewBeforeExpiry: String? = nil,
        parameters: CertbotRenewalParameters
    ) {
        self.lineage = lineage
        self.version = version
        self.archiveDirectory = archiveDirectory
        self.certificatePath = certificatePath
        self.privateKeyPath = privateKeyPath
        self.chainPath = chainPath
        self.fullchainPath = fullchainPath
        self.renewBeforeExpiry = renewBeforeExpiry
        self.parameters = parameters
    }

    /// Parses the text of `renewal/<lineage>.conf`.
    /// - Parameters:
    ///   - text: The file's text.
    ///   - lineage: The lineage name (the file name without `.conf`).
    ///   - path: The file's path, for error messages.
    /// - Throws: ``CertbotImportError`` (`malformed`) naming the file and line: a syntax error, a missing `cert`,
    ///   `privkey`, `chain` or `fullchain`, a missing `[renewalparams]`, or a value of the wrong shape.
    public static func parse(_ text: String, lineage: String, path: String) throws(CertbotImportError) -> CertbotRenewalConf {
        let root: ConfigObjSection
        do throws(ConfigObjSyntaxError) {
            root = try ConfigObjParser.parse(text)
        } catch {
            throw CertbotImportError(.malformed, path: path, error.description)
        }
        let reader = SectionReader(section: root, path: path)
        guard let parameters = root.section("renewalparams") else {
            throw CertbotImportError(.malformed, path: path, "no [renewalparams] section (not a certbot renewal configuration?)")
        }
        return CertbotRenewalConf(
            lineage: lineage,
            version: try reader.string("version"),
            archiveDirectory: try reader.string("archive_dir"),
            certificatePath: try reader.required("cert"),
            privateKeyPath: try reader.required("privkey"),
            chainPath: try reader.required("chain"),
            fullchainPath: try reader.required("fullchain"),
            renewBeforeExpiry: try reader.string("renew_before_expiry"),
            parameters: try CertbotRenewalParameters(parameters, path: path)
        )
    }
}

/// The `[renewalparams]` of a lineage: how certbot renews it.
public struct CertbotRenewalParameters: Sendable, Equatable {
    /// `account`: the certbot account ID (a directory name under `accounts/<server>/`).
    public var account: String?
    /// `server`: the ACME directory URL.
    public var server: String?
    /// `authenticator`: `standalone`, `webroot`, `manual`, `nginx`, `apache`, `dns-<provider>`, …
    public var authenticator: String?
    /// `installer`: `nginx`, `apache`, `None`, …
    public var installer: String?
    /// `config_dir`: the certbot directory the lineage was created in (the prefix of the paths above).
    public var configDirectory: String?
    /// `key_type`: `rsa` or `ecdsa` (certbot before 2.0 wrote none and used RSA).
    public var keyType: String?
    /// `elliptic_curve`: `secp256r1` (certbot's default), `secp384r1` or `secp521r1`.
    public var ellipticCurve: String?
    /// `rsa_key_size`.
    public var rsaKeySize: Int?
    /// `webroot_path`: the webroots given on the command line, in order.
    public var webrootPaths: [String]
    /// `[[webroot_map]]`: the webroot of each domain, in file order.
    public var webrootMap: [WebrootMapping]
    /// `pref_challs`: preferred challenge types, e.g. `["dns-01"]`.
    public var preferredChallenges: [String]
    /// `http01_port` (standalone's port; certbot's default is 80).
    public var http01Port: Int?
    /// `http01_address` (standalone's address; empty means every interface).
    public var http01Address: String?
    /// `manual_auth_hook`.
    public var manualAuthHook: String?
    /// `manual_cleanup_hook`.
    public var manualCleanupHook: String?
    /// `renew_hook`: the deploy hook (`--deploy-hook` is stored under this old name).
    public var deployHook: String?
    /// `pre_hook`.
    public var preHook: String?
    /// `post_hook`.
    public var postHook: String?
    /// `preferred_chain`.
    public var preferredChain: String?
    /// `must_staple`.
    public var mustStaple: Bool

    /// One `domain = webroot` line of `[[webroot_map]]`.
    public struct WebrootMapping: Sendable, Equatable {
        /// The domain.
        public var domain: String
        /// Its webroot.
        public var webroot: String

        /// Creates a mapping.
        public init(domain: String, webroot: String) {
            self.domain = domain
            self.webroot = webroot
        }
    }

    /// Creates parameters; every value is optional.
    public init(
        account: String? = nil, server: String? = nil, authenticator: String? = nil, installer: String? = nil,
        configDirectory: String? = nil, keyType: String? = nil, ellipticCurve: String? = nil, rsaKeySize: Int? = nil, webrootPaths: [String] = [],
        webrootMap: [WebrootMapping] = [], preferredChallenges: [String] = [], http01Port: Int? = nil,
        http01Address: String? = nil, manualAuthHook: String? = nil, manualCleanupHook: String? = nil,
        deployHook: String? = nil, preHook: String? = nil, postHook: String? = nil, preferredChain: String? = nil,
        mustStaple: Bool = false
    ) {
        self.account = account
        self.server = server
        self.authenticator = authenticator
        self.installer = installer
        self.configDirectory = configDirectory
        self.keyType = keyType
        self.ellipticCurve = ellipticCurve
        self.rsaKeySize = rsaKeySize
        self.webrootPaths = webrootPaths
        self.webrootMap = webrootMap
        self.preferredChallenges = preferredChallenges
        self.http01Port = http01Port
        self.http01Address = http01Address
        self.manualAuthHook = manualAuthHook
        self.manualCleanupHook = manualCleanupHook
        self.deployHook = deployHook
        self.preHook = preHook
        self.postHook = postHook
        self.preferredChain = preferredChain
        self.mustStaple = mustStaple
    }

    init(_ section: ConfigObjSection, path: String) throws(CertbotImportError) {
        let reader = SectionReader(section: section, path: path)
        self.init(
            account: try reader.string("account"),
            server: try reader.string("server"),
            authenticator: try reader.string("authenticator"),
            installer: try reader.string("installer"),
            configDirectory: try reader.string("config_dir"),
            keyType: try reader.string("key_type")?.lowercased(),
            ellipticCurve: try reader.string("elliptic_curve")?.lowercased(),
            rsaKeySize: try reader.integer("rsa_key_size"),
            webrootPaths: reader.list("webroot_path"),
            webrootMap: section.section("webroot_map").map { map in
                map.entries.compactMap { entry in entry.value.strings.first.map { WebrootMapping(domain: entry.key, webroot: $0) } }
            } ?? [],
            preferredChallenges: reader.list("pref_challs").map { $0.lowercased() },
            http01Port: try reader.integer("http01_port"),
            http01Address: try reader.string("http01_address"),
            manualAuthHook: try reader.string("manual_auth_hook"),
            manualCleanupHook: try reader.string("manual_cleanup_hook"),
            deployHook: try reader.string("renew_hook"),
            preHook: try reader.string("pre_hook"),
            postHook: try reader.string("post_hook"),
            preferredChain: try reader.string("preferred_chain"),
            mustStaple: try reader.boolean("must_staple") ?? false
        )
    }
}

/// Typed access to a section's values with errors naming the file and line. certbot writes `None` for unset
/// values; those read as absent.
struct SectionReader {
    var section: ConfigObjSection
    var path: String

    func string(_ key: String) throws(CertbotImportError) -> String? {
        switch section[key] {
        case nil:
            return nil
        case .string(let text):
            return text.isEmpty || text == "None" ? nil : text
        case .list(let items):
            // configobj writes a one-item list as `value,`; accept it where a single value is expected.
            guard items.count <= 1 else {
                throw CertbotImportError(.malformed, path: path, "line \(section.line(of: key) ?? 0): \(key) has \(items.count) comma-separated values, want one")
            }
            return items.first.flatMap { $0.isEmpty || $0 == "None" ? nil : $0 }
        }
    }

    func required(_ key: String) throws(CertbotImportError) -> String {
        guard let value = try string(key) else {
            throw CertbotImportError(.malformed, path: path, "\(key) is missing (certbot writes cert, privkey, chain and fullchain)")
        }
        return value
    }

    func list(_ key: String) -> [String] {
        (section[key]?.strings ?? []).filter { !$0.isEmpty && $0 != "None" }
    }

    func integer(_ key: String) throws(CertbotImportError) -> Int? {
        guard let text = try string(key) else { return nil }
        guard let value = Int(text) else {
            throw CertbotImportError(.malformed, path: path, "line \(section.line(of: key) ?? 0): \(key) = \"\(text)\" is not a whole number")
        }
        return value
    }

    func boolean(_ key: String) throws(CertbotImportError) -> Bool? {
        guard let text = try string(key) else { return nil }
        switch text.lowercased() {
        case "true", "yes", "on", "1": return true
        case "false", "no", "off", "0": return false
        default:
            throw CertbotImportError(.malformed, path: path, "line \(section.line(of: key) ?? 0): \(key) = \"\(text)\" is not True or False")
        }
    }
}
