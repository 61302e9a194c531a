import CertkeeperConfig

/// The `certificates:` entry certkeeper suggests for an imported lineage, with notes on what did not carry over.
///
/// Built from the renewal configuration and from the certificate itself: the names are the certificate's SANs and
/// the key type is the certificate's, so the first `renew` does not reissue at once because the configuration
/// differs from what is installed.
public struct SuggestedEntry: Sendable, Equatable {
    /// How the entry proves control of its domains.
    public enum Challenge: Sendable, Equatable {
        /// `http-01` through the built-in responder on `renew.http01_listen`.
        case http01
        /// `http-01` through the built-in responder on its own address (certbot standalone on another port).
        case http01Listen(String)
        /// `http-01` writing tokens into a web server's document root.
        case http01Webroot(String)
        /// `dns-01` through a hook program (a path the operator still has to provide).
        case dns01(hook: String)
    }

    /// The certificate name (the lineage name).
    public var name: String
    /// The certificate's names.
    public var domains: [String]
    /// `key_type`.
    public var keyType: String
    /// `challenge`.
    public var challenge: Challenge
    /// `renew_before`, in certkeeper's duration syntax.
    public var renewBefore: String?
    /// Per-certificate deploy commands (`hooks`).
    public var hooks: [String]
    /// One-line remarks for the operator, rendered as YAML comments above the entry.
    public var notes: [String]
    /// Extra comment lines rendered under the notes (a wrapper script for certbot's manual hooks).
    public var commentBlock: [String]

    /// Creates an entry.
    public init(name: String, domains: [String], keyType: String, challenge: Challenge, renewBefore: String? = nil,
                hooks: [String] = [], notes: [String] = [], commentBlock: [String] = []) {
        self.name = name
        self.domains = domains
        self.keyType = keyType
        self.challenge = challenge
        self.renewBefore = renewBefore
        self.hooks = hooks
        self.notes = notes
        self.commentBlock = commentBlock
    }

    /// Translates a lineage's renewal settings.
    /// - Parameters:
    ///   - conf: The lineage's renewal configuration.
    ///   - domains: The certificate's SANs.
    ///   - certificateKeyType: The certificate key's type as certkeeper names it (`ec256`, `rsa2048`, …).
    ///   - configuredDirectory: The configuration's `acme.directory`, to point out a lineage renewed elsewhere.
    ///   - hookDirectory: Where to suggest a dns-01 hook for a lineage that used certbot's manual or DNS plugins.
    public static func translate(
        _ conf: CertbotRenewalConf, domains: [String], certificateKeyType: String, configuredDirectory: String?,
        hookDirectory: String = "/etc/certkeeper/hooks"
    ) -> SuggestedEntry {
        let parameters = conf.parameters
        var notes: [String] = []
        var commentBlock: [String] = []

        // Key type: keep the installed key's type when certkeeper supports it, so nothing is reissued at once.
        let requested = requestedKeyType(parameters)
        let keyType: String
        if KeyType(rawValue: certificateKeyType) != nil {
            keyType = certificateKeyType
            if let requested, requested.certkeeperName != certificateKeyType {
                notes.append("certbot would renew with a \(requested.description) key; key_type keeps the current \(certificateKeyType) so the imported certificate is not reissued at once (change it to switch)")
            }
        } else if let requested, let name = requested.certkeeperName, KeyType(rawValue: name) != nil {
            keyType = name
            notes.append("the certificate's \(certificateKeyType) key is not a type certkeeper issues; the first renew reissues it as \(name)")
        } else {
            keyType = KeyType.ec256.rawValue
            notes.append("neither the certificate's \(certificateKeyType) key nor certbot's \(requested?.description ?? "setting") is a type certkeeper issues; the first renew reissues it as ec256")
        }

        let challenge = translateChallenge(conf, domains: domains, hookDirectory: hookDirectory, notes: &notes, commentBlock: &commentBlock)

        var renewBefore: String?
        if let text = conf.renewBeforeExpiry {
            if let seconds = CertbotDuration.seconds(text) {
                renewBefore = CertbotDuration.configText(seconds: seconds)
            } else {
                notes.append("renew_before_expiry = \(text) is not a duration certkeeper understands; left out (certkeeper renews with 1/3 of the lifetime left, or when ARI says)")
            }
        }

        var hooks: [String] = []
        if let deploy = parameters.deployHook {
            hooks.append(deploy)
            if deploy.contains("letsencrypt") {
                notes.append("the deploy hook names a certbot path; certkeeper sets RENEWED_LINEAGE to its own live directory, but paths written into the command itself need changing")
            }
        }
        if let pre = parameters.preHook {
            notes.append("certbot's pre_hook (\(pre)) has no equivalent: certkeeper's responder or webroot needs no server stopped")
        }
        if let post = parameters.postHook {
            notes.append("certbot's post_hook (\(post)) is not carried over; add it to hooks if it must run after each renewal")
        }
        if let chain = parameters.preferredChain {
            notes.append("preferred_chain \"\(chain)\" is not carried over: certkeeper installs the CA's default chain")
        }
        if parameters.mustStaple {
            notes.append("must_staple is not carried over (Let's Encrypt no longer issues Must-Staple certificates)")
        }
        if let server = parameters.server, let configuredDirectory, server != configuredDirectory {
            notes.append("certbot renewed this at \(server), but acme.directory is \(configuredDirectory)")
        }
        if domains.contains(where: { $0.contains(":") || $0.allSatisfy({ $0.isNumber || $0 == "." }) }) {
            notes.append("the certificate names an IP address, which certificates[].domains does not take yet")
        }
        return SuggestedEntry(name: conf.lineage, domains: domains, keyType: keyType, challenge: challenge,
                              renewBefore: renewBefore, hooks: hooks, notes: notes, commentBlock: commentBlock)
    }

