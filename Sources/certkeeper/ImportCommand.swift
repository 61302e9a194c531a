import Agent
import ACMEProtocol
import ArgumentParser
import CertStore
import CertbotImport
import CertkeeperConfig
import Durations
import Foundation

/// `certkeeper import …`: take over what another ACME client manages.
struct Import: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Take over certificates and the ACME account from another client (certbot).",
        subcommands: [ImportCertbot.self]
    )
}

/// `certkeeper import certbot [DIR]`.
struct ImportCertbot: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "certbot",
        abstract: "Adopt certbot's lineages and ACME account, so a site moves over without reissuing.",
        discussion: """
        Reads DIR (certbot's configuration directory): renewal/<lineage>.conf, the live/<lineage>/ files (the \
        archive version they point at) and accounts/<server>/<id>/. Everything is checked before anything is \
        written: each lineage name must be a valid certificate name, the key must match the certificate, the chain \
        must link, the certificate must be valid now, and cert.pem, chain.pem and fullchain.pem must agree. Then, \
        holding the store lock, each lineage's current certificate and key are installed into the store as a new \
        version (keys 0600), unless the store already holds that certificate or a newer one, and certbot's account \
        key and account URL are stored for its ACME server, so certkeeper renews with the same account and sends \
        no new registration. Nothing is read from the network and certbot's files are not changed.

        Prints one line per account and lineage, then certificates: entries for the configuration (names from \
        the certificate, key type, challenge from certbot's authenticator, renew_before, deploy hook), with \
        notes where a setting does not carry over. Paste them into the configuration; the command does not edit it.

        Exit codes: 0 imported (or already up to date); 1 writing the store failed or its lock could not be had; \
        2 usage or configuration error, or a certbot file is missing or invalid (nothing was written).

        Examples:
          certkeeper import certbot --dry-run
          certkeeper import certbot /etc/letsencrypt
          certkeeper import certbot /srv/old/letsencrypt --lineage example.com
        """
    )

    @OptionGroup var global: GlobalOptions

    @Argument(help: ArgumentHelp("certbot's configuration directory.", valueName: "dir"))
    var directory: String = CertbotDirectory.defaultRoot

    @Option(name: .customLong("lineage"), help: ArgumentHelp("Import only this lineage (repeatable). Default: all of renewal/*.conf.", valueName: "name"))
    var lineages: [String] = []

    @Option(name: .long, help: ArgumentHelp("The certbot account ID to import when lineages of one server use different accounts.", valueName: "id"))
    var account: String?

    @Flag(name: .long, help: "Import certificates only, not the ACME account.")
    var noAccount = false

    @Flag(name: .long, help: "Check everything and print what would be done, without writing.")
    var dryRun = false

    func validate() throws {
        if noAccount && account != nil {
            throw ValidationError("give either --account or --no-account, not both")
        }
        if directory.isEmpty {
            throw ValidationError("dir: give certbot's configuration directory")
        }
    }

    func run() async throws {
        let configuration = try global.loadConfiguration()
        let configPath = ConfigLoader.resolvePath(explicit: global.config, environment: ProcessInfo.processInfo.environment)
        let certbotRoot = URL(fileURLWithPath: directory).standardizedFileURL.path
        if Self.sameDirectory(certbotRoot, configuration.stateDirectory) {
            throw CommandFailure.usage(["\(certbotRoot) is both certbot's directory and state_dir; give certkeeper a state_dir of its own (e.g. /var/lib/certkeeper)"])
        }
        let context = NodeContext(configuration: configuration, logger: global.logger)
        let (logger, store) = (context.logger, context.store)
        let configuredDirectory = configuration.acme.directoryURL.isEmpty ? nil : configuration.acme.directoryURL
        let importer = CertbotImporter(
            directory: CertbotDirectory(root: certbotRoot), store: store, configuredDirectory: configuredDirectory, logger: logger)
        let selection = ImportSelection(lineages: lineages, accountID: account, includeAccounts: !noAccount)

        let dryRun = dryRun
        let (plan, outcomes) = try await agentCommand { () async throws(AgentError) in
            try await CertbotImportRun.run(context, importer: importer, selection: selection, dryRun: dryRun)
        }

        for line in ImportReport.lines(plan: plan, outcomes: outcomes, dryRun: dryRun) { print(line) }
        for warning in ImportReport.warnings(
            plan: plan, configuredDirectory: configuredDirectory, configPath: configPath, accountDirectory: store.accountDirectory(directoryURL:)) {
            FileHandle.standardError.write(Data("certkeeper: warning: \(warning)\n".utf8))
        }
        print("")
        let configuredNames = Set(configuration.certificates.map { $0.name.lowercased() })
        print(ConfigSnippet.render(
            plan.lineages.map(\.entry),
            header: ["certificates: entries for \(configPath) (certkeeper does not edit it; check and paste)"]
                + plan.notes.map { "NOTE: \($0)" },
            alreadyConfigured: configuredNames), terminator: "")
        throw ExitCode(outcomes.contains(where: \.isFailure) ? ExitStatus.failure : ExitStatus.success)
    }

    /// Whether two paths name the same directory (after resolving symlinks).
    static func sameDirectory(_ a: String, _ b: String) -> Bool {
        func resolved(_ path: String) -> String { URL(fileURLWithPath: path).resolvingSymlinksInPath().standardizedFileURL.path }
        return resolved(a) == resolved(b)
    }
}

