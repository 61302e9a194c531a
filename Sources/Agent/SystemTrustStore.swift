import CertHooks
import CertStore
import Foundation
import InternalCA
import Logging
#if canImport(Glibc)
import Glibc
#endif

/// The system trust store of Debian and Ubuntu: PEM files named `*.crt` in /usr/local/share/ca-certificates,
/// merged into /etc/ssl/certs by update-ca-certificates.
public struct SystemTrustStore: Sendable {
    /// Where Debian and Ubuntu take local CA certificates from.
    public static let defaultDirectory = "/usr/local/share/ca-certificates"
    /// The program that merges them into /etc/ssl/certs.
    public static let defaultUpdateCommand = "update-ca-certificates"

    /// The CA directory.
    public var directory: String
    /// The update program.
    public var updateCommand: String

    /// Creates the store.
    public init(directory: String = Self.defaultDirectory, updateCommand: String = Self.defaultUpdateCommand) {
        self.directory = directory
        self.updateCommand = updateCommand
    }

    /// The file name for `root`: stable per root, so installing again replaces the same file.
    public static func fileName(for root: InternalRoot) -> String {
        "certkeeper-\(root.fingerprintHex.prefix(16)).crt"
    }

    /// Writes the root (atomically, 0644) and runs the update command.
    /// - Returns: The path written.
    /// - Throws: ``AgentError`` (failure) with one line: not root, cannot write, the command failed.
    public func install(_ root: InternalRoot, logger: Logger) async throws(AgentError) -> String {
        guard geteuid() == 0 else {
            throw .failure("--install needs root: it writes to \(directory) and runs \(updateCommand) (try: sudo certkeeper trust --install)")
        }
        if mkdir(directory, 0o755) != 0 && errno != EEXIST {
            throw .failure("cannot create \(directory): \(String(cString: strerror(errno)))")
        }
        let path = directory + "/" + Self.fileName(for: root)
        do {
            try AtomicFile.write(Array(root.pem.utf8), to: path, mode: 0o644)
        } catch {
            throw .failure("cannot write \(path): \(error)")
        }
        logger.info("root written to the system's CA directory", metadata: ["ca.path": "\(path)", "ca.fingerprint": "\(root.fingerprint)"])
        var environment = ProcessInfo.processInfo.environment
        // sudo and cron may leave the sbin directories out of PATH; update-ca-certificates lives there.
        environment["PATH"] = (environment["PATH"].map { $0 + ":" } ?? "") + "/usr/local/sbin:/usr/sbin:/sbin"
        let result = await ProcessRunner.run(executable: updateCommand, arguments: [], environment: environment, timeout: 120)
        guard result.outcome.succeeded else {
            let lastLine = result.output.split(whereSeparator: \.isNewline).last.map { ": \($0)" } ?? ""
            if case .failedToStart = result.outcome {
                throw .failure("\(path) written, but \(updateCommand) could not run (\(result.outcome)); on Debian and Ubuntu install the ca-certificates package, elsewhere add \(path) to the system's trust store by hand")
            }
            throw .failure("\(path) written, but \(updateCommand) \(result.outcome)\(lastLine)")
        }
        return path
    }
}
