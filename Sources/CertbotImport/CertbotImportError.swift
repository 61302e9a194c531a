/// Why a certbot directory could not be imported: the file and what was wrong with it, on one line.
///
/// `renewal/web.conf line 9: "[[webroot_map]" has unbalanced brackets`,
/// `live/web/privkey.pem: private key does not match the certificate (…)`.
/// Compare errors by ``code``, not by their text.
public struct CertbotImportError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The kind of failure, stable enough to switch on.
    public enum Code: String, Sendable, Equatable {
        /// A file or directory certbot should have written is missing or unreadable.
        case missing
        /// A file exists but does not parse (a renewal config, a JSON file, a PEM).
        case malformed
        /// The files parse but do not fit together (key and certificate, chain, live symlinks, accounts).
        case inconsistent
        /// Something certkeeper cannot take over (a lineage name it cannot store, an unsupported account key).
        case unsupported
        /// The operator's selection does not match the directory (an unknown `--lineage` or `--account`).
        case selection
    }

    /// The kind of failure.
    public var code: Code
    /// The file or directory concerned, as the operator should look for it (empty when there is none).
    public var path: String
    /// What was wrong, in words.
    public var problem: String

    /// Creates an error.
    /// - Parameters:
    ///   - code: The kind of failure.
    ///   - path: The file concerned.
    ///   - problem: What was wrong with it.
    public init(_ code: Code, path: String, _ problem: String) {
        self.code = code
        self.path = path
        self.problem = problem
    }

    /// `path: problem`, on one line.
    public var description: String {
        let line = path.isEmpty ? problem : "\(path): \(problem)"
        return String(line.map { $0 == "\n" || $0 == "\r" ? " " : $0 })
    }
}
