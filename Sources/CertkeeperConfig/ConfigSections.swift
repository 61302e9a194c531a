import Foundation
import Yams

// One function per section of the file. Each reports every problem it finds and still returns a value, using
// placeholders ("" for a missing required string) where a value is unusable: the caller throws whenever anything
// was reported, so a placeholder never reaches a consumer.

extension ConfigReader {
    /// The whole configuration, or `nil` when any issue was reported.
    /// - Parameter root: the document's root node; `nil` for an empty file.
    func configuration(from root: Node?) -> CertkeeperConfiguration? {
        let top: CheckedMapping
        switch root {
        case nil:
            top = .empty(at: .root, mark: nil)
        case let node? where Self.isNull(node):
            top = .empty(at: .root, mark: node.mark)
        case let node?:
            guard case .mapping = node else {
                report(.root, "expected a mapping of settings at the top level, got \(Self.describe(node))", node: node)
                return nil
            }
            guard let checked = mapping(node, at: .root, keys: ConfigSchema.topLevel) else { return nil }
            top = checked
        }

        let stateDirectory = required(top, "state_dir", absolutePath)
        let nodeName = optional(top, "node_name", name)
        let keepVersions = optional(top, "keep_versions") {
            integer($0, at: $1, in: CertkeeperConfiguration.keepVersionsRange)
        }
        let acme = acmeSettings(top["acme"], at: .root.key("acme"))
        let internalCA = internalCASettings(top["internal_ca"], at: .root.key("internal_ca"), parentMark: top.mark)
        let renew = renewSettings(top["renew"], at: .root.key("renew"), parentMark: top.mark)
        let certificates = certificateSpecs(top["certificates"], at: .root.key("certificates"))
        if acme == nil, let index = certificates.firstIndex(where: { $0.issuer == .acme })
        {
            report(.root.key("acme"), "required key is missing: certificates[\(index)] ('\(certificates[index].name)') "
                + "uses issuer: acme (the default); add an acme: section with a directory, or set issuer: internal",
                   mark: top["acme"]?.mark ?? top.mark)
        }
        // An internal leaf's lifetime is known here: renew_before at or above it would be due again at issuance
        // and re-issued on every check.
        if let certificatesNode = top["certificates"], case .sequence(let items) = certificatesNode {
            for (index, spec) in certificates.enumerated() where index < items.count && spec.issuer == .internalCA {
                guard let renewBefore = spec.renewBefore, renewBefore >= internalCA.leafLifetime,
                      case .mapping(let map) = items[index], let node = map["renew_before"] else { continue }
                report(.root.key("certificates").index(index).key("renew_before"),
                       "must be shorter than internal_ca.leaf_lifetime (\(Self.seconds(internalCA.leafLifetime))): a leaf would be due again the moment it is issued",
                       node: node)
            }
        }
        let hooks = hookSettings(top["hooks"], at: .root.key("hooks"), parentMark: top.mark)
        let cluster = clusterSettings(top["cluster"], at: .root.key("cluster"), nodeName: nodeName)
        let proxy = proxySettings(top["proxy"], at: .root.key("proxy"))
        if let defaultName = proxy?.defaultCertificate, !certificates.contains(where: { $0.name == defaultName }),
           let node = top["proxy"]
        {
            report(.root.key("proxy").key("default_certificate"), "'\(defaultName)' is not one of the certificates' names", node: node)
        }
        let stats = statsSettings(
            top["stats"], at: .root.key("stats"),
            taken: (proxy?.frontends ?? []).enumerated().map { ($1.listen, "proxy.frontends[\($0)]") }
                + (cluster.map { [($0.listen, "cluster.listen")] } ?? []))

        guard !hasIssues else { return nil }
        return CertkeeperConfiguration(
            stateDirectory: stateDirectory ?? "",
            nodeName: nodeName,
            keepVersions: keepVersions ?? CertkeeperConfiguration.defaultKeepVersions,
            acme: acme,
            internalCA: internalCA,
            renew: renew,
            certificates: certificates,
            hooks: hooks,
            cluster: cluster,
            proxy: proxy,
            stats: stats
        )
    }

