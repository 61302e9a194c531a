import CertStore
import Foundation
import Logging
import StoreWatch

/// Where the proxy's certificates come from.
public enum CertificateSource: Sendable, Hashable, CustomStringConvertible {
    /// Every `live/<name>` set of a certkeeper store (`<root>/live/<name>/bundle.pem`, or `fullchain.pem` plus
    /// `privkey.pem` in a certbot-style directory without a bundle); the set is named `<name>`.
    case store(root: String)
    /// One combined PEM file (full chain and key), served as set `name`. Its directory is watched.
    case file(name: String, path: String)

    /// `store /var/lib/certkeeper` or `file web=/etc/ssl/web.pem`.
    public var description: String {
        switch self {
        case .store(let root): return "store \(root)"
        case .file(let name, let path): return "file \(name)=\(path)"
        }
    }

    /// The directory inotify watches for this source.
    var watchedDirectory: String {
        switch self {
        case .store(let root): return CertificateStore.liveRoot(of: root)
        case .file(_, let path): return (path as NSString).deletingLastPathComponent.isEmpty ? "." : (path as NSString).deletingLastPathComponent
        }
    }
}

/// Keeps a ``CertificateSet`` in step with its sources: loads everything once, then reloads what inotify
/// reports (debounced by ``StoreWatcher``; everything again after an overflow or a lost watch).
///
/// Each set is verified before it is swapped in (``CertificateLoader``); a broken one (key mismatch, truncated
/// PEM, expired) is refused with one error line naming the set and the reason, and the last good entry keeps
/// serving. A store set whose `live/<name>` disappears is removed. New handshakes see a new certificate as soon
/// as it is swapped in; open connections keep theirs.
///
/// Loading reads files and parses keys: it runs on the caller's task (``run()``), never on an event loop.
public final class CertificateReloader: Sendable {
    /// The sources, as given.
    public let sources: [CertificateSource]
    /// The set being kept up to date.
    public let certificates: CertificateSet
    private let loader: CertificateLoader
    private let debounce: Duration
    private let now: @Sendable () -> Date
    private let logger: Logger

    /// Creates a reloader.
    /// - Parameters:
    ///   - sources: Stores and files to serve.
    ///   - certificates: The set to fill.
    ///   - loader: Reads and verifies bundles.
    ///   - debounce: How long file events are collected before a reload.
    ///   - now: The clock used for validity checks.
    ///   - logger: Where loads and refusals are logged (never key material).
    public init(
        sources: [CertificateSource], certificates: CertificateSet, loader: CertificateLoader = CertificateLoader(),
        debounce: Duration = .milliseconds(50), now: @escaping @Sendable () -> Date = { Date() }, logger: Logger
    ) {
        self.sources = sources
        self.certificates = certificates
        self.loader = loader
        self.debounce = debounce
        self.now = now
        self.logger = logger
    }

    /// Creates a reloader for every set of one store.
    /// - Parameters:
    ///   - storeRoot: The store's root directory.
    ///   - certificates: The set to fill.
    ///   - logger: Where loads and refusals are logged.
    public convenience init(storeRoot: String, certificates: CertificateSet, logger: Logger) {
        self.init(sources: [.store(root: storeRoot)], certificates: certificates, logger: logger)
    }

    /// Loads every set of every source now (blocking file I/O), removing store sets that are gone.
    /// - Returns: The sets refused (also logged); the previous entries of those names keep serving.
    @discardableResult
    public func loadAll() -> [CertificateLoadError] {
        var refused: [CertificateLoadError] = []
        for source in sources {
            switch source {
            case .store(let root):
                let present = storeNames(root: root)
                for name in present {
                    if let error = reload(name: name, source: source) { refused.append(error) }
                }
                for name in certificates.names where !present.contains(name) && !isFileSourceName(name) {
                    removeStoreSet(name, root: root)
                }
            case .file(let name, _):
                if let error = reload(name: name, source: source) { refused.append(error) }
            }
        }
        return refused
    }

