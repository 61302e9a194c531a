/// A failure of the cluster trust layer, naming the file or field at fault.
///
/// Errors print as one line, for example
/// `/var/lib/certkeeper/cluster/identity.pem: the private key does not match the node certificate`.
/// Compare errors by ``code`` (`error.code == .keyMismatch`), not by their text.
public struct ClusterTrustError: Error, CustomStringConvertible, Sendable, Equatable {
    /// The kind of failure, stable enough to switch on.
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        /// The raw identifier of the code, e.g. `"keyMismatch"`.
        public let rawValue: String

        /// Creates a code from its identifier.
        /// - Parameter rawValue: The identifier.
        public init(_ rawValue: String) { self.rawValue = rawValue }

        /// A node or cluster name breaks the name rules (`[A-Za-z0-9][A-Za-z0-9._-]{0,63}`, no `..`).
        public static let invalidName = Code("invalidName")
        /// An address is neither an IP literal nor a valid DNS name.
        public static let invalidAddress = Code("invalidAddress")
        /// A validity period is not positive, or outlives the CA.
        public static let invalidValidity = Code("invalidValidity")
        /// A cluster CA already exists where a new one was to be created.
        public static let caExists = Code("caExists")
        /// No cluster CA (or only half of one) where one was expected.
        public static let caMissing = Code("caMissing")
        /// An identity file already exists and replacing it was not asked for.
        public static let identityExists = Code("identityExists")
        /// No identity file where one was expected.
        public static let identityMissing = Code("identityMissing")
        /// A file is not the PEM it should be, or a certificate or key does not parse.
        public static let malformed = Code("malformed")
        /// A private key does not belong to its certificate.
        public static let keyMismatch = Code("keyMismatch")
        /// A certificate was not issued by the cluster CA, or the CA certificate is not a CA.
        public static let notSignedByCA = Code("notSignedByCA")
        /// A certificate is outside its validity period.
        public static let expired = Code("expired")
        /// A node certificate lacks the key usages a peer needs (serverAuth and clientAuth, digitalSignature).
        public static let missingUsage = Code("missingUsage")
        /// A file holding a private key can be read by group or others.
        public static let insecurePermissions = Code("insecurePermissions")
        /// A system call failed.
        public static let io = Code("io")
        /// Certificate building or TLS material loading failed inside a library.
        public static let crypto = Code("crypto")

        /// The identifier of the code.
        public var description: String { rawValue }
    }

    /// The kind of failure.
    public var code: Code
    /// The file, directory or field at fault (e.g. `"--address"`, `"/etc/certkeeper/ca/ca.pem"`).
    public var subject: String
    /// What is wrong, as a sentence fragment without a trailing period.
    public var detail: String

    /// Creates an error.
    /// - Parameters:
    ///   - code: The kind of failure.
    ///   - subject: The file, directory or field at fault.
    ///   - detail: What is wrong.
    public init(code: Code, subject: String, detail: String) {
        self.code = code
        self.subject = subject
        self.detail = detail
    }

    /// `<subject>: <detail>` on one line.
    public var description: String {
        let line = subject.isEmpty ? detail : "\(subject): \(detail)"
        return line.split(whereSeparator: \.isNewline).joined(separator: " ")
    }
}
