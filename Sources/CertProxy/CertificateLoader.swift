import CertStore
import Foundation
import NIOSSL

/// Why a certificate set was refused. The last good entry keeps serving.
public struct CertificateLoadError: Error, Sendable, CustomStringConvertible {
    /// The set name.
    public var name: String
    /// The file read.
    public var path: String
    /// Why, in words (a ``VerificationError``'s text, a read error, a PEM problem).
    public var reason: String

    /// Creates an error.
    /// - Parameters:
    ///   - name: The set name.
    ///   - path: The file read.
    ///   - reason: Why it was refused.
    public init(name: String, path: String, reason: String) {
        self.name = name
        self.path = path
        self.reason = reason
    }

    /// `certificate set web (/var/lib/certkeeper/live/web/bundle.pem) refused: private key does not match …`.
    public var description: String {
        "certificate set \(name) (\(path)) refused: \(reason)".replacingOccurrences(of: "\n", with: " ")
    }
}

/// Reads a PEM file holding a full chain and its key (HAProxy's `crt` format, the store's `bundle.pem`),
/// verifies it with ``BundleVerifier`` and turns it into a ``CertificateEntry``.
///
/// Does blocking file I/O and key parsing: call it from a task or thread, never on an event loop.
public struct CertificateLoader: Sendable {
    /// The verifier applied before anything is served.
    public var verifier: BundleVerifier

    /// Creates a loader.
    /// - Parameter verifier: Checks key match, chain links and validity.
    public init(verifier: BundleVerifier = BundleVerifier()) {
        self.verifier = verifier
    }

    /// Loads and verifies one combined PEM file.
    /// - Parameters:
    ///   - name: The set name (for the entry and errors).
    ///   - path: A file with the leaf, the intermediates and the private key, in any order of blocks as long as
    ///     the leaf is the first certificate.
    ///   - now: The time at which the leaf must be valid.
    /// - Returns: The verified entry.
    /// - Throws: ``CertificateLoadError`` naming the set, the file and the reason (unreadable, truncated PEM,
    ///   key mismatch, broken chain, expired, …).
    public func load(name: String, path: String, now: Date) throws(CertificateLoadError) -> CertificateEntry {
        try load(name: name, paths: [path], now: now)
    }

    /// Loads and verifies PEM files read one after the other as if they were one file (e.g. certbot's
    /// `fullchain.pem` then `privkey.pem`).
    /// - Parameters:
    ///   - name: The set name.
    ///   - paths: The files, in order.
    ///   - now: The time at which the leaf must be valid.
    /// - Returns: The verified entry.
    /// - Throws: ``CertificateLoadError``.
    public func load(name: String, paths: [String], now: Date) throws(CertificateLoadError) -> CertificateEntry {
        let path = paths.joined(separator: "+")
        func refuse(_ reason: String) -> CertificateLoadError {
            CertificateLoadError(name: name, path: path, reason: reason)
        }
        var text = ""
        for file in paths {
            // Bounded before reading: a huge file renamed over a watched bundle is refused from its size.
            let bytes: [UInt8]?
            do {
                bytes = try SmallFile.read(file)
            } catch {
                throw refuse(error.code == .corrupt ? "\(file): \(error.detail ?? "unreadable")" : "\(error)")
            }
            guard let bytes else { throw refuse("no such file \(file)") }
            text += String(decoding: bytes, as: UTF8.self) + "\n"
        }
        let blocks: [(label: String, text: String)]
        do {
            blocks = try Self.pemBlocks(text)
        } catch {
            throw refuse(error.reason)
        }
        let certificates = blocks.filter { $0.label == "CERTIFICATE" }.map(\.text)
        let keys = blocks.filter { $0.label.hasSuffix("PRIVATE KEY") }.map(\.text)
        guard let leaf = certificates.first else { throw refuse("no CERTIFICATE block") }
        guard keys.count == 1 else { throw refuse("want exactly one private key block, found \(keys.count)") }
        let bundle = CertificateBundle(
            certificatePEM: leaf, chainPEM: certificates.dropFirst().joined(), privateKeyPEM: keys[0])

        let verified: VerifiedBundle
        do {
            verified = try verifier.verify(bundle, expectedDomains: [], now: now)
        } catch {
            throw refuse(error.description)
        }
        do {
            let chain = try NIOSSLCertificate.fromPEMBytes(Array(bundle.fullchainPEM.utf8))
            let key = try NIOSSLPrivateKey(bytes: Array(bundle.privateKeyPEM.utf8), format: .pem)
            let dnsNames = (try? verified.leaf.extensions.subjectAlternativeNames)?.compactMap { name -> String? in
                if case .dnsName(let dns) = name { return dns }
                return nil
            } ?? []
            let entry = CertificateEntry(
                name: name, certificateChain: chain, privateKey: key, dnsNames: dnsNames,
                serialHex: verified.serialHex, sha256Hex: verified.sha256Hex, notAfter: verified.leaf.notValidAfter)
            // The context for default TLS settings is built here, off the event loop; others when a frontend or
            // ``CertificateSet/install(_:)`` asks for them.
            _ = try entry.serverContext(for: ProxyTLSSettings())
            return entry
        } catch {
            throw refuse("BoringSSL could not load the verified bundle: \(error)")
        }
    }

    package struct PEMError: Error {
        package var reason: String
    }

    /// Splits PEM text into blocks; a BEGIN without its END (a truncated file) is an error. Package visible for
    /// the fuzz targets.
    package static func pemBlocks(_ text: String) throws(PEMError) -> [(label: String, text: String)] {
        var blocks: [(label: String, text: String)] = []
        var open: (label: String, lines: [String])?
        for (index, raw) in text.split(omittingEmptySubsequences: false, whereSeparator: \.isNewline).enumerated() {
            let line = raw.trimmingCharacters(in: .whitespaces)
            if line.hasPrefix("-----BEGIN "), line.hasSuffix("-----") {
                if let open { throw PEMError(reason: "line \(index + 1): BEGIN inside an open \(open.label) block (truncated?)") }
                open = (String(line.dropFirst(11).dropLast(5)), [line])
            } else if line.hasPrefix("-----END "), line.hasSuffix("-----") {
                let label = String(line.dropFirst(9).dropLast(5))
                guard let current = open, current.label == label else {
                    throw PEMError(reason: "line \(index + 1): END \(label) without a matching BEGIN")
                }
                blocks.append((label, (current.lines + [line]).joined(separator: "\n") + "\n"))
                open = nil
            } else if open != nil {
                open!.lines.append(line)
            }
        }
        if let open { throw PEMError(reason: "truncated PEM: BEGIN \(open.label) has no END") }
        return blocks
    }
}
