import Foundation
import Logging
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// The on-disk certificate store: a versioned archive, an atomically swapped `live/` view, small state
/// files, ACME accounts and an inter-process lock.
///
/// ```
/// root/
///   live/<name>        -> ../archive/<name>/v000001-20260102030405   (symlink, swapped with rename(2))
///   archive/<name>/v000001-20260102030405/{cert,chain,fullchain,privkey,bundle}.pem, meta.json
///   accounts/<directory-host-and-path>-<hash>/{account.json,key.pem}
///   state/<key>.json
///   lock
/// ```
///
/// Readers use `live/<name>/fullchain.pem` and friends (certbot's names) or `bundle.pem` (HAProxy). A reader
/// that opens `live/<name>/bundle.pem` always gets one complete version: the version directory is complete
/// and fsynced before the symlink is swapped, and the swap is a single rename.
///
/// Thread safety: all methods may be called from any task. Installs are serialised within the process;
/// across processes, hold ``acquireLock(timeout:)`` around "check again, then install".
public final class CertificateStore: Sendable {
    /// The state directory.
    public let root: String
    /// How many version directories of each name to keep (at least 1; the live one is always kept).
    public let keepVersions: Int
    private let logger: Logger
    let fileSystem: FileSystem
    /// Serialises installs and pruning in this process (two installs of one name must not race for a version
    /// number): one gate per root, shared by every instance on that root.
    private let installGate: InstallGate

    /// Creates a store rooted at `root`. Nothing is touched on disk until ``prepare()`` or a write.
    /// - Parameters:
    ///   - root: The state directory (e.g. `/var/lib/certkeeper`).
    ///   - keepVersions: Version directories to keep per name (values below 1 count as 1).
    ///   - logger: Where installs and pruning are logged (never with key material).
    public convenience init(root: String, keepVersions: Int = 5, logger: Logger) {
        self.init(root: root, keepVersions: keepVersions, logger: logger, fileSystem: FileSystem())
    }

    init(root: String, keepVersions: Int, logger: Logger, fileSystem: FileSystem) {
        self.root = root.count > 1 && root.hasSuffix("/") ? String(root.dropLast()) : root
        self.keepVersions = max(1, keepVersions)
        self.logger = logger
        self.fileSystem = fileSystem
        self.installGate = InstallGate.forRoot(self.root)
    }

    // MARK: - Paths

    /// `root/live/<name>`: the directory readers use (no name validation here; it only builds the string).
    public func liveDirectory(name: String) -> String { Self.liveDirectory(root: root, name: name) }

    /// `<root>/live/<name>` for a store known only by its root (a proxy watching a state directory).
    public static func liveDirectory(root: String, name: String) -> String { "\(liveRoot(of: root))/\(name)" }

    /// `<root>/live`: where every installed set is a symlink; watch it to see installs.
    public static func liveRoot(of root: String) -> String { "\(root)/live" }

    /// The directories whose changes peers must hear of: `live/` (certificates) and `accounts/` (ACME accounts).
    public var syncedDirectories: [String] { [liveRoot, accountsRoot] }

    /// `root/archive/<name>`: where the versions of `name` are kept.
    public func archiveDirectory(name: String) -> String { "\(root)/archive/\(name)" }

    var liveRoot: String { Self.liveRoot(of: root) }
    var archiveRoot: String { "\(root)/archive" }
    var accountsRoot: String { "\(root)/accounts" }
    var stateRoot: String { "\(root)/state" }
    var lockPath: String { "\(root)/lock" }

    /// File names inside each version directory.
    public enum FileName {
        /// The leaf certificate.
        public static let certificate = "cert.pem"
        /// The intermediates.
        public static let chain = "chain.pem"
        /// Leaf and intermediates.
        public static let fullchain = "fullchain.pem"
        /// The private key (mode 0600).
        public static let privateKey = "privkey.pem"
        /// Full chain and private key, HAProxy's `crt` format (mode 0600).
        public static let bundle = "bundle.pem"
        /// The ``CertificateMeta`` of the version.
        public static let meta = "meta.json"
    }

    // MARK: - Preparing

    /// Creates the directory tree if missing: `root` and `live` (0755), `archive`, `accounts`, `state` (0700).
    /// Existing directories keep their modes.
    /// - Throws: ``StoreError`` naming the path when a directory cannot be created, something else is in the way,
    ///   or it is not writable (read-only filesystem).
    public func prepare() throws(StoreError) {
        try fileSystem.makeDirectory(root, mode: 0o755)
        try fileSystem.checkWritable(root)
        for (path, mode) in [(liveRoot, mode_t(0o755)), (archiveRoot, 0o700), (accountsRoot, 0o700), (stateRoot, 0o700)] {
            try fileSystem.makeDirectory(path, mode: mode)
            try fileSystem.checkWritable(path)
        }
    }