/// The lines `import certbot` prints: what was done, and warnings.
enum ImportReport {
    static func lines(plan: ImportPlan, outcomes: [ImportOutcome], dryRun: Bool) -> [String] {
        var lines: [String] = []
        for accountPlan in plan.accounts {
            let account = accountPlan.account
            let server = account.server
            let failure = outcomes.lazy.compactMap { $0.failure(of: .account(server: server)) }.first
            if let failure {
                lines.append("account \(server): FAILED: \(failure)")
                continue
            }
            switch accountPlan.action {
            case .install, .saveRecord:
                lines.append("account \(server): \(dryRun ? "would import" : "imported") certbot account \(account.id) (\(account.key.algorithm)) as \(account.registration.accountURL); renewals use it, no new registration")
            case .unchanged:
                lines.append("account \(server): unchanged (already imported: \(account.registration.accountURL))")
            case .keepStore(let url):
                lines.append("account \(server): kept certkeeper's own account \(url ?? "(key only, not registered yet)"); certbot's \(account.registration.accountURL) not imported")
            }
        }
        for lineagePlan in plan.lineages {
            let name = lineagePlan.lineage.name
            let verified = lineagePlan.verified
            let source = lineagePlan.lineage.fullchain.resolvedPath
            let failure = outcomes.lazy.compactMap { $0.failure(of: .lineage(name)) }.first
            if let failure {
                lines.append("\(name): FAILED: \(failure)")
                continue
            }
            switch lineagePlan.action {
            case .install:
                lines.append("\(name): \(dryRun ? "would import" : "imported") serial \(verified.serialHex), expires \(RFC3339.format(verified.leaf.notValidAfter)), \(verified.keyType), \(verified.domains.joined(separator: " ")) (from \(source))")
            case .unchanged:
                lines.append("\(name): unchanged (the store already holds serial \(verified.serialHex))")
            case .keepStore(let serial, let notBefore):
                lines.append("\(name): kept the store's certificate (serial \(serial), issued \(RFC3339.format(notBefore))), not older than certbot's (serial \(verified.serialHex), issued \(RFC3339.format(verified.leaf.notValidBefore)))")
            }
        }
        return lines
    }

    static func warnings(plan: ImportPlan, configuredDirectory: String?, configPath: String, accountDirectory: (String) -> String) -> [String] {
        var warnings: [String] = []
        for accountPlan in plan.accounts {
            let server = accountPlan.account.server
            guard case .keepStore = accountPlan.action else {
                if let configuredDirectory, configuredDirectory != server {
                    warnings.append("certbot's account is for \(server), but acme.directory in \(configPath) is \(configuredDirectory): certkeeper would register a new account there; set acme.directory to \(server) to renew with the imported account")
                } else if configuredDirectory == nil {
                    warnings.append("\(configPath) has no acme: section; add acme: {directory: \(server)} to renew with the imported account")
                }
                continue
            }
            warnings.append("certkeeper already has another account for \(server); certbot's account was not imported (move \(accountDirectory(server)) away and import again to switch)")
        }
        let servers = Set(plan.lineages.compactMap { $0.lineage.conf.parameters.server ?? CertbotDirectory.defaultServer })
        if let configuredDirectory, plan.accounts.isEmpty, !servers.isEmpty, !servers.contains(configuredDirectory) {
            warnings.append("certbot renewed these lineages at \(servers.sorted().joined(separator: ", ")), but acme.directory in \(configPath) is \(configuredDirectory)")
        }
        return warnings
    }
}
