import Foundation
import NIOConcurrencyHelpers
import NIOSSL

/// One certificate the proxy can serve: a verified chain and key, ready for a handshake.
public struct CertificateEntry: Sendable {
    /// The set's name (`live/<name>` in the store, or the name given to a watched file).
    public let name: String
    /// Leaf first, then intermediates, as handed to BoringSSL.
    public let certificateChain: [NIOSSLCertificate]
    /// The leaf's private key.
    public let privateKey: NIOSSLPrivateKey
    /// The leaf's dNSName SANs, as written (may include `*.example.org`).
    public let dnsNames: [String]
    /// The leaf's serial, lowercase hex (for logs).
    public let serialHex: String
    /// The leaf's SHA-256, lowercase hex (tells whether a reload changed anything).
    public let sha256Hex: String
    /// The end of the leaf's validity.
    public let notAfter: Date

    /// This chain and key as ready-made server contexts, one per frontend TLS settings.
    let serverContexts = ServerContexts()

    /// Creates an entry. Prefer ``CertificateLoader``, which verifies the bundle first.
    /// - Parameters:
    ///   - name: The set name.
    ///   - certificateChain: Leaf then intermediates.
    ///   - privateKey: The leaf's key.
    ///   - dnsNames: The leaf's DNS SANs.
    ///   - serialHex: The leaf's serial in hex.
    ///   - sha256Hex: The leaf's SHA-256 in hex.
    ///   - notAfter: The leaf's expiry.
    public init(
        name: String, certificateChain: [NIOSSLCertificate], privateKey: NIOSSLPrivateKey, dnsNames: [String],
        serialHex: String, sha256Hex: String, notAfter: Date
    ) {
        self.name = name
        self.certificateChain = certificateChain
        self.privateKey = privateKey
        self.dnsNames = dnsNames
        self.serialHex = serialHex
        self.sha256Hex = sha256Hex
        self.notAfter = notAfter
    }

    /// The server context for `settings`, built now if it was not built before (expensive: call it off the
    /// event loop, see ``CertificateSet/prepareContexts(for:)``).
    /// - Throws: What BoringSSL reports when the context cannot be built.
    func serverContext(for settings: ProxyTLSSettings) throws -> NIOSSLContext {
        if let built = serverContexts.context(for: settings) { return built }
        let context = try NIOSSLContext(
            configuration: settings.makeTLSConfiguration(certificateChain: certificateChain, privateKey: privateKey))
        serverContexts.store(context, for: settings)
        return context
    }
}

/// The `NIOSSLContext`s of one ``CertificateEntry``, by the TLS settings they were built with.
final class ServerContexts: Sendable {
    private let contexts = NIOLockedValueBox<[ProxyTLSSettings: NIOSSLContext]>([:])

    func context(for settings: ProxyTLSSettings) -> NIOSSLContext? {
        contexts.withLockedValue { $0[settings] }
    }

    func store(_ context: NIOSSLContext, for settings: ProxyTLSSettings) {
        contexts.withLockedValue { $0[settings] = context }
    }
}

/// The certificates the proxy serves, chosen per handshake by SNI.
///
/// Thread safety: every method may be called from any thread. Reads (``select(serverName:)``, called on the
/// event loop during each handshake) take a lock and do no I/O; writes replace whole entries, so a handshake
/// sees either the old or the new certificate, never a mix. Each entry carries prebuilt `NIOSSLContext`s (one per
/// frontend TLS settings), built by ``install(_:)`` and ``prepareContexts(for:)`` off the event loop.
///
/// Selection: an exact DNS SAN (case-insensitive, trailing dot ignored), then a wildcard SAN covering one
/// label (`*.example.org` matches `a.example.org`, not `a.b.example.org` nor `example.org`), then the default
/// set. When two sets claim the same name, the set whose name sorts first wins.
public final class CertificateSet: Sendable {
    private struct State {
        var entries: [String: CertificateEntry] = [:]
        var exact: [String: String] = [:]
        var wildcard: [String: String] = [:]

        mutating func reindex() {
            exact = [:]
            wildcard = [:]
            for name in entries.keys.sorted().reversed() {
                for san in entries[name]!.dnsNames.map(CertificateSet.normalise) {
                    if san.hasPrefix("*.") {
                        wildcard[String(san.dropFirst(2))] = name
                    } else {
                        exact[san] = name
                    }
                }
            }
        }
    }