    // MARK: acme

    /// The `acme:` section; `nil` when absent or empty (the caller decides whether a certificate needs it).
    /// When present, `acme.directory` is required.
    func acmeSettings(_ node: Node?, at path: ConfigPath) -> ACMESettings? {
        guard let node, !Self.isNull(node) else { return nil }
        guard let map = mapping(node, at: path, keys: ConfigSchema.acme) else { return .unconfigured }
        let directory = required(map, "directory") {
            checkedString($0, at: $1, isNot: "a valid ACME directory URL", Syntax.httpsURLProblem)
        }
        let email = optional(map, "email") {
            checkedString($0, at: $1, isNot: "a valid email address", Syntax.emailProblem)
        }
        let requestTimeout = optional(map, "request_timeout", timeout) ?? ACMESettings.defaultRequestTimeout
        let orderTimeout = optional(map, "order_timeout", timeout) ?? ACMESettings.defaultOrderTimeout
        if orderTimeout < requestTimeout, let orderNode = map["order_timeout"] {
            report(path.key("order_timeout"),
                   "must be at least acme.request_timeout (\(Self.seconds(requestTimeout)))", node: orderNode)
        }
        return ACMESettings(
            directoryURL: directory ?? "",
            email: email,
            caBundle: optional(map, "ca_bundle", absolutePath),
            externalAccountBinding: optional(map, "eab", externalAccountBinding),
            profile: optional(map, "profile", profile),
            requestTimeout: requestTimeout,
            orderTimeout: orderTimeout
        )
    }

    /// `acme.eab`: `{kid, hmac_key}`. Messages never quote the key.
    func externalAccountBinding(_ node: Node, at path: ConfigPath) -> ExternalAccountBinding? {
        if case .scalar = node {
            // Someone may have pasted the key itself here: say what is wrong without echoing it.
            report(path, "expected a mapping with kid and hmac_key, got a string", node: node)
            return nil
        }
        guard let map = mapping(node, at: path, keys: ConfigSchema.externalAccountBinding) else { return nil }
        let keyID = required(map, "kid") { node, path -> String? in
            guard let text = string(node, at: path) else { return nil }
            guard !text.trimmingCharacters(in: .whitespaces).isEmpty else {
                report(path, "must not be blank", node: node)
                return nil
            }
            return text
        }
        let hmacKey = required(map, "hmac_key") { node, path -> [UInt8]? in
            guard case .scalar(let scalar) = node else {
                // Only mappings and lists get here, so describing the node cannot reveal the key.
                report(path, "expected a base64url string, got \(Self.describe(node))", node: node)
                return nil
            }
            switch Syntax.decodeBase64URL(scalar.string) {
            case .success(let bytes): return bytes
            case .failure(let reason):
                report(path, "the MAC key is not valid: \(reason.text)", node: node)
                return nil
            }
        }
        guard let keyID, let hmacKey else { return nil }
        return ExternalAccountBinding(keyID: keyID, hmacKey: hmacKey)
    }

    // MARK: internal_ca