    // MARK: - Installing

    /// Writes a new version directory and swaps `live/<name>` to it, then prunes old versions.
    ///
    /// Every file is written and fsynced in a temporary directory, which is renamed to
    /// `archive/<name>/v<NNNNNN>-<yyyyMMddHHmmss>` and fsynced; only then is a new symlink renamed over
    /// `live/<name>` and `live/` fsynced. On any failure before the swap the partial version directory is
    /// removed and `live/<name>` is untouched. Call under ``acquireLock(timeout:)`` when other processes may
    /// install the same name.
    /// - Parameters:
    ///   - verified: The bundle to install (from ``BundleVerifier``).
    ///   - name: The certificate name.
    ///   - issuedBy: The node that issued or installed it (recorded in meta.json).
    ///   - now: The install time: names the version directory (UTC) and becomes `installedAt`.
    /// - Returns: The meta written next to the new version.
    /// - Throws: ``StoreError``: `invalidName`, `liveNotManaged` when `live/<name>` is a real directory or file,
    ///   `io` for any failed write (the error names the path).
    @discardableResult
    public func install(_ verified: VerifiedBundle, name: String, issuedBy: String, now: Date) throws(StoreError) -> CertificateMeta {
        try StoreName.check(name)
        return try installGate.mutex.withLock { _ throws(StoreError) -> CertificateMeta in
            try installLocked(verified, name: name, issuedBy: issuedBy, now: now)
        }
    }

    private func installLocked(_ verified: VerifiedBundle, name: String, issuedBy: String, now: Date) throws(StoreError) -> CertificateMeta {
        try prepare()
        let livePath = liveDirectory(name: name)
        let currentTarget = try managedLiveTarget(name: name, operation: "install")
        let archive = archiveDirectory(name: name)
        try fileSystem.makeDirectory(archive, mode: 0o700)
        removeStaleTemporaries(name: name)

        let currentVersion = currentTarget.flatMap { VersionDirectory(name: FileSystem.lastComponent(of: $0)) }?.number ?? 0
        let version = max(try versionDirectories(name: name).last?.number ?? 0, currentVersion) + 1
        let versionName = VersionDirectory.makeName(number: version, date: now)
        let versionPath = "\(archive)/\(versionName)"
        let meta = verified.meta(name: name, version: version, issuedBy: issuedBy, installedAt: now)

        // 1. The complete version directory, under a temporary name, then renamed into place.
        if let existing = try fileSystem.kind(versionPath) {
            throw StoreError.io("create version directory", versionPath, errno: EEXIST, detail: "a \(existing) is already there")
        }
        let temporaryPath = "\(archive)/.tmp-\(versionName)-\(FileSystem.randomSuffix())"
        do {
            try fileSystem.makeDirectory(temporaryPath, mode: 0o700)
            try writeVersionFiles(verified.bundle, meta: meta, into: temporaryPath)
            try fileSystem.syncDirectory(temporaryPath)
            // rename(2) would replace an empty directory: the check above and the install gate rule that out.
            try fileSystem.rename(temporaryPath, to: versionPath)
        } catch {
            try? fileSystem.removeTree(temporaryPath)
            logger.error("install failed; live unchanged", metadata: ["cert.name": "\(name)", "error": "\(error)"])
            throw error
        }

        // 2. The symlink swap. Until the rename succeeds, undo means removing the new version again.
        let linkTarget = "../archive/\(name)/\(versionName)"
        let temporaryLink = "\(liveRoot)/.\(name).tmp-\(FileSystem.randomSuffix())"
        do {
            try fileSystem.syncDirectory(archive)
            try fileSystem.makeSymlink(temporaryLink, target: linkTarget)
            try fileSystem.rename(temporaryLink, to: livePath)
        } catch {
            _ = unlink(temporaryLink)
            try? fileSystem.removeTree(versionPath)
            logger.error("install failed; live unchanged", metadata: ["cert.name": "\(name)", "error": "\(error)"])
            throw error
        }
        do {
            try fileSystem.syncDirectory(liveRoot)
        } catch {
            // The swap is already visible to readers; reporting failure now would make callers skip deploy
            // hooks for a certificate that is being served. Durability across a crash is what is in doubt.
            logger.error("live swapped but fsync of live/ failed", metadata: ["cert.name": "\(name)", "error": "\(error)"])
        }

        logger.info(
            "installed certificate",
            metadata: [
                "cert.name": "\(name)", "cert.version": "\(version)", "cert.serial": "\(meta.serial)",
                "cert.not_after": "\(ISO8601.string(meta.notAfter))", "cert.domains": "\(meta.domains.joined(separator: " "))",
            ])
        do {
            try prune(name: name, liveVersionName: versionName)
        } catch {
            // The install itself succeeded; old versions only cost disk space.
            logger.warning("pruning old versions failed", metadata: ["cert.name": "\(name)", "error": "\(error)"])
        }
        return meta
    }

