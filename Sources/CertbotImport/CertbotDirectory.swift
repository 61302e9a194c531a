import CertStore
import Foundation

/// One certbot lineage as found on disk: its renewal configuration and the current version of its files.
public struct CertbotLineage: Sendable, CustomStringConvertible {
    /// The live file a lineage consists of, after following the `live/` symlink into `archive/`.
    public struct File: Sendable, Equatable {
        /// The path certbot's renewal configuration names (moved under the directory being imported).
        public var livePath: String
        /// The file actually read (the symlink's target, or `livePath` when it is a plain file).
        public var resolvedPath: String
        /// The archive version in the target's name (`cert3.pem` → 3), when it has one.
        public var version: Int?
        /// The file's text.
        public var text: String
    }

    /// The parsed `renewal/<lineage>.conf`.
    public var conf: CertbotRenewalConf
    /// Its path.
    public var confPath: String
    /// `cert`.
    public var certificate: File
    /// `chain`.
    public var chain: File
    /// `fullchain`.
    public var fullchain: File
    /// `privkey` (its text is key material: never print it).
    public var privateKey: File

    /// The lineage name.
    public var name: String { conf.lineage }

    /// The archive version the live files point at (they agree; ``CertbotDirectory/readLineage(_:)`` checks it).
    public var version: Int? { fullchain.version }

    /// A summary without the private key.
    public var description: String {
        "CertbotLineage(\(name), version: \(version.map(String.init) ?? "?"), fullchain: \(fullchain.resolvedPath), key: <redacted>)"
    }
}

/// A certbot configuration directory (`/etc/letsencrypt`): `renewal/*.conf`, `live/`, `archive/`, `accounts/`.
///
/// Only reads. A copy of the directory elsewhere works too: absolute paths inside the renewal configurations that
/// point into the original directory are moved under ``root``.
public struct CertbotDirectory: Sendable {
    /// certbot's default directory.
    public static let defaultRoot = "/etc/letsencrypt"
    /// Let's Encrypt's production directory, certbot's default `server`.
    public static let defaultServer = "https://acme-v02.api.letsencrypt.org/directory"

    /// The directory (no trailing slash).
    public let root: String

    /// Creates a reader for `root`.
    public init(root: String) {
        var trimmed = root
        while trimmed.count > 1 && trimmed.hasSuffix("/") { trimmed.removeLast() }
        self.root = trimmed
    }

    /// `root/renewal`.
    public var renewalDirectory: String { "\(root)/renewal" }