    /// The `internal_ca:` section; every key has a default.
    func internalCASettings(_ node: Node?, at path: ConfigPath, parentMark: Mark?) -> InternalCASettings {
        guard let map = section(node, at: path, keys: ConfigSchema.internalCA, parentMark: parentMark) else {
            return InternalCASettings()
        }
        let name = optional(map, "name") { node, path -> String? in
            guard let text = string(node, at: path) else { return nil }
            let trimmed = text.trimmingCharacters(in: .whitespaces)
            if trimmed.isEmpty {
                report(path, "must not be blank", node: node)
                return nil
            }
            if trimmed.count > InternalCASettings.maximumNameLength {
                report(path, "must be at most \(InternalCASettings.maximumNameLength) characters (it becomes the root's "
                    + "common name), got \(trimmed.count)", node: node)
                return nil
            }
            if trimmed.unicodeScalars.contains(where: { $0.properties.generalCategory == .control }) {
                report(path, "must not contain control characters", node: node)
                return nil
            }
            return trimmed
        }
        let leafLifetime = optional(map, "leaf_lifetime", timeout) ?? InternalCASettings.defaultLeafLifetime
        let rootLifetime = optional(map, "root_lifetime", timeout) ?? InternalCASettings.defaultRootLifetime
        if leafLifetime < InternalCASettings.minimumLeafLifetime, let leafNode = map["leaf_lifetime"] {
            report(path.key("leaf_lifetime"), "must be at least 1h (leaves are backdated 5 minutes for clock skew)",
                   node: leafNode)
        } else if rootLifetime < leafLifetime, let rootNode = map["root_lifetime"] {
            report(path.key("root_lifetime"),
                   "must be at least internal_ca.leaf_lifetime (\(Self.seconds(leafLifetime)))", node: rootNode)
        }
        return InternalCASettings(
            name: name ?? InternalCASettings.defaultName, leafLifetime: leafLifetime, rootLifetime: rootLifetime)
    }

    // MARK: renew

    /// The `renew:` section; every key has a default.
    func renewSettings(_ node: Node?, at path: ConfigPath, parentMark: Mark?) -> RenewSettings {
        guard let map = section(node, at: path, keys: ConfigSchema.renew, parentMark: parentMark) else {
            return RenewSettings()
        }
        return RenewSettings(
            randomSleepMax: optional(map, "random_sleep", delay) ?? RenewSettings.defaultRandomSleepMax,
            concurrency: optional(map, "concurrency") { integer($0, at: $1, in: RenewSettings.concurrencyRange) }
                ?? RenewSettings.defaultConcurrency,
            lockTimeout: optional(map, "lock_timeout", delay) ?? RenewSettings.defaultLockTimeout,
            http01Listen: optional(map, "http01_listen", listenAddress) ?? RenewSettings.defaultHTTP01Listen
        )
    }

    // MARK: certificates

    /// The `certificates:` list; absent or empty is allowed.
    func certificateSpecs(_ node: Node?, at path: ConfigPath) -> [CertificateSpec] {
        guard let node, !Self.isNull(node), let items = list(node, at: path, of: "certificates") else { return [] }
        var namesSeen: [String: ConfigPath] = [:]
        return items.compactMap { certificateSpec($0.node, at: $0.path, namesSeen: &namesSeen) }
    }

    /// One certificate entry.
    /// - Parameter namesSeen: lower-cased names of earlier entries, to reject duplicates.
    func certificateSpec(_ node: Node, at path: ConfigPath, namesSeen: inout [String: ConfigPath])
        -> CertificateSpec?
    {
        guard let map = mapping(node, at: path, keys: ConfigSchema.certificate) else { return nil }

        let name = required(map, "name", name)
        if let name, let nameNode = map["name"] {
            // Case-insensitive: names become directory names, and some file systems fold case.
            if let earlier = namesSeen[name.lowercased()] {
                report(path.key("name"), "duplicate certificate name '\(name)' (also used by \(earlier))",
                       node: nameNode)
            } else {
                namesSeen[name.lowercased()] = path
            }
        }

        let issuer = optional(map, "issuer") { choice($0, at: $1, of: CertificateIssuer.self) } ?? .acme
        let challenge: ChallengeSpec?
        if issuer == .internalCA {
            // The internal CA asks for no proof; ACME-only keys would silently do nothing, so they are errors.
            for key in ["challenge", "profile"] {
                if let keyNode = map[key], !Self.isNull(keyNode) {
                    report(path.key(key), "only used with issuer: acme; this certificate uses issuer: internal", node: keyNode)
                }
            }
            challenge = .http01(HTTP01Settings())
        } else if let challengeNode = map["challenge"], !Self.isNull(challengeNode) {
            challenge = self.challenge(challengeNode, at: path.key("challenge"))
        } else {
            challenge = .http01(HTTP01Settings())
        }
        let domains = required(map, "domains") { node, path in
            issuer == .internalCA ? internalNameList(node, at: path) : domainList(node, at: path, challenge: challenge)
        }

        return CertificateSpec(
            name: name ?? "",
            domains: domains ?? [],
            issuer: issuer,
            keyType: optional(map, "key_type") { choice($0, at: $1, of: KeyType.self) } ?? .ec256,
            challenge: challenge ?? .http01(HTTP01Settings()),
            renewBefore: optional(map, "renew_before", timeout),
            profile: optional(map, "profile", profile),
            deployHooks: optional(map, "hooks", hookCommands) ?? []
        )
    }