    /// certbot's `key_type` / `elliptic_curve` / `rsa_key_size`.
    struct RequestedKey: Equatable {
        var description: String
        var certkeeperName: String?
    }

    static func requestedKeyType(_ parameters: CertbotRenewalParameters) -> RequestedKey? {
        switch parameters.keyType {
        case "ecdsa":
            switch parameters.ellipticCurve ?? "secp256r1" {
            case "secp256r1", "prime256v1", "p-256": return RequestedKey(description: "ECDSA P-256", certkeeperName: "ec256")
            case "secp384r1", "p-384": return RequestedKey(description: "ECDSA P-384", certkeeperName: "ec384")
            case let curve: return RequestedKey(description: "ECDSA \(curve)", certkeeperName: nil)
            }
        case "rsa", nil:
            // certbot before 2.0 wrote no key_type and made RSA keys.
            guard parameters.keyType != nil || parameters.rsaKeySize != nil else { return nil }
            let bits = parameters.rsaKeySize ?? 2048
            return RequestedKey(description: "RSA \(bits)", certkeeperName: "rsa\(bits)")
        case let other?:
            return RequestedKey(description: other, certkeeperName: nil)
        }
    }

    private static func translateChallenge(
        _ conf: CertbotRenewalConf, domains: [String], hookDirectory: String, notes: inout [String], commentBlock: inout [String]
    ) -> Challenge {
        let parameters = conf.parameters
        let authenticator = parameters.authenticator ?? "(none)"
        let wantsDNS = parameters.preferredChallenges.first(where: { $0 == "dns-01" || $0 == "http-01" }) == "dns-01"
            || domains.contains(where: { $0.hasPrefix("*.") })
        switch authenticator {
        case "standalone":
            let port = parameters.http01Port ?? 80
            let address = parameters.http01Address ?? ""
            if port == 80 && address.isEmpty { return .http01 }
            let host = address.isEmpty ? "0.0.0.0" : (address.contains(":") ? "[\(address)]" : address)
            return .http01Listen("\(host):\(port)")
        case "webroot":
            var byDomain: [String: String] = [:]
            for mapping in parameters.webrootMap { byDomain[mapping.domain.lowercased()] = mapping.webroot }
            var roots = domains.compactMap { byDomain[$0.lowercased()] }
            if roots.isEmpty { roots = parameters.webrootMap.map(\.webroot) }
            if roots.isEmpty { roots = parameters.webrootPaths }
            var counts: [String: Int] = [:]
            for root in roots { counts[root, default: 0] += 1 }
            guard let chosen = roots.max(by: { counts[$0]! < counts[$1]! }) else {
                notes.append("certbot's webroot plugin had no webroot_path or webroot_map; set challenge.webroot")
                return .http01
            }
            let others = Array(Set(roots).subtracting([chosen])).sorted()
            if !others.isEmpty {
                notes.append("certbot used several webroots (\(([chosen] + others).joined(separator: ", "))); certkeeper takes one per certificate: split the certificate or serve /.well-known/acme-challenge/ from \(chosen) for every name")
            }
            return .http01Webroot(chosen)
        case "manual":
            if wantsDNS {
                let hook = "\(hookDirectory)/\(conf.lineage)-dns01.sh"
                if let auth = parameters.manualAuthHook {
                    notes.append("certbot ran manual hooks for dns-01; certkeeper runs one program with present or cleanup and the same CERTBOT_* variables: create \(hook) (mode 0755) as below")
                    commentBlock = [
                        "#!/bin/sh",
                        "case \"$1\" in",
                        "  present) exec \(auth) ;;",
                    ]
                    if let cleanup = parameters.manualCleanupHook { commentBlock.append("  cleanup) exec \(cleanup) ;;") }
                    commentBlock.append("esac")
                } else {
                    notes.append("certbot asked for the dns-01 records interactively (manual, no hook); certkeeper needs a hook program: write \(hook)")
                }
                return .dns01(hook: hook)
            }
            notes.append("certbot's manual plugin answered http-01 through \(parameters.manualAuthHook ?? "an operator"); certkeeper answers itself: set challenge.webroot or challenge.listen if port 80 is taken")
            return .http01
        case "nginx", "apache":
            notes.append("certbot's \(authenticator) plugin answered http-01 through \(authenticator); give certkeeper that server's webroot (challenge.webroot), or proxy /.well-known/acme-challenge/ to challenge.listen")
            return .http01
        case let plugin where plugin.hasPrefix("dns-"):
            let hook = "\(hookDirectory)/\(plugin).sh"
            notes.append("certbot's \(plugin) plugin has no certkeeper equivalent: write \(hook), a program taking present or cleanup with CERTBOT_DOMAIN and CERTBOT_VALIDATION that calls your DNS provider")
            return .dns01(hook: hook)
        default:
            if wantsDNS {
                let hook = "\(hookDirectory)/\(conf.lineage)-dns01.sh"
                notes.append("certbot's \(authenticator) authenticator answered dns-01; write \(hook), a program taking present or cleanup with CERTBOT_DOMAIN and CERTBOT_VALIDATION")
                return .dns01(hook: hook)
            }
            notes.append("certbot's \(authenticator) authenticator has no certkeeper equivalent; using http-01 with the built-in responder")
            return .http01
        }
    }
}

