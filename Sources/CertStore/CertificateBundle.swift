/// A PEM certificate set as issued: leaf, intermediates, private key.
///
/// The strings are kept as given (``CertificateStore/liveBundle(name:)`` returns exactly what was installed);
/// the combined forms insert no blank lines, because HAProxy's `set ssl cert` payload ends at the first empty line.
public struct CertificateBundle: Sendable, Equatable {
    /// The leaf certificate, PEM (one `CERTIFICATE` block).
    public var certificatePEM: String
    /// The intermediates in order, leaf's issuer first, PEM. Empty for a self-signed certificate.
    public var chainPEM: String
    /// The private key of the leaf, PEM (`EC PRIVATE KEY`, `PRIVATE KEY` or `RSA PRIVATE KEY`).
    public var privateKeyPEM: String

    /// Creates a bundle from its three parts.
    /// - Parameters:
    ///   - certificatePEM: The leaf certificate.
    ///   - chainPEM: The intermediates, in order (may be empty).
    ///   - privateKeyPEM: The leaf's private key.
    public init(certificatePEM: String, chainPEM: String, privateKeyPEM: String) {
        self.certificatePEM = certificatePEM
        self.chainPEM = chainPEM
        self.privateKeyPEM = privateKeyPEM
    }

    /// Creates a bundle from a full chain as an ACME server returns it: the first certificate is the leaf,
    /// the rest the chain.
    /// - Parameters:
    ///   - fullchainPEM: Leaf followed by intermediates.
    ///   - privateKeyPEM: The leaf's private key.
    /// - Throws: ``VerificationError/unparseableCertificate(reason:)`` when the text holds no certificate,
    ///   a truncated block, or a block that is not a `CERTIFICATE`.
    public init(fullchainPEM: String, privateKeyPEM: String) throws(VerificationError) {
        let blocks: [PEMBlock]
        do {
            blocks = try PEMBlocks.split(fullchainPEM)
        } catch {
            throw .unparseableCertificate(reason: "full chain: \(error.description)")
        }
        guard let leaf = blocks.first else {
            throw .unparseableCertificate(reason: "full chain contains no PEM block")
        }
        if let other = blocks.first(where: { $0.label != "CERTIFICATE" }) {
            throw .unparseableCertificate(reason: "full chain contains a \(other.label) block, want only CERTIFICATE")
        }
        self.init(
            certificatePEM: leaf.text,
            chainPEM: blocks.dropFirst().map(\.text).joined(),
            privateKeyPEM: privateKeyPEM
        )
    }

    /// Leaf then chain, as served to TLS clients (certbot's `fullchain.pem`).
    public var fullchainPEM: String {
        certificatePEM.withTrailingNewline + chainPEM.withTrailingNewline
    }

    /// Full chain then private key in one file, as HAProxy's `crt` wants it.
    public var bundlePEM: String {
        fullchainPEM + privateKeyPEM.withTrailingNewline
    }
}

extension CertificateBundle: CustomStringConvertible {
    /// A summary that never includes the private key.
    public var description: String {
        "CertificateBundle(certificate: \(certificatePEM.utf8.count) bytes, chain: \(chainPEM.utf8.count) bytes, key: <redacted>)"
    }
}