    /// `certificates[i].domains`: lower-cased, valid, unique; wildcards only with dns-01.
    /// - Parameter challenge: the certificate's challenge, `nil` when it was invalid (then wildcards are not judged).
    func domainList(_ node: Node, at path: ConfigPath, challenge: ChallengeSpec?) -> [String]? {
        guard let items = list(node, at: path, of: "strings") else { return nil }
        if items.isEmpty { report(path, "must list at least one domain", node: node) }
        var domains: [String] = []
        var firstIndex: [String: Int] = [:]
        for (index, item) in items.enumerated() {
            guard let text = string(item.node, at: item.path) else { continue }
            let domain = text.lowercased()
            if let problem = Syntax.dnsNameProblem(domain, allowWildcard: true) {
                report(item.path, "'\(Self.quoted(text))' is not a valid DNS name: \(problem)", node: item.node)
                continue
            }
            if let earlier = firstIndex[domain] {
                report(item.path, "'\(text)' is listed twice (also at \(path.index(earlier)))", node: item.node)
                continue
            }
            firstIndex[domain] = index
            if domain.hasPrefix("*."), let challenge, case .http01 = challenge {
                report(item.path, "wildcard '\(text)' requires challenge type dns-01; this certificate uses http-01",
                       node: item.node)
            }
            domains.append(domain)
        }
        return domains
    }

    /// `certificates[i].domains` of an internal certificate: lower-cased DNS names (one label allowed, wildcards
    /// allowed) and IP addresses in canonical form, unique.
    func internalNameList(_ node: Node, at path: ConfigPath) -> [String]? {
        guard let items = list(node, at: path, of: "strings") else { return nil }
        if items.isEmpty { report(path, "must list at least one name", node: node) }
        var names: [String] = []
        var firstIndex: [String: Int] = [:]
        for (index, item) in items.enumerated() {
            guard let text = string(item.node, at: item.path) else { continue }
            let lowered = text.lowercased()
            if let problem = Syntax.internalNameProblem(lowered) {
                report(item.path, "'\(Self.quoted(text))' is not a valid DNS name or IP address: \(problem)", node: item.node)
                continue
            }
            let name = Syntax.canonicalIPAddress(lowered) ?? lowered
            if let earlier = firstIndex[name] {
                report(item.path, "'\(text)' is listed twice (also at \(path.index(earlier)))", node: item.node)
                continue
            }
            firstIndex[name] = index
            names.append(name)
        }
        return names
    }