    /// Watches the sources and reloads what changes, until the calling task is cancelled.
    ///
    /// Starts the watch first, then loads everything once (so nothing changed in between is missed).
    /// - Throws: ``StoreWatchError`` when a watched directory cannot be watched (e.g. the store's `live/` is
    ///   missing).
    public func run() async throws(StoreWatchError) {
        let directories = Array(Set(sources.map(\.watchedDirectory))).sorted()
        let watcher = StoreWatcher(directories: directories, debounce: debounce, logger: logger)
        let batches = try watcher.changes()
        loadAll()
        for await batch in batches {
            apply(batch)
        }
    }

    /// Reloads what one batch names.
    func apply(_ batch: ChangeBatch) {
        guard case .changed(let byDirectory) = batch else {
            loadAll()
            return
        }
        for source in sources {
            guard let names = byDirectory[source.watchedDirectory] else { continue }
            switch source {
            case .store(let root):
                for name in names.sorted() where StoreName.isValid(name) && !isFileSourceName(name) {
                    let live = CertificateStore.liveDirectory(root: root, name: name)
                    if FileManager.default.fileExists(atPath: live) {
                        reload(name: name, source: source)
                    } else {
                        removeStoreSet(name, root: root)
                    }
                }
            case .file(let name, let path):
                if names.contains((path as NSString).lastPathComponent) {
                    reload(name: name, source: source)
                }
            }
        }
    }

    /// Loads one set and swaps it in; logs and returns the refusal otherwise.
    @discardableResult
    private func reload(name: String, source: CertificateSource) -> CertificateLoadError? {
        let paths: [String]
        switch source {
        case .store(let root):
            let directory = CertificateStore.liveDirectory(root: root, name: name)
            let bundle = "\(directory)/\(CertificateStore.FileName.bundle)"
            paths = FileManager.default.fileExists(atPath: bundle)
                ? [bundle]
                : ["\(directory)/\(CertificateStore.FileName.fullchain)", "\(directory)/\(CertificateStore.FileName.privateKey)"]
        case .file(_, let path):
            paths = [path]
        }
        do {
            let entry = try loader.load(name: name, paths: paths, now: now())
            if let current = certificates.entry(named: name), current.sha256Hex == entry.sha256Hex {
                logger.debug("certificate unchanged", metadata: ["cert.name": "\(name)", "cert.serial": "\(entry.serialHex)"])
                return nil
            }
            let previous = certificates.install(entry)
            logger.info(
                previous == nil ? "certificate loaded" : "certificate swapped",
                metadata: [
                    "cert.name": "\(name)", "cert.serial": "\(entry.serialHex)",
                    "cert.previous_serial": "\(previous?.serialHex ?? "-")",
                    "cert.not_after": "\(entry.notAfter.formatted(.iso8601))",
                    "cert.domains": "\(entry.dnsNames.joined(separator: ","))",
                ])
            return nil
        } catch {
            let serving = certificates.entry(named: name)?.serialHex ?? "nothing"
            logger.error(
                "certificate refused, keeping the last good one",
                metadata: ["cert.name": "\(name)", "cert.error": "\(error.reason)", "cert.serving": "\(serving)"])
            return error
        }
    }

    private func removeStoreSet(_ name: String, root: String) {
        if let removed = certificates.remove(name: name) {
            logger.warning(
                "certificate set removed from the store; no longer served",
                metadata: ["cert.name": "\(name)", "cert.serial": "\(removed.serialHex)"])
        }
    }

    private func isFileSourceName(_ name: String) -> Bool {
        sources.contains { if case .file(name, _) = $0 { return true } else { return false } }
    }

    private func storeNames(root: String) -> [String] {
        let entries = (try? FileManager.default.contentsOfDirectory(atPath: "\(root)/live")) ?? []
        return entries.filter { StoreName.isValid($0) && !isFileSourceName($0) }.sorted()
    }
}