/// Renders suggested entries as YAML for the `certificates:` section.
public enum ConfigSnippet {
    /// The snippet: a `certificates:` key followed by one list item per entry, notes as comments.
    /// - Parameters:
    ///   - entries: The entries, in order.
    ///   - header: Comment lines printed first (without `#`).
    ///   - alreadyConfigured: Entry names the configuration has already: printed as a comment only.
    public static func render(_ entries: [SuggestedEntry], header: [String] = [], alreadyConfigured: Set<String> = []) -> String {
        var lines = header.map { "# " + oneLine($0) }
        lines.append("certificates:")
        for entry in entries {
            if alreadyConfigured.contains(entry.name.lowercased()) {
                lines.append("  # \(oneLine(entry.name)) is already in the configuration: entry left out")
                continue
            }
            for note in entry.notes { lines.append("  # NOTE: " + oneLine(note)) }
            for line in entry.commentBlock { lines.append("  #   " + oneLine(line)) }
            lines.append("  - name: \(scalar(entry.name))")
            lines.append("    domains: [\(entry.domains.map(scalar).joined(separator: ", "))]")
            lines.append("    key_type: \(scalar(entry.keyType))")
            switch entry.challenge {
            case .http01:
                lines.append("    challenge: {type: http-01}")
            case .http01Listen(let listen):
                lines.append("    challenge: {type: http-01, listen: \(scalar(listen))}")
            case .http01Webroot(let webroot):
                lines.append("    challenge: {type: http-01, webroot: \(scalar(webroot))}")
            case .dns01(let hook):
                lines.append("    challenge: {type: dns-01, hook: \(scalar(hook))}")
            }
            if let renewBefore = entry.renewBefore { lines.append("    renew_before: \(renewBefore)") }
            if !entry.hooks.isEmpty {
                lines.append("    hooks:")
                for hook in entry.hooks { lines.append("      - \(quoted(hook))") }
            }
        }
        return lines.joined(separator: "\n") + "\n"
    }

    /// A YAML scalar: plain when it cannot be misread (letters, digits, `.`, `_`, `-`, `/`, not a number or a
    /// YAML 1.1 keyword), double-quoted otherwise.
    static func scalar(_ text: String) -> String {
        let safe = !text.isEmpty && text.allSatisfy { $0.isASCII && ($0.isLetter || $0.isNumber || "._-/".contains($0)) }
            && !"-.".contains(text.first!)
            && Double(text) == nil
            && !["y", "n", "yes", "no", "on", "off", "true", "false", "null", "~"].contains(text.lowercased())
        return safe ? text : quoted(text)
    }

    /// A double-quoted YAML scalar.
    static func quoted(_ text: String) -> String {
        var out = "\""
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\t": out += "\\t"
            case "\r": out += "\\r"
            default:
                if scalar.value < 0x20 || scalar.value == 0x7f {
                    let hex = String(scalar.value, radix: 16)
                    out += "\\x" + String(repeating: "0", count: 2 - hex.count) + hex
                } else {
                    out.unicodeScalars.append(scalar)
                }
            }
        }
        return out + "\""
    }

    private static func oneLine(_ text: String) -> String {
        String(text.map { $0 == "\n" || $0 == "\r" ? " " : $0 })
    }
}