    /// The lineage names: every `renewal/<name>.conf`, sorted.
    /// - Throws: ``CertbotImportError`` (`missing`) when `root` or `renewal/` is not a readable directory.
    public func lineageNames() throws(CertbotImportError) -> [String] {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: root, isDirectory: &isDirectory), isDirectory.boolValue else {
            throw CertbotImportError(.missing, path: root, "no such directory (give certbot's configuration directory, /etc/letsencrypt by default)")
        }
        guard FileManager.default.fileExists(atPath: renewalDirectory, isDirectory: &isDirectory), isDirectory.boolValue else {
            throw CertbotImportError(.missing, path: renewalDirectory, "no such directory (is \(root) certbot's configuration directory?)")
        }
        let entries: [String]
        do {
            entries = try FileManager.default.contentsOfDirectory(atPath: renewalDirectory)
        } catch {
            throw CertbotImportError(.missing, path: renewalDirectory, "cannot list: \(Self.reason(error))")
        }
        return entries.filter { $0.hasSuffix(".conf") && $0.count > 5 && !$0.hasPrefix(".") }
            .map { String($0.dropLast(5)) }.sorted()
    }

    /// Executables in `renewal-hooks/deploy/` (certbot runs them after every renewal), sorted.
    public func deployHookScripts() -> [String] {
        let directory = "\(root)/renewal-hooks/deploy"
        let entries = (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []
        return entries.filter { !$0.hasPrefix(".") && FileManager.default.isExecutableFile(atPath: "\(directory)/\($0)") }.sorted()
    }

    /// Reads a lineage: its renewal configuration and the four live files.
    /// - Parameter name: The lineage name.
    /// - Returns: The lineage with the texts of the current version.
    /// - Throws: ``CertbotImportError``: `missing` for an absent or unreadable file, `malformed` for a renewal
    ///   configuration that does not parse, `inconsistent` when the live files point at different archive versions.
    public func readLineage(_ name: String) throws(CertbotImportError) -> CertbotLineage {
        let confPath = "\(renewalDirectory)/\(name).conf"
        let conf = try CertbotRenewalConf.parse(try readText(confPath), lineage: name, path: confPath)
        let original = originalRoot(of: conf)
        func file(_ configured: String, kind: String) throws(CertbotImportError) -> CertbotLineage.File {
            let livePath = rebase(configured, from: original)
            let resolved = try resolve(livePath, from: original)
            return CertbotLineage.File(
                livePath: livePath, resolvedPath: resolved, version: Self.archiveVersion(resolved, kind: kind),
                text: try readText(resolved, shownAs: livePath))
        }
        let lineage = CertbotLineage(
            conf: conf, confPath: confPath,
            certificate: try file(conf.certificatePath, kind: "cert"),
            chain: try file(conf.chainPath, kind: "chain"),
            fullchain: try file(conf.fullchainPath, kind: "fullchain"),
            privateKey: try file(conf.privateKeyPath, kind: "privkey"))
        // certbot swaps the four symlinks one after another; a lineage caught half-way (or edited by hand) mixes versions.
        let versions = [lineage.certificate, lineage.chain, lineage.fullchain, lineage.privateKey]
        if let first = versions.first?.version, let odd = versions.first(where: { $0.version != first }) {
            throw CertbotImportError(
                .inconsistent, path: odd.livePath,
                "points to version \(odd.version.map(String.init) ?? "?") (\(odd.resolvedPath)) but \(lineage.certificate.livePath) to version \(first); run certbot once more or fix the symlinks")
        }
        return lineage
    }

    /// Reads a certbot account.
    /// - Parameters:
    ///   - id: certbot's account ID (`account` in `[renewalparams]`).
    ///   - server: The ACME directory URL the lineage uses.
    /// - Returns: The account with its key converted.
    /// - Throws: ``CertbotImportError``: `missing` when no directory of that ID exists under `accounts/`, or a file
    ///   is missing; `malformed`, `unsupported` or `inconsistent` from the files' parsers.
    public func readAccount(id: String, server: String) throws(CertbotImportError) -> CertbotAccount {
        let expected = "\(root)/accounts/\(Self.serverPath(server))/\(id)"
        let directory: String
        if FileManager.default.fileExists(atPath: "\(expected)/private_key.json") {
            directory = expected
        } else if let found = findAccountDirectory(id: id) {
            directory = found
        } else {
            throw CertbotImportError(.missing, path: expected, "no such account directory (account \(id) of \(server) is not under \(root)/accounts)")
        }
        let key = try CertbotJWK.accountKey(try readBytes("\(directory)/private_key.json"), path: "\(directory)/private_key.json")
        let registration = try CertbotRegistration.parse(try readBytes("\(directory)/regr.json"), path: "\(directory)/regr.json")
        let metaPath = "\(directory)/meta.json"
        let createdAt = FileManager.default.fileExists(atPath: metaPath)
            ? try CertbotAccountMeta.creationDate(try readBytes(metaPath), path: metaPath) : nil
        return CertbotAccount(id: id, server: server, directory: directory, key: key, registration: registration, createdAt: createdAt)
    }

    // MARK: - Paths

    /// certbot's account directory for a server: the URL's host[:port] and path (`127.0.0.1:14000/dir`).
    static func serverPath(_ server: String) -> String {
        var rest = Substring(server)
        if let scheme = rest.range(of: "://") { rest = rest[scheme.upperBound...] }
        if let end = rest.firstIndex(where: { $0 == "?" || $0 == "#" || $0 == ";" }) { rest = rest[..<end] }
        return String(rest)
    }

    /// The directory the lineage was created in: `config_dir`, else the prefix of `cert` before `/live/<name>/`.
    func originalRoot(of conf: CertbotRenewalConf) -> String? {
        if let configured = conf.parameters.configDirectory { return configured.hasSuffix("/") && configured.count > 1 ? String(configured.dropLast()) : configured }
        let marker = "/live/\(conf.lineage)/"
        guard let range = conf.certificatePath.range(of: marker, options: .backwards) else { return nil }
        return String(conf.certificatePath[..<range.lowerBound])
    }

    /// A path under the original directory, moved under ``root`` (a copied `/etc/letsencrypt`).
    func rebase(_ path: String, from original: String?) -> String {
        guard let original, original != root, path.hasPrefix(original + "/") else { return path }
        return root + path.dropFirst(original.count)
    }

    /// Follows `path` if it is a symlink (relative targets from its directory; absolute ones rebased).
    private func resolve(_ path: String, from original: String?) throws(CertbotImportError) -> String {
        var current = path
        for _ in 0..<8 {
            guard let target = try? FileManager.default.destinationOfSymbolicLink(atPath: current) else { return current }
            if target.hasPrefix("/") {
                current = rebase(target, from: original)
            } else {
                current = URL(fileURLWithPath: current).deletingLastPathComponent().appendingPathComponent(target).standardizedFileURL.path
            }
        }
        throw CertbotImportError(.inconsistent, path: path, "too many levels of symbolic links")
    }

    /// `cert12.pem` → 12 for kind `cert`.
    static func archiveVersion(_ path: String, kind: String) -> Int? {
        let file = URL(fileURLWithPath: path).lastPathComponent
        guard file.hasPrefix(kind), file.hasSuffix(".pem") else { return nil }
        let digits = file.dropFirst(kind.count).dropLast(4)
        guard !digits.isEmpty, digits.allSatisfy({ $0.isASCII && $0.isNumber }) else { return nil }
        return Int(digits)
    }

    /// Searches `accounts/` (a few levels deep) for a directory named `id` holding `private_key.json`.
    private func findAccountDirectory(id: String) -> String? {
        let accounts = "\(root)/accounts"
        var frontier = [accounts]
        for _ in 0..<6 {
            var next: [String] = []
            for directory in frontier {
                for entry in (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? [] {
                    let path = "\(directory)/\(entry)"
                    if entry == id, FileManager.default.fileExists(atPath: "\(path)/private_key.json") { return path }
                    var isDirectory: ObjCBool = false
                    if FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory), isDirectory.boolValue { next.append(path) }
                }
            }
            frontier = next
        }
        return nil
    }

    // MARK: - Reading

    private func readBytes(_ path: String, shownAs shown: String? = nil) throws(CertbotImportError) -> [UInt8] {
        let name = shown ?? path
        guard FileManager.default.fileExists(atPath: path) else {
            throw CertbotImportError(.missing, path: name, name == path ? "no such file" : "points to \(path), which does not exist")
        }
        let bytes: [UInt8]?
        do {
            bytes = try SmallFile.read(path)
        } catch {
            if error.code == .corrupt { throw CertbotImportError(.malformed, path: name, error.detail ?? "unreadable") }
            throw CertbotImportError(.missing, path: name, "cannot read (permissions? run as the user certbot runs as)")
        }
        guard let bytes else { throw CertbotImportError(.missing, path: name, "no such file") }
        return bytes
    }

    private func readText(_ path: String, shownAs shown: String? = nil) throws(CertbotImportError) -> String {
        let bytes = try readBytes(path, shownAs: shown)
        guard let text = String(validating: bytes, as: UTF8.self) else {
            throw CertbotImportError(.malformed, path: shown ?? path, "is not UTF-8 text")
        }
        return text
    }

    private static func reason(_ error: any Error) -> String {
        let nsError = error as NSError
        if let underlying = nsError.userInfo[NSUnderlyingErrorKey] as? NSError, underlying.domain == NSPOSIXErrorDomain {
            return String(cString: strerror(Int32(underlying.code)))
        }
        return nsError.localizedDescription
    }
}
