import CertStore
import Crypto
import Foundation
import SwiftASN1
import X509
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// Where the internal CA lives: `<state_dir>/internal-ca/` (0755) with `root.pem` (0644, the certificate clients
/// trust) and `root.key` (0600).
///
/// Contract: ``loadOrCreate(name:lifetime:now:generator:)`` must be called under the store lock
/// (``CertStore/CertificateStore/acquireLock(timeout:)``), as every renewal is, so two processes never create two
/// roots. Reading (``load()``, ``loadRoot()``) needs no lock: each file is replaced only by an atomic rename.
public struct InternalCADirectory: Sendable {
    /// The directory's name inside the state directory.
    public static let directoryName = "internal-ca"
    /// The root certificate's file name.
    public static let certificateFileName = "root.pem"
    /// The root key's file name (mode 0600).
    public static let keyFileName = "root.key"

    /// The directory.
    public let path: String

    /// The CA directory of a state directory.
    /// - Parameter stateDirectory: `state_dir` from the configuration.
    public init(stateDirectory: String) {
        let root = stateDirectory.count > 1 && stateDirectory.hasSuffix("/") ? String(stateDirectory.dropLast()) : stateDirectory
        self.path = root + "/" + Self.directoryName
    }

    /// `<path>/root.pem`.
    public var certificatePath: String { path + "/" + Self.certificateFileName }
    /// `<path>/peer-root.pem`: on a node without a root of its own, the root of the first internal certificate it
    /// installed from a peer (see ``acceptedPeerRoot()``).
    public var peerRootPath: String { path + "/peer-root.pem" }
    /// `<path>/root.key`.
    public var keyPath: String { path + "/" + Self.keyFileName }

    /// The root certificate alone (no key needed, so any user who can read the file can call this).
    /// - Returns: The root, or `nil` when none has been created.
    /// - Throws: ``InternalCAError`` with code `malformed` or `io`.
    public func loadRoot() throws(InternalCAError) -> InternalRoot? {
        try Self.readRoot(certificatePath)
    }

    /// The root certificate in the PEM file at `path`, or `nil` when there is none.
    static func readRoot(_ path: String) throws(InternalCAError) -> InternalRoot? {
        guard let text = try read(path) else { return nil }
        do {
            let certificate = try Certificate(pemEncoded: text)
            return InternalRoot(certificate: certificate, der: try certificate.derBytes())
        } catch {
            throw InternalCAError(code: .malformed, subject: path, detail: "not a PEM certificate: \(error)")
        }
    }

    /// The CA, ready to sign.
    /// - Returns: The CA, or `nil` when no root has been created (or a creation was interrupted before the
    ///   certificate was written).
    /// - Throws: ``InternalCAError``: `missing` when the certificate is there but its key is not, `insecurePermissions`
    ///   when the key is readable by group or others, `malformed`, `keyMismatch`, `io`.
    public func load() throws(InternalCAError) -> InternalCA? {
        guard let root = try loadRoot() else { return nil }
        guard let keyText = try Self.read(keyPath) else {
            throw InternalCAError(
                code: .missing, subject: keyPath,
                detail: "the root key is missing; restore it, or move \(path) away to create a new root (clients must then trust the new one)")
        }
        var info = stat()
        if stat(keyPath, &info) == 0, info.st_mode & 0o077 != 0 {
            throw InternalCAError(
                code: .insecurePermissions, subject: keyPath,
                detail: "the root key is accessible by group or others (mode \(String(info.st_mode & 0o777, radix: 8))); run chmod 600")
        }
        let key: P256.Signing.PrivateKey
        do {
            key = try P256.Signing.PrivateKey(pemRepresentation: keyText)
        } catch {
            throw InternalCAError(code: .malformed, subject: keyPath, detail: "not a P-256 private key in PEM")
        }
        return try InternalCA(root: root, key: key, source: path)
    }

    /// The CA, created on first use.
    ///
    /// Creation writes `root.key` (0600) and then `root.pem` (0644), each atomically (temporary file, fsync,
    /// rename, directory fsync): a crash in between leaves a key without a certificate, which the next call
    /// replaces. Call it under the store lock (see the type's contract).
    /// - Parameters:
    ///   - name: `internal_ca.name`, used only when creating.
    ///   - lifetime: `internal_ca.root_lifetime` in seconds, used only when creating.
    ///   - now: The creation time.
    ///   - generator: The root serial's randomness.
    /// - Returns: The CA and whether it was created by this call.
    /// - Throws: ``InternalCAError`` as ``load()`` does, or `io` / `crypto` when creating.
    public func loadOrCreate(
        name: String, lifetime: TimeInterval, now: Date, generator: inout some RandomNumberGenerator
    ) throws(InternalCAError) -> (ca: InternalCA, created: Bool) {
        if let existing = try load() { return (existing, false) }
        let ca = try InternalCA.generate(name: name, lifetime: lifetime, now: now, generator: &generator)
        try write(ca, what: "the new root")
        return (ca, true)
    }

