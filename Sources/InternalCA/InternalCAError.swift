/// Why the internal CA could not be loaded, created or used. Prints as one line: `<subject>: <detail>`.
public struct InternalCAError: Error, Sendable, Equatable, CustomStringConvertible {
    /// What kind of failure this is; compare errors by code.
    public enum Code: String, Sendable, Equatable {
        /// No root exists yet (nothing was created).
        case missing
        /// A file is there but is not what it should be (not PEM, not a CA, key of the wrong type).
        case malformed
        /// The root key does not belong to the root certificate.
        case keyMismatch
        /// The root key is readable by group or others.
        case insecurePermissions
        /// The root is no longer valid, so nothing it signs would be.
        case rootExpired
        /// A leaf request that cannot be signed (no names, an unusable name or lifetime).
        case invalidRequest
        /// Building or signing a certificate failed.
        case crypto
        /// A file could not be read or written.
        case io
    }

    /// The failure's kind.
    public var code: Code
    /// The file or object concerned, for example `/var/lib/certkeeper/internal-ca/root.key`.
    public var subject: String
    /// What is wrong and, where there is one, what to do about it.
    public var detail: String

    /// Creates an error.
    public init(code: Code, subject: String, detail: String) {
        self.code = code
        self.subject = subject
        self.detail = detail
    }

    /// `<subject>: <detail>` on one line.
    public var description: String {
        "\(subject): \(detail)".split(whereSeparator: \.isNewline).joined(separator: " ")
    }
}
