import ACMEProtocol
import CertStore
import Foundation
import Logging
import Renewal
import SwiftASN1
import X509

/// Which parts of a certbot directory to import.
public struct ImportSelection: Sendable, Equatable {
    /// Lineage names to import; empty means all.
    public var lineages: [String]
    /// The certbot account ID to use where lineages of one server name different accounts.
    public var accountID: String?
    /// Whether to import ACME accounts at all.
    public var includeAccounts: Bool

    /// Creates a selection.
    public init(lineages: [String] = [], accountID: String? = nil, includeAccounts: Bool = true) {
        self.lineages = lineages
        self.accountID = accountID
        self.includeAccounts = includeAccounts
    }
}

/// What importing one lineage will do, decided against the store's current contents.
public enum LineageAction: Sendable, Equatable {
    /// Install the certbot certificate as a new version.
    case install
    /// The store already holds this very certificate.
    case unchanged
    /// The store holds a certificate at least as new (by notBefore): keep it.
    case keepStore(serial: String, notBefore: Date)
}

/// A validated lineage and what to do with it.
public struct LineagePlan: Sendable {
    /// The lineage as read.
    public var lineage: CertbotLineage
    /// The verified bundle (key matches, chain links, valid now).
    public var verified: VerifiedBundle
    /// The suggested `certificates:` entry.
    public var entry: SuggestedEntry
    /// What applying the plan does.
    public var action: LineageAction
}

/// What importing one certbot account will do.
public enum AccountAction: Sendable, Equatable {
    /// Store the key and the account URL (certkeeper has no account for the server yet).
    case install
    /// certkeeper has this key but not (or another) account URL: store the URL.
    case saveRecord
    /// certkeeper already has this account.
    case unchanged
    /// certkeeper has another account for the server: keep it, do not import certbot's.
    case keepStore(accountURL: String?)
}

/// A validated account and what to do with it.
public struct AccountPlan: Sendable {
    /// The account as read.
    public var account: CertbotAccount
    /// The lineages that use it.
    public var lineages: [String]
    /// What applying the plan does.
    public var action: AccountAction
}

/// Everything an import will do, validated before anything is written.
public struct ImportPlan: Sendable {
    /// The lineages, in name order.
    public var lineages: [LineagePlan]
    /// The accounts, one per ACME server.
    public var accounts: [AccountPlan]
    /// Remarks that concern the whole import (deploy hook scripts certbot runs, lineages without an account).
    public var notes: [String]
}

/// Every problem found while validating, one per lineage or account (nothing was written).
public struct ImportValidationFailure: Error, Sendable, CustomStringConvertible {
    /// The problems, each naming its file.
    public var problems: [CertbotImportError]

    /// The problems, one per line.
    public var description: String { problems.map(\.description).joined(separator: "\n") }
}

/// One part of a plan: an account or a lineage.
public enum ImportSubject: Sendable, Hashable {
    /// The account for an ACME directory URL.
    case account(server: String)
    /// A lineage, by name.
    case lineage(String)
}

/// The result of applying one part of a plan.
public enum ImportOutcome: Sendable {
    /// A lineage was installed.
    case installed(lineage: String, meta: CertificateMeta)
    /// A lineage was left alone (``LineageAction/unchanged`` or ``LineageAction/keepStore(serial:notBefore:)``).
    case skipped(lineage: String, action: LineageAction)
    /// An account was stored (or its record updated).
    case accountStored(server: String, accountURL: String)
    /// An account was left alone.
    case accountSkipped(server: String, action: AccountAction)
    /// Writing failed; the store keeps what it had for this part.
    case failed(ImportSubject, StoreError)

    /// The error, when this outcome is the failure of `subject`.
    public func failure(of subject: ImportSubject) -> StoreError? {
        if case .failed(subject, let error) = self { return error }
        return nil
    }

    /// Whether this part failed.
    public var isFailure: Bool {
        if case .failed = self { return true }
        return false
    }
}