    /// The one internal root whose leaves this node installs from peers: its own root when it has one (a renewer,
    /// or a standby given the renewer's), else the root it pinned when it first installed an internal certificate
    /// from a peer. `nil` before either exists. A leaf from any other root comes from a second node acting as the
    /// renewer, and is refused.
    /// - Throws: ``InternalCAError`` with code `malformed` or `io`.
    public func acceptedPeerRoot() throws(InternalCAError) -> InternalRoot? {
        if let own = try loadRoot() { return own }
        return try Self.readRoot(peerRootPath)
    }

    /// Installs the renewer's CA on a standby that has none: checked (a self-signed CA certificate, the key
    /// matches, the root this node pinned if it pinned one), then `root.key` (0600) and `root.pem` (0644) written
    /// atomically. Never replaces a root that is there. Call under the store lock.
    /// - Parameters:
    ///   - rootPEM: The root certificate.
    ///   - keyPEM: Its P-256 private key.
    ///   - source: Where it came from, for errors (`peer n1`).
    /// - Returns: Whether it was installed (`false` when this node already has a root).
    /// - Throws: ``InternalCAError``: `malformed`, `keyMismatch`, or `io`.
    @discardableResult
    public func adopt(rootPEM: String, keyPEM: String, source: String) throws(InternalCAError) -> Bool {
        guard try loadRoot() == nil else { return false }
        let ca = try Self.parse(rootPEM: rootPEM, keyPEM: keyPEM, source: source)
        let root = ca.root
        if let pinned = try acceptedPeerRoot(), pinned.certificate.publicKey != root.certificate.publicKey {
            throw InternalCAError(code: .keyMismatch, subject: source, detail: "its root is not the one this node pinned (\(peerRootPath))")
        }
        try write(ca, what: "the adopted root")
        return true
    }

    /// A CA from the PEM texts a peer sent: a self-signed CA certificate and the P-256 key that matches it.
    /// - Throws: ``InternalCAError``: `malformed` or `keyMismatch`, naming `source`.
    public static func parse(rootPEM: String, keyPEM: String, source: String) throws(InternalCAError) -> InternalCA {
        let root: InternalRoot
        let key: P256.Signing.PrivateKey
        do {
            let certificate = try Certificate(pemEncoded: rootPEM)
            root = InternalRoot(certificate: certificate, der: try certificate.derBytes())
            key = try P256.Signing.PrivateKey(pemRepresentation: keyPEM)
        } catch {
            throw InternalCAError(code: .malformed, subject: source, detail: "not a PEM root certificate and P-256 key: \(error)")
        }
        return try InternalCA(root: root, key: key, source: source)
    }

    /// Pins `root` as the internal root accepted from peers (``peerRootPath``, 0644), unless one is already pinned
    /// or this node has its own.
    /// - Throws: ``InternalCAError`` with code `io`.
    public func pinPeerRoot(_ root: Certificate) throws(InternalCAError) {
        guard try acceptedPeerRoot() == nil else { return }
        try Self.makeDirectory(path)
        do {
            let pem = try root.serializeAsPEM().pemString + "\n"
            try AtomicFile.write(Array(pem.utf8), to: peerRootPath, mode: 0o644)
        } catch {
            throw InternalCAError(code: .io, subject: peerRootPath, detail: "cannot pin the cluster's internal root: \(error)")
        }
    }

    // MARK: Files

    /// Writes `root.key` (0600) then `root.pem` (0644), each atomically: a crash in between leaves a key without a
    /// certificate, which ``load()`` treats as no CA.
    private func write(_ ca: InternalCA, what: String) throws(InternalCAError) {
        try Self.makeDirectory(path)
        do {
            try AtomicFile.write(Array(ca.keyPEM.utf8), to: keyPath, mode: 0o600)
            try AtomicFile.write(Array(ca.root.pem.utf8), to: certificatePath, mode: 0o644)
        } catch {
            throw InternalCAError(code: .io, subject: path, detail: "cannot write \(what): \(error)")
        }
    }

    /// The file's text, or `nil` when it does not exist (a root or its key is well under a KiB: over 1 MiB is refused).
    static func read(_ path: String) throws(InternalCAError) -> String? {
        do {
            return try AtomicFile.readText(path)
        } catch {
            throw InternalCAError(code: error.code == .corrupt ? .malformed : .io, subject: path, detail: "cannot \(error.operation): \(error.reason)")
        }
    }

    /// Creates `path` (0755) and missing parents; an existing directory is fine.
    static func makeDirectory(_ path: String) throws(InternalCAError) {
        var partial = path.hasPrefix("/") ? "" : "."
        for component in path.split(separator: "/") {
            partial += "/" + component
            if mkdir(partial, 0o755) != 0 && errno != EEXIST {
                throw InternalCAError(code: .io, subject: partial, detail: "cannot create directory: \(String(cString: strerror(errno)))")
            }
        }
        var info = stat()
        guard stat(path, &info) == 0, (info.st_mode & S_IFMT) == S_IFDIR else {
            throw InternalCAError(code: .io, subject: path, detail: "exists but is not a directory")
        }
    }
}
