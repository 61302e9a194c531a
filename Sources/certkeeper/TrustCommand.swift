import ArgumentParser
import CertHooks
import CertStore
import CertkeeperConfig
import Foundation
import InternalCA
import Logging
#if canImport(Glibc)
import Glibc
#endif

struct Trust: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Print the internal CA's root certificate, or install it into the system's trust store.",
        discussion: """
        Certificates with issuer: internal are signed by a root that certkeeper creates in \
        <state_dir>/internal-ca/ the first time it issues one (certkeeper renew, or certkeeper daemon at start). \
        Clients accept those certificates once they trust that root: give them the PEM this command prints, or run \
        it with --install on each machine that should trust it (Debian and Ubuntu: the root is copied to \
        /usr/local/share/ca-certificates/certkeeper-<fingerprint>.crt and update-ca-certificates is run; needs \
        root). The command never creates the CA.

        Exit codes: 0 printed or installed; 1 no internal CA yet (run certkeeper renew first), it cannot be read, \
        or the install failed; 2 usage or configuration error.

        Examples:
          certkeeper trust > certkeeper-root.pem
          curl --cacert certkeeper-root.pem https://localhost:8443/
          sudo certkeeper trust --install
        """
    )

    @OptionGroup var global: GlobalOptions

    @Flag(name: .long, help: "Install the root into the system's trust store (Debian/Ubuntu update-ca-certificates; needs root) instead of printing it.")
    var install = false

    /// Where --install copies the root. Hidden: for tests and unusual layouts.
    @Option(name: .customLong("ca-certificates-dir"), help: ArgumentHelp(visibility: .hidden))
    var caCertificatesDirectory: String = SystemTrustStore.defaultDirectory

    /// What --install runs afterwards. Hidden: for tests and unusual layouts.
    @Option(name: .customLong("update-command"), help: ArgumentHelp(visibility: .hidden))
    var updateCommand: String = SystemTrustStore.defaultUpdateCommand

    func run() async throws {
        let configuration = try global.loadConfiguration()
        let directory = InternalCADirectory(stateDirectory: configuration.stateDirectory)
        let root: InternalRoot
        do {
            guard let loaded = try directory.loadRoot() else {
                let hint = configuration.internalCertificates.isEmpty
                    ? "no certificate in the configuration has issuer: internal, so none will be created"
                    : "it is created with the first certificate that has issuer: internal; run 'certkeeper renew' (or start 'certkeeper daemon') first"
                throw CommandFailure.failure("no internal CA in \(directory.path) yet: \(hint)")
            }
            root = loaded
        } catch let error as CommandFailure {
            throw error
        } catch {
            throw CommandFailure.failure("cannot read the internal CA: \(error)")
        }
        guard install else {
            print(root.pem, terminator: "")
            return
        }
        let store = SystemTrustStore(directory: caCertificatesDirectory, updateCommand: updateCommand)
        let path = try await store.install(root, logger: global.logger)
        print("installed \(path) (SHA-256 \(root.fingerprint)) and ran \(updateCommand)")
    }
}

/// The system trust store of Debian and Ubuntu: PEM files named `*.crt` in /usr/local/share/ca-certificates,
/// merged into /etc/ssl/certs by update-ca-certificates.
struct SystemTrustStore {
    static let defaultDirectory = "/usr/local/share/ca-certificates"
    static let defaultUpdateCommand = "update-ca-certificates"

    var directory: String
    var updateCommand: String

    /// The file name for `root`: stable per root, so installing again replaces the same file.
    static func fileName(for root: InternalRoot) -> String {
        "certkeeper-\(root.fingerprintHex.prefix(16)).crt"
    }

    /// Writes the root (atomically, 0644) and runs the update command.
    /// - Returns: The path written.
    /// - Throws: ``CommandFailure`` with one line: not root, cannot write, the command failed.
    func install(_ root: InternalRoot, logger: Logger) async throws(CommandFailure) -> String {
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