    private let state = NIOLockedValueBox(State())
    /// The TLS settings of the frontends served, so an installed entry gets its contexts before it serves.
    private let settingsInUse = NIOLockedValueBox<Set<ProxyTLSSettings>>([])
    /// The set served when SNI names nothing loaded (or no SNI was sent); `nil` means the first set by name.
    public let defaultName: String?

    /// Creates an empty set.
    /// - Parameter defaultName: The set served without SNI or for unknown names; when `nil`, the set whose
    ///   name sorts first.
    public init(defaultName: String? = nil) {
        self.defaultName = defaultName
    }

    /// The certificate for a handshake.
    /// - Parameter serverName: The SNI host name, if the client sent one.
    /// - Returns: The exact match, else the wildcard match, else the default; `nil` when nothing is loaded.
    public func select(serverName: String?) -> CertificateEntry? {
        state.withLockedValue { state in
            if let serverName {
                let wanted = Self.normalise(serverName)
                if let name = state.exact[wanted], let entry = state.entries[name] { return entry }
                if let dot = wanted.firstIndex(of: "."), dot != wanted.startIndex {
                    let parent = String(wanted[wanted.index(after: dot)...])
                    if let name = state.wildcard[parent], let entry = state.entries[name] { return entry }
                }
            }
            if let defaultName { return state.entries[defaultName] }
            return state.entries.keys.min().flatMap { state.entries[$0] }
        }
    }

    /// The prebuilt server context for a handshake with these settings: ``select(serverName:)``'s entry.
    ///
    /// Called on the event loop: a lookup, unless the context for `settings` was never built (settings first used
    /// while the entry was being installed), in which case it is built here once.
    /// - Parameters:
    ///   - serverName: The SNI host name, if the client sent one.
    ///   - settings: The frontend's TLS settings.
    /// - Returns: `nil` when nothing is loaded or the context cannot be built.
    func serverContext(serverName: String?, settings: ProxyTLSSettings) -> NIOSSLContext? {
        guard let entry = select(serverName: serverName) else { return nil }
        return try? entry.serverContext(for: settings)
    }

    /// Builds the server contexts for `settings` for every loaded entry, and for every entry installed later.
    /// Expensive: call it off the event loop (the proxy does when it starts or is reconfigured).
    /// - Parameter settings: A frontend's TLS settings.
    /// - Throws: What BoringSSL reports when a context cannot be built.
    public func prepareContexts(for settings: ProxyTLSSettings) throws {
        settingsInUse.withLockedValue { _ = $0.insert(settings) }
        let entries = state.withLockedValue { Array($0.entries.values) }
        for entry in entries { _ = try entry.serverContext(for: settings) }
    }

    /// Adds or replaces the entry with the same name, after building its server contexts for the TLS settings
    /// in use (so call it off the event loop).
    /// - Parameter entry: A verified entry (see ``CertificateLoader``).
    /// - Returns: The entry it replaced, if any.
    @discardableResult
    public func install(_ entry: CertificateEntry) -> CertificateEntry? {
        for settings in settingsInUse.withLockedValue({ $0 }) {
            _ = try? entry.serverContext(for: settings)
        }
        return state.withLockedValue { state in
            let old = state.entries.updateValue(entry, forKey: entry.name)
            state.reindex()
            return old
        }
    }

    /// Removes a set (its `live/<name>` entry is gone).
    /// - Parameter name: The set name.
    /// - Returns: The removed entry, if there was one.
    @discardableResult
    public func remove(name: String) -> CertificateEntry? {
        state.withLockedValue { state in
            let old = state.entries.removeValue(forKey: name)
            state.reindex()
            return old
        }
    }

    /// The entry named `name`, if loaded.
    public func entry(named name: String) -> CertificateEntry? {
        state.withLockedValue { $0.entries[name] }
    }

    /// The loaded set names, sorted.
    public var names: [String] {
        state.withLockedValue { $0.entries.keys.sorted() }
    }

    static func normalise(_ name: String) -> String {
        let lower = name.lowercased()
        return lower.hasSuffix(".") ? String(lower.dropLast()) : lower
    }
}
