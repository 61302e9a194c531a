import CertProxy
import CertStore
import Foundation

/// PEM splitting and bundle loading. The input is PEM text; a line holding only U+0000 (if any) separates the
/// full chain from the private key for ``CertificateBundle/init(fullchainPEM:privateKeyPEM:)``, while the whole
/// text is one combined file for ``PEMBlocks`` and the proxy's ``CertificateLoader`` (read from a scratch file,
/// as the proxy reads `bundle.pem`).
///
/// Invariants: every block either splitter (``PEMBlocks``, `CertificateLoader.pemBlocks`) returns starts with its
/// BEGIN line and ends with its END line, and splitting the blocks' text again gives the same blocks; bundles fail
/// only with a one-line ``VerificationError`` (the loader with a one-line ``CertificateLoadError``); a bundle that
/// verifies has a leaf whose PEM holds exactly one block.
enum PEMTarget {
    /// The instant at which leaves must be valid: fixed, so a reproducer reproduces.
    static let now = Date(timeIntervalSince1970: 1_800_000_000)

    static func run(_ bytes: UnsafeRawBufferPointer) throws(FuzzViolation) {
        let text = String(decoding: bytes, as: UTF8.self)
        try checkSplit(text)
        try checkLoaderBlocks(text)
        let (fullchain, key) = parts(of: text)
        try checkBundle(fullchain: fullchain, key: key)
        try checkLoader(bytes)
    }

    /// The full chain and key parts of the input (both the whole text when there is no separator line).
    static func parts(of text: String) -> (fullchain: String, key: String) {
        guard let range = text.range(of: "\n\u{0}\n") else { return (text, text) }
        return (String(text[..<range.lowerBound]) + "\n", String(text[range.upperBound...]))
    }

    private static func checkSplit(_ text: String) throws(FuzzViolation) {
        let blocks: [PEMBlock]
        do {
            blocks = try PEMBlocks.split(text)
        } catch {
            try require(!error.description.isEmpty, "empty PEMSplitError")
            return
        }
        for block in blocks {
            try require(block.text.hasPrefix("-----BEGIN \(block.label)-----\n") && block.text.hasSuffix("-----END \(block.label)-----\n"),
                        "block \(quoted(block.label)) is \(quoted(block.text))")
        }
        let again: [PEMBlock]
        do {
            again = try PEMBlocks.split(blocks.map(\.text).joined())
        } catch {
            throw FuzzViolation("the blocks' own text does not split again: \(error)")
        }
        try require(again == blocks, "splitting the blocks' text gives \(again.count) other blocks")
    }

    /// The proxy's own splitter (it trims leading whitespace too and splits on every newline character, so its
    /// blocks are not compared with ``PEMBlocks``'), checked for the same shape and for splitting its output again.
    private static func checkLoaderBlocks(_ text: String) throws(FuzzViolation) {
        guard let blocks = try? CertificateLoader.pemBlocks(text) else { return }
        for block in blocks {
            try require(block.text.hasPrefix("-----BEGIN \(block.label)-----\n") && block.text.hasSuffix("-----END \(block.label)-----\n"), "loader block \(quoted(block.text))")
        }
        let again = try? CertificateLoader.pemBlocks(blocks.map(\.text).joined())
        try require(again.map { $0.map(\.label) == blocks.map(\.label) && $0.map(\.text) == blocks.map(\.text) } == true,
                    "CertificateLoader.pemBlocks does not split its own blocks' text the same way")
    }

    private static func checkBundle(fullchain: String, key: String) throws(FuzzViolation) {
        do {
            let bundle = try CertificateBundle(fullchainPEM: fullchain, privateKeyPEM: key)
            try require(bundle.description.contains("<redacted>") && (key.count < 16 || !bundle.description.contains(key)), "bundle description shows the key")
            let verified = try BundleVerifier().verify(bundle, expectedDomains: [], now: now)
            try require((try? PEMBlocks.split(verified.bundle.certificatePEM))?.count == 1, "verified leaf PEM is not one block")
        } catch let error as VerificationError {
            try require(!error.description.isEmpty && !error.description.contains("\n"), "VerificationError is not one line: \(quoted(error.description))")
        } catch let error as FuzzViolation {
            throw error
        } catch {
            throw FuzzViolation("unexpected error type \(type(of: error)): \(error)")
        }
    }

    private static func checkLoader(_ bytes: UnsafeRawBufferPointer) throws(FuzzViolation) {
        let path = FuzzFixture.shared.scratchFile
        guard FileManager.default.createFile(atPath: path, contents: Data(bytes)) else {
            fatalError("cannot write \(path)")
        }
        do {
            let entry = try CertificateLoader().load(name: "fuzz", path: path, now: now)
            try require(entry.name == "fuzz", "loaded entry is named \(entry.name)")
        } catch let error as CertificateLoadError {
            try require(!error.description.contains("\n"), "CertificateLoadError is not one line: \(quoted(error.description))")
        } catch let error as FuzzViolation {
            throw error
        } catch {
            throw FuzzViolation("unexpected error type \(type(of: error)): \(error)")
        }
    }
}