/// Imports certbot lineages and accounts into a ``CertificateStore``: plan (read, validate, compare with the
/// store, never write), then apply.
///
/// Callers that write hold the store lock (``CertificateStore/acquireLock(timeout:)``) around both steps, so that
/// "is the store's certificate newer?" is still true when the install happens (lock → check again → install).
public struct CertbotImporter: Sendable {
    /// The certbot directory.
    public let directory: CertbotDirectory
    /// The destination.
    public let store: CertStore.CertificateStore
    /// The configuration's `acme.directory`, for the suggested entries' notes.
    public let configuredDirectory: String?
    let logger: Logger

    /// Creates an importer.
    /// - Parameters:
    ///   - directory: certbot's directory.
    ///   - store: certkeeper's store.
    ///   - configuredDirectory: `acme.directory` from the configuration, if any.
    ///   - logger: Where decisions are logged (never key material).
    public init(directory: CertbotDirectory, store: CertStore.CertificateStore, configuredDirectory: String?, logger: Logger) {
        self.directory = directory
        self.store = store
        self.configuredDirectory = configuredDirectory
        self.logger = logger
    }

    // MARK: - Planning

    /// Reads and validates the selected lineages and their accounts and decides what to do with each.
    /// - Parameters:
    ///   - selection: What to import.
    ///   - now: The time certificates must be valid at.
    /// - Returns: The plan.
    /// - Throws: ``ImportValidationFailure`` with every problem found (each names its file).
    public func plan(_ selection: ImportSelection, now: Date) throws(ImportValidationFailure) -> ImportPlan {
        var problems: [CertbotImportError] = []
        let names: [String]
        do throws(CertbotImportError) {
            let all = try directory.lineageNames()
            if selection.lineages.isEmpty {
                names = all
                if all.isEmpty {
                    throw CertbotImportError(.missing, path: directory.renewalDirectory, "holds no <lineage>.conf: nothing to import")
                }
            } else {
                let unknown = selection.lineages.filter { !all.contains($0) }
                guard unknown.isEmpty else {
                    throw CertbotImportError(.selection, path: directory.renewalDirectory,
                                             "no lineage \(unknown.map { "'\($0)'" }.joined(separator: ", ")) (found: \(all.isEmpty ? "none" : all.joined(separator: ", ")))")
                }
                names = all.filter { selection.lineages.contains($0) }
            }
        } catch {
            throw ImportValidationFailure(problems: [error])
        }

        var lineages: [LineagePlan] = []
        for name in names {
            do throws(CertbotImportError) {
                lineages.append(try planLineage(name, now: now))
            } catch {
                problems.append(error)
            }
        }

        var notes: [String] = []
        var accounts: [AccountPlan] = []
        if selection.includeAccounts {
            // Which certbot account each server's lineages use.
            var byServer: [String: [String: [String]]] = [:]  // server → account ID → lineages
            for plan in lineages {
                let parameters = plan.lineage.conf.parameters
                guard let id = parameters.account else {
                    notes.append("\(plan.lineage.confPath) names no account; certkeeper registers its own at the first renewal")
                    continue
                }
                byServer[parameters.server ?? CertbotDirectory.defaultServer, default: [:]][id, default: []].append(plan.lineage.name)
            }
            if let wanted = selection.accountID, !byServer.values.contains(where: { $0[wanted] != nil }) {
                problems.append(CertbotImportError(.selection, path: "\(directory.root)/accounts",
                                                   "--account \(wanted) is not used by any selected lineage"))
            }
            for server in byServer.keys.sorted() {
                let ids = byServer[server]!
                let id: String
                if ids.count == 1 {
                    id = ids.keys.first!
                } else if let wanted = selection.accountID, ids[wanted] != nil {
                    id = wanted
                } else {
                    let listing = ids.keys.sorted().map { "\($0) (\(ids[$0]!.joined(separator: ", ")))" }.joined(separator: "; ")
                    problems.append(CertbotImportError(
                        .selection, path: "\(directory.root)/accounts",
                        "lineages of \(server) use different certbot accounts: \(listing); certkeeper keeps one account per ACME directory: choose one with --account ID"))
                    continue
                }
                do throws(CertbotImportError) {
                    let account = try directory.readAccount(id: id, server: server)
                    accounts.append(AccountPlan(account: account, lineages: ids[id]!, action: try accountAction(account)))
                } catch {
                    problems.append(error)
                }
            }
        }

        let scripts = directory.deployHookScripts()
        if !scripts.isEmpty {
            notes.append("certbot runs \(scripts.count) script(s) from \(directory.root)/renewal-hooks/deploy after every renewal (\(scripts.joined(separator: ", "))); set hooks.directory to that directory, or copy them: they get RENEWED_LINEAGE and RENEWED_DOMAINS from certkeeper too")
        }
        guard problems.isEmpty else { throw ImportValidationFailure(problems: problems) }
        return ImportPlan(lineages: lineages, accounts: accounts, notes: notes)
    }

