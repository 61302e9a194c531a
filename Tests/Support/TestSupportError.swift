import Foundation

/// Why a test-support helper failed, with enough context to read the failure from one line of test output.
public enum TestSupportError: Error, CustomStringConvertible, Sendable {
    /// A file or directory operation failed (`operation` on `path`).
    case fileSystem(operation: String, path: String, reason: String)
    /// A program could not be started.
    case launchFailed(executable: String, reason: String)
    /// A program did not finish in time and was killed.
    case timedOut(what: String, seconds: Double, logTail: String)
    /// A program exited while we were waiting for it to become ready.
    case exitedEarly(what: String, exitCode: Int32, logTail: String)
    /// No free TCP port could be found.
    case noFreePort(attempts: Int)
    /// A certificate or key could not be built or serialized.
    case certificate(what: String, reason: String)
    /// An HTTP request made by a helper failed or returned something unexpected.
    case http(url: String, reason: String)
    /// The `certkeeper` executable could not be located.
    case executableNotFound(searched: [String])

    /// One line naming what failed, where, and why.
    public var description: String {
        switch self {
        case .fileSystem(let operation, let path, let reason):
            return "cannot \(operation) \(path): \(reason)"
        case .launchFailed(let executable, let reason):
            return "cannot start \(executable): \(reason)"
        case .timedOut(let what, let seconds, let logTail):
            return "\(what) did not finish within \(seconds) s\(Self.tailSuffix(logTail))"
        case .exitedEarly(let what, let exitCode, let logTail):
            return "\(what) exited with status \(exitCode) before it was ready\(Self.tailSuffix(logTail))"
        case .noFreePort(let attempts):
            return "no free TCP port found on 127.0.0.1 after \(attempts) attempts"
        case .certificate(let what, let reason):
            return "cannot build \(what): \(reason)"
        case .http(let url, let reason):
            return "request to \(url) failed: \(reason)"
        case .executableNotFound(let searched):
            return "certkeeper executable not found (looked at \(searched.joined(separator: ", ")); build it or set CERTKEEPER_BIN"
        }
    }

    /// Log tails are multi-line; keep the error on one line by joining them with " | ".
    private static func tailSuffix(_ tail: String) -> String {
        let lines = tail.split(separator: "\n", omittingEmptySubsequences: true)
        return lines.isEmpty ? "" : "; log tail: " + lines.joined(separator: " | ")
    }
}