    private func writeVersionFiles(_ bundle: CertificateBundle, meta: CertificateMeta, into directory: String) throws(StoreError) {
        let metaBytes: [UInt8]
        do {
            metaBytes = Array(try Self.jsonEncoder.encode(meta)) + [UInt8(ascii: "\n")]
        } catch {
            throw StoreError(code: .corrupt, operation: "encode meta", path: "\(directory)/\(FileName.meta)", detail: "\(error)")
        }
        let files: [(String, [UInt8], mode_t)] = [
            (FileName.certificate, Array(bundle.certificatePEM.utf8), 0o644),
            (FileName.chain, Array(bundle.chainPEM.utf8), 0o644),
            (FileName.fullchain, Array(bundle.fullchainPEM.utf8), 0o644),
            (FileName.privateKey, Array(bundle.privateKeyPEM.utf8), 0o600),
            (FileName.bundle, Array(bundle.bundlePEM.utf8), 0o600),
            (FileName.meta, metaBytes, 0o644),
        ]
        for (file, bytes, mode) in files {
            try fileSystem.writeNewFile("\(directory)/\(file)", bytes: bytes, mode: mode)
        }
    }

    /// Removes all but the newest ``keepVersions`` version directories of `name`, never the one `live/<name>`
    /// points at. ``install(_:name:issuedBy:now:)`` does this after every install; call it after lowering
    /// `keepVersions` or rolling back by hand.
    /// - Parameter name: The certificate name.
    /// - Throws: ``StoreError``: `invalidName`, or `io` when a directory cannot be listed or removed.
    public func pruneVersions(name: String) throws(StoreError) {
        try StoreName.check(name)
        try installGate.mutex.withLock { _ throws(StoreError) in
            let liveTarget = try fileSystem.kind(liveDirectory(name: name)) == .symlink
                ? try fileSystem.readSymlink(liveDirectory(name: name)) : nil
            try prune(name: name, liveVersionName: liveTarget.map(FileSystem.lastComponent(of:)))
        }
    }

    private func prune(name: String, liveVersionName: String?) throws(StoreError) {
        let all = try versionDirectories(name: name)
        var kept = Set(all.suffix(keepVersions).map(\.name))
        if let liveVersionName { kept.insert(liveVersionName) }
        for directory in all where !kept.contains(directory.name) {
            try fileSystem.removeTree("\(archiveDirectory(name: name))/\(directory.name)")
            logger.debug("pruned old version", metadata: ["cert.name": "\(name)", "cert.version": "\(directory.number)"])
        }
    }

    /// Leftovers of an install that crashed: temporary version directories and temporary symlinks.
    /// Safe because installs of one name are serialised (in process by the gate, across processes by the lock).
    private func removeStaleTemporaries(name: String) {
        do {
            for entry in try fileSystem.list(archiveDirectory(name: name)) ?? [] where entry.hasPrefix(".tmp-") {
                try fileSystem.removeTree("\(archiveDirectory(name: name))/\(entry)")
                logger.notice("removed leftover temporary version", metadata: ["cert.name": "\(name)", "path": "\(entry)"])
            }
            for entry in try fileSystem.list(liveRoot) ?? [] where entry.hasPrefix(".\(name).tmp-") {
                try fileSystem.removeTree("\(liveRoot)/\(entry)")
            }
        } catch {
            logger.warning("removing leftover temporaries failed", metadata: ["cert.name": "\(name)", "error": "\(error)"])
        }
    }