    /// `certificates[i].challenge`: a mapping with `type`, or the bare word `http-01`.
    func challenge(_ node: Node, at path: ConfigPath) -> ChallengeSpec? {
        if case .scalar = node {
            guard let type = choice(node, at: path, of: ChallengeType.self) else { return nil }
            switch type {
            case .http01:
                return .http01(HTTP01Settings())
            case .dns01:
                report(path, "dns-01 needs a hook; write challenge: {type: dns-01, hook: /path/to/hook}", node: node)
                return nil
            }
        }
        // Accept the keys of every type first, so a key of the other type gets a precise message below.
        guard let map = mapping(node, at: path, keys: ConfigSchema.anyChallenge),
            let type = required(map, "type", { choice($0, at: $1, of: ChallengeType.self) })
        else { return nil }
        for (key, value) in map.entries.sorted(by: { $0.key < $1.key }) where !type.keys.contains(key) {
            let owner = ChallengeType.allCases.first { $0.keys.contains(key) }?.rawValue ?? "other"
            report(path.key(key), "only \(owner) challenges use this key; this one is \(type.rawValue)", node: value)
        }
        switch type {
        case .http01:
            let webroot = optional(map, "webroot", absolutePath)
            let listen = optional(map, "listen", listenAddress)
            if webroot != nil, listen != nil, let listenNode = map["listen"] {
                report(path, "set either webroot (an existing web server) or listen (the built-in responder), "
                    + "not both", node: listenNode)
            }
            let stateless = optional(map, "stateless") { node, path -> Bool? in
                if case .scalar(let scalar) = node, node.tagName == .bool, let value = Bool.construct(from: scalar) { return value }
                report(path, "expected true or false, got \(Self.describe(node))", node: node)
                return nil
            } ?? false
            if stateless, webroot != nil || listen != nil, let statelessNode = map["stateless"] {
                report(path.key("stateless"), "stateless: true publishes nothing (the daemons' mode: http frontends answer); "
                    + "remove webroot and listen", node: statelessNode)
            }
            return .http01(HTTP01Settings(webroot: webroot, listen: listen, stateless: stateless))
        case .dns01:
            let hook = required(map, "hook", absolutePath)
            let propagationDelay = optional(map, "propagation_delay", delay) ?? DNS01Settings.defaultPropagationDelay
            let timeout = optional(map, "timeout", timeout) ?? DNS01Settings.defaultTimeout
            guard let hook else { return nil }
            return .dns01(DNS01Settings(hook: hook, propagationDelay: propagationDelay, timeout: timeout))
        }
    }

    // MARK: hooks

    /// The `hooks:` section; every key has a default.
    func hookSettings(_ node: Node?, at path: ConfigPath, parentMark: Mark?) -> HookSettings {
        guard let map = section(node, at: path, keys: ConfigSchema.hooks, parentMark: parentMark) else {
            return HookSettings()
        }
        return HookSettings(
            deploy: optional(map, "deploy", hookCommands) ?? [],
            directory: optional(map, "directory", absolutePath),
            timeout: optional(map, "timeout", timeout) ?? HookSettings.defaultTimeout
        )
    }

    /// A list of deploy commands (`hooks.deploy`, `certificates[i].hooks`).
    func hookCommands(_ node: Node, at path: ConfigPath) -> [HookCommand]? {
        guard let items = list(node, at: path, of: "commands") else { return nil }
        return items.compactMap { hookCommand($0.node, at: $0.path) }
    }

    /// One deploy command: a bare string, or `{command, timeout?}`.
    func hookCommand(_ node: Node, at path: ConfigPath) -> HookCommand? {
        switch node {
        case .scalar where !Self.isNull(node):
            return commandLine(node, at: path).map { HookCommand(command: $0) }
        case .mapping:
            guard let map = mapping(node, at: path, keys: ConfigSchema.hookCommand) else { return nil }
            let command = required(map, "command", commandLine)
            let timeout = optional(map, "timeout", timeout)
            return command.map { HookCommand(command: $0, timeout: timeout) }
        default:
            report(path, "expected a command string or a mapping with 'command', got \(Self.describe(node))",
                   node: node)
            return nil
        }
    }

    /// A command line: not blank, no NUL.
    func commandLine(_ node: Node, at path: ConfigPath) -> String? {
        guard let text = string(node, at: path) else { return nil }
        if text.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty {
            report(path, "the command is empty", node: node)
            return nil
        }
        if text.contains("\0") {
            report(path, "the command contains a NUL character", node: node)
            return nil
        }
        return text
    }

    // MARK: Formatting

    /// Seconds in the shortest form for messages: `30s`, `1.5s`.
    static func seconds(_ value: Double) -> String {
        value == value.rounded() && abs(value) < 1e15 ? "\(Int(value))s" : "\(value)s"
    }
}