    private func planLineage(_ name: String, now: Date) throws(CertbotImportError) -> LineagePlan {
        let confPath = "\(directory.renewalDirectory)/\(name).conf"
        guard StoreName.isValid(name) else {
            throw CertbotImportError(.unsupported, path: confPath,
                                     "lineage name \(String(reflecting: name)) is not a valid certkeeper certificate name ([A-Za-z0-9][A-Za-z0-9._-]{0,63}, no \"..\"); rename the lineage with certbot first (certbot rename is not available: re-issue with --cert-name)")
        }
        let lineage = try directory.readLineage(name)
        let bundle: CertificateBundle
        do throws(VerificationError) {
            bundle = try CertificateBundle(fullchainPEM: lineage.fullchain.text, privateKeyPEM: lineage.privateKey.text)
        } catch {
            throw CertbotImportError(.malformed, path: lineage.fullchain.livePath, error.description)
        }
        let verified: VerifiedBundle
        do throws(VerificationError) {
            verified = try BundleVerifier().verify(bundle, expectedDomains: [], now: now)
        } catch {
            let path: String
            switch error {
            case .unparseablePrivateKey, .keyMismatch: path = lineage.privateKey.livePath
            default: path = lineage.fullchain.livePath
            }
            throw CertbotImportError(.inconsistent, path: path, error.description)
        }
        // cert.pem and chain.pem must be the two halves of fullchain.pem (certbot writes all three together).
        guard Self.derBlocks(lineage.certificate.text) == [verified.leafDER] else {
            throw CertbotImportError(.inconsistent, path: lineage.certificate.livePath,
                                     "is not the first certificate of \(lineage.fullchain.livePath)")
        }
        guard Self.derBlocks(lineage.chain.text) == Self.derBlocks(bundle.chainPEM) else {
            throw CertbotImportError(.inconsistent, path: lineage.chain.livePath,
                                     "differs from the intermediates in \(lineage.fullchain.livePath)")
        }

        let action: LineageAction
        do throws(StoreError) {
            try store.checkInstallable(name: name)
            if let current = try store.meta(name: name) {
                if current.serial == verified.serialHex {
                    action = .unchanged
                } else if current.notBefore >= verified.leaf.notValidBefore {
                    action = .keepStore(serial: current.serial, notBefore: current.notBefore)
                } else {
                    action = .install
                }
            } else {
                action = .install
            }
        } catch {
            throw CertbotImportError(error.code == .liveNotManaged ? .unsupported : .inconsistent,
                                     path: error.path.isEmpty ? store.liveDirectory(name: name) : error.path,
                                     "certkeeper's store: \(error.operation)\(error.detail.map { ": \($0)" } ?? "")")
        }
        let entry = SuggestedEntry.translate(lineage.conf, domains: verified.domains, certificateKeyType: verified.keyType,
                                             configuredDirectory: configuredDirectory)
        return LineagePlan(lineage: lineage, verified: verified, entry: entry, action: action)
    }

    private func accountAction(_ account: CertbotAccount) throws(CertbotImportError) -> AccountAction {
        let stored: StoredAccount
        do throws(StoreError) {
            guard let found = try store.loadAccount(directoryURL: account.server) else { return .install }
            stored = found
        } catch {
            throw CertbotImportError(.inconsistent, path: error.path, "certkeeper's store: \(error.operation)\(error.detail.map { ": \($0)" } ?? "")")
        }
        guard let storedKey = try? AccountKey(pem: stored.keyPEM), storedKey.thumbprint == account.key.thumbprint else {
            return .keepStore(accountURL: stored.record?.accountURL)
        }
        return stored.record?.accountURL == account.registration.accountURL ? .unchanged : .saveRecord
    }