    /// Removes what writers killed mid-write left in the store: ``AtomicFile`` temporaries older than
    /// ``AtomicFile/staleTemporaryAge`` in the state directory, each directory directly in it (`state/`,
    /// `internal-ca/`, …) and each account directory. Temporary version directories and links are removed under the
    /// lock by the next install of that name. Never fails.
    /// - Parameter now: The time ages are measured against.
    /// - Returns: The paths removed, relative to the state directory.
    @discardableResult
    public func removeStaleTemporaries(now: Date = Date()) -> [String] {
        var directories = [""]
        for entry in (try? fileSystem.list(root)) ?? [] where !entry.hasPrefix(".") && (try? fileSystem.kind("\(root)/\(entry)")) == .directory {
            directories.append(entry)
        }
        for entry in (try? fileSystem.list(accountsRoot)) ?? [] where (try? fileSystem.kind("\(accountsRoot)/\(entry)")) == .directory {
            directories.append("accounts/\(entry)")
        }
        var removed: [String] = []
        for directory in directories where directory != "live" && directory != "archive" {
            let path = directory.isEmpty ? root : "\(root)/\(directory)"
            for name in AtomicFile.removeStaleTemporaries(in: path, now: now) {
                let relative = directory.isEmpty ? name : "\(directory)/\(name)"
                logger.notice("removed a leftover temporary file", metadata: ["path": "\(relative)"])
                removed.append(relative)
            }
        }
        return removed
    }

    // MARK: - Reading

    /// The ``CertificateMeta`` of the live version.
    /// - Parameter name: The certificate name.
    /// - Returns: `nil` when `live/<name>` does not exist, or is a directory without `meta.json` (a certbot import).
    /// - Throws: ``StoreError``: `invalidName`; `corrupt` when the symlink dangles or meta.json does not decode.
    public func meta(name: String) throws(StoreError) -> CertificateMeta? {
        try StoreName.check(name)
        guard let directory = try resolvedLiveDirectory(name: name) else { return nil }
        let path = "\(directory)/\(FileName.meta)"
        guard let bytes = try fileSystem.readFile(path) else { return nil }
        do {
            return try Self.jsonDecoder.decode(CertificateMeta.self, from: Data(bytes))
        } catch {
            throw StoreError(code: .corrupt, operation: "decode meta", path: path, detail: "\(error)")
        }
    }

    /// The PEM texts of the live version (works for a certbot-style real directory too).
    ///
    /// The symlink is resolved once, so the three files come from the same version even during a swap.
    /// - Parameter name: The certificate name.
    /// - Returns: `nil` when `live/<name>` does not exist.
    /// - Throws: ``StoreError``: `invalidName`; `corrupt` when cert.pem or privkey.pem is missing.
    public func liveBundle(name: String) throws(StoreError) -> CertificateBundle? {
        try StoreName.check(name)
        guard let directory = try resolvedLiveDirectory(name: name) else { return nil }
        func read(_ file: String, required: Bool) throws(StoreError) -> String {
            let path = "\(directory)/\(file)"
            guard let bytes = try fileSystem.readFile(path) else {
                if required { throw StoreError(code: .corrupt, operation: "read live certificate", path: path, detail: "missing") }
                return ""
            }
            return String(decoding: bytes, as: UTF8.self)
        }
        return CertificateBundle(
            certificatePEM: try read(FileName.certificate, required: true),
            chainPEM: try read(FileName.chain, required: false),
            privateKeyPEM: try read(FileName.privateKey, required: true)
        )
    }

    /// Names with an entry in `live/` (symlinks made by the store and real certbot-style directories), sorted.
    /// - Throws: ``StoreError`` when `live/` cannot be read.
    public func installedNames() throws(StoreError) -> [String] {
        var names: [String] = []
        for entry in try fileSystem.list(liveRoot) ?? [] where StoreName.isValid(entry) {
            let kind = try fileSystem.kind("\(liveRoot)/\(entry)")
            if kind == .symlink || kind == .directory { names.append(entry) }
        }
        return names.sorted()
    }

    /// The version numbers present in `archive/<name>`, ascending (empty when there are none).
    /// - Throws: ``StoreError``: `invalidName`, or `io` when the archive cannot be read.
    public func versions(name: String) throws(StoreError) -> [Int] {
        try StoreName.check(name)
        return try versionDirectories(name: name).map(\.number)
    }

    /// The version number `live/<name>` points at; `nil` when there is no live entry or it is not a store symlink.
    /// - Throws: ``StoreError``: `invalidName`, or `io`.
    public func liveVersion(name: String) throws(StoreError) -> Int? {
        try StoreName.check(name)
        guard try fileSystem.kind(liveDirectory(name: name)) == .symlink,
            let target = try fileSystem.readSymlink(liveDirectory(name: name))
        else { return nil }
        return VersionDirectory(name: FileSystem.lastComponent(of: target))?.number
    }

    /// Version directories of `name`, ascending by number.
    func versionDirectories(name: String) throws(StoreError) -> [VersionDirectory] {
        let archive = archiveDirectory(name: name)
        var result: [VersionDirectory] = []
        for entry in try fileSystem.list(archive) ?? [] {
            guard let version = VersionDirectory(name: entry), try fileSystem.kind("\(archive)/\(entry)") == .directory else { continue }
            result.append(version)
        }
        return result.sorted { $0.number < $1.number }
    }

