#if canImport(Glibc)
import Glibc
#endif

/// A failure of the on-disk store, carrying what was being done, on which path, and why.
///
/// Errors print as one line, for example
/// `create version directory /var/lib/certkeeper/archive/web/v000002-20260101120000: File exists (errno 17)`.
/// Compare errors by ``code`` (`error.code == .lockTimeout`), not by their text.
public struct StoreError: Error, CustomStringConvertible, Sendable {
    /// The kind of failure, stable enough to switch on.
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        /// The raw identifier of the code, e.g. `"io"`.
        public let rawValue: String

        /// Creates a code from its identifier.
        /// - Parameter rawValue: The identifier, e.g. `"io"`.
        public init(_ rawValue: String) { self.rawValue = rawValue }

        /// A system call failed (see ``StoreError/errno``).
        public static let io = Code("io")
        /// A certificate name or state key does not match `[A-Za-z0-9][A-Za-z0-9._-]{0,63}` or contains `..`.
        public static let invalidName = Code("invalidName")
        /// The exclusive store lock could not be taken before the timeout.
        public static let lockTimeout = Code("lockTimeout")
        /// The task waiting for the lock was cancelled.
        public static let cancelled = Code("cancelled")
        /// `live/<name>` exists but is not a symlink made by this store (a certbot import or a hand-made directory).
        public static let liveNotManaged = Code("liveNotManaged")
        /// A file in the store exists but could not be decoded or encoded.
        public static let corrupt = Code("corrupt")

        /// The identifier of the code.
        public var description: String { rawValue }
    }

    /// The kind of failure.
    public var code: Code
    /// What was being done, e.g. `"write file"` or `"rename"`.
    public var operation: String
    /// The path the operation was acting on (empty when there is none).
    public var path: String
    /// The `errno` of the failed system call, when a system call failed.
    public var errno: Int32?
    /// More detail in words, when there is some.
    public var detail: String?

    /// Creates a store error.
    /// - Parameters:
    ///   - code: The kind of failure.
    ///   - operation: What was being done.
    ///   - path: The path acted on.
    ///   - errno: The `errno` of a failed system call, if any.
    ///   - detail: More detail in words, if any.
    public init(code: Code, operation: String, path: String, errno: Int32? = nil, detail: String? = nil) {
        self.code = code
        self.operation = operation
        self.path = path
        self.errno = errno
        self.detail = detail
    }

    /// One line: operation, path, then the system error text and/or the detail.
    public var description: String {
        var line = operation
        if !path.isEmpty { line += " \(path)" }
        if !reason.isEmpty { line += ": " + reason }
        return line.replacingNewlines()
    }

    /// The system error text and/or the detail, without the operation and path (empty when there is neither).
    public var reason: String {
        var reasons: [String] = []
        if let errno { reasons.append("\(String(cString: strerror(errno))) (errno \(errno))") }
        if let detail { reasons.append(detail) }
        return reasons.joined(separator: "; ").replacingNewlines()
    }

    /// An I/O error from the current `errno`.
    static func io(_ operation: String, _ path: String, errno code: Int32 = Glibc.errno, detail: String? = nil) -> StoreError {
        StoreError(code: .io, operation: operation, path: path, errno: code, detail: detail)
    }
}

extension String {
    /// Keeps error text on one line whatever the underlying message contains.
    func replacingNewlines() -> String {
        String(self.map { $0 == "\n" || $0 == "\r" ? " " : $0 })
    }
}