    /// The DER of every CERTIFICATE block in a PEM text (`nil` entries never match).
    static func derBlocks(_ pem: String) -> [[UInt8]] {
        var blocks: [[UInt8]] = []
        var current: [Substring]?
        for line in pem.split(whereSeparator: \.isNewline) {
            let trimmed = line.trimmingCharacters(in: .whitespaces)
            if trimmed == "-----BEGIN CERTIFICATE-----" {
                current = [Substring(trimmed)]
            } else if trimmed == "-----END CERTIFICATE-----", var open = current {
                open.append(Substring(trimmed))
                if let document = try? PEMDocument(pemString: open.joined(separator: "\n")) {
                    blocks.append(document.derBytes)
                } else {
                    blocks.append([])
                }
                current = nil
            } else if current != nil {
                current!.append(Substring(trimmed))
            }
        }
        return blocks
    }

    // MARK: - Applying

    /// Writes what the plan says: accounts first (so the next renewal finds the account), then each lineage's
    /// certificate and a fresh renewal state. A failed part is reported and the others still run.
    /// - Parameters:
    ///   - plan: A plan made under the same store lock.
    ///   - nodeName: Recorded as the installing node in meta.json.
    ///   - now: The install time.
    /// - Returns: One outcome per account and lineage.
    public func apply(_ plan: ImportPlan, nodeName: String, now: Date) -> [ImportOutcome] {
        var outcomes: [ImportOutcome] = []
        for accountPlan in plan.accounts {
            let account = accountPlan.account
            let server = account.server
            switch accountPlan.action {
            case .install, .saveRecord:
                do throws(StoreError) {
                    if accountPlan.action == .install {
                        try store.saveAccountKey(directoryURL: server, keyPEM: account.key.pemRepresentation)
                    }
                    try store.saveAccountRecord(
                        directoryURL: server,
                        record: AccountRecord(directoryURL: server, accountURL: account.registration.accountURL,
                                              contact: account.registration.contact, createdAt: account.createdAt ?? now))
                    logger.info("imported certbot account", metadata: [
                        "acme.directory": "\(server)", "acme.account": "\(account.registration.accountURL)", "certbot.account": "\(account.id)",
                    ])
                    outcomes.append(.accountStored(server: server, accountURL: account.registration.accountURL))
                } catch {
                    outcomes.append(.failed(.account(server: server), error))
                }
            case .unchanged, .keepStore:
                outcomes.append(.accountSkipped(server: server, action: accountPlan.action))
            }
        }
        for lineagePlan in plan.lineages {
            let name = lineagePlan.lineage.name
            guard lineagePlan.action == .install else {
                outcomes.append(.skipped(lineage: name, action: lineagePlan.action))
                continue
            }
            do throws(StoreError) {
                // A fresh renewal state, written before live/ swaps: earlier failures (a renewal refused because
                // live/<name> was certbot's), pending deploy hooks and ARI answers concerned another certificate. ARI
                // is asked about this one on the next run. Its revocation mark names another serial and stays. No
                // deploy is owed: the imported certificate is the one certbot's setup already serves.
                let (meta, _) = try store.installRecorded(
                    lineagePlan.verified, name: name, issuedBy: nodeName, now: now, owesDeploy: false,
                    change: {
                        $0.backoff = nil
                        $0.pendingDeploy = nil
                        $0.installing = nil
                        $0.failedHooks = nil
                        $0.ari = nil
                    }, logger: logger)
                logger.info("imported certbot lineage", metadata: [
                    "cert.name": "\(name)", "cert.serial": "\(meta.serial)", "certbot.archive_version": "\(lineagePlan.lineage.version.map(String.init) ?? "?")",
                ])
                outcomes.append(.installed(lineage: name, meta: meta))
            } catch {
                outcomes.append(.failed(.lineage(name), error))
            }
        }
        return outcomes
    }
}