    /// Throws the error `install` would throw for a `live/<name>` certkeeper does not manage (a real directory left
    /// by certbot, a file), so callers can refuse before ordering a certificate they could not install.
    public func checkInstallable(name: String) throws(StoreError) {
        try StoreName.check(name)
        _ = try managedLiveTarget(name: name, operation: "check live")
    }

    /// The symlink content of `live/<name>`, `nil` when absent; refuses anything that is not a symlink.
    private func managedLiveTarget(name: String, operation: String) throws(StoreError) -> String? {
        let livePath = liveDirectory(name: name)
        switch try fileSystem.kind(livePath) {
        case nil:
            return nil
        case .symlink:
            return try fileSystem.readSymlink(livePath)
        case .some(let kind):
            throw StoreError(
                code: .liveNotManaged, operation: operation, path: livePath,
                detail: "is a real \(kind), not a symlink made by certkeeper (a certbot import?); move it away to let certkeeper manage \(name)")
        }
    }

    /// The directory holding the live files: the symlink's target, or `live/<name>` itself when it is a real directory.
    private func resolvedLiveDirectory(name: String) throws(StoreError) -> String? {
        let livePath = liveDirectory(name: name)
        switch try fileSystem.kind(livePath) {
        case nil:
            return nil
        case .directory:
            return livePath
        case .symlink:
            guard let target = try fileSystem.readSymlink(livePath) else { return nil }
            let resolved = target.hasPrefix("/") ? target : "\(liveRoot)/\(target)"
            guard try fileSystem.kind(resolved) != nil else {
                throw StoreError(code: .corrupt, operation: "resolve live", path: livePath, detail: "points to missing \(target)")
            }
            return resolved
        case .some(let kind):
            throw StoreError(code: .liveNotManaged, operation: "resolve live", path: livePath, detail: "is a \(kind), not a directory or symlink")
        }
    }

    // MARK: - JSON

    static var jsonEncoder: JSONEncoder {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        encoder.dateEncodingStrategy = .iso8601
        return encoder
    }

    static var jsonDecoder: JSONDecoder {
        let decoder = JSONDecoder()
        decoder.dateDecodingStrategy = .iso8601
        return decoder
    }
}

/// A version directory name, `v000012-20260102030405`.
struct VersionDirectory: Sendable, Equatable {
    var name: String
    var number: Int

    /// Parses `v<digits>-<14 digits>`; `nil` for anything else.
    init?(name: String) {
        let parts = name.split(separator: "-", omittingEmptySubsequences: false)
        guard parts.count == 2, parts[0].hasPrefix("v"), parts[0].count >= 2,
            parts[1].count == 14, parts[1].allSatisfy(\.isASCIIDigit),
            parts[0].dropFirst().allSatisfy(\.isASCIIDigit), let number = Int(parts[0].dropFirst()), number > 0
        else { return nil }
        self.name = name
        self.number = number
    }

    /// `v` + number padded to 6 digits + `-` + UTC `yyyyMMddHHmmss`.
    static func makeName(number: Int, date: Date) -> String {
        var seconds = time_t(date.timeIntervalSince1970.rounded(.down))
        var parts = tm()
        gmtime_r(&seconds, &parts)
        func pad(_ value: Int, _ width: Int) -> String {
            let digits = String(value)
            return String(repeating: "0", count: max(0, width - digits.count)) + digits
        }
        let stamp = pad(Int(parts.tm_year) + 1900, 4) + pad(Int(parts.tm_mon) + 1, 2) + pad(Int(parts.tm_mday), 2)
            + pad(Int(parts.tm_hour), 2) + pad(Int(parts.tm_min), 2) + pad(Int(parts.tm_sec), 2)
        return "v" + pad(number, 6) + "-" + stamp
    }
}

extension Character {
    fileprivate var isASCIIDigit: Bool { isASCII && isNumber }
}

/// The in-process install gate of one store root, shared by every ``CertificateStore`` on that root.
final class InstallGate: Sendable {
    let mutex = Mutex<Void>(())
    private static let gates = Mutex<[String: InstallGate]>([:])

    /// The gate of `root` (created on first use; a process has a handful of roots).
    static func forRoot(_ root: String) -> InstallGate {
        gates.withLock { gates in
            if let gate = gates[root] { return gate }
            let gate = InstallGate()
            gates[root] = gate
            return gate
        }
    }
}
