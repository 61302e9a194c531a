import Agent
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
        let path = try await agentCommand { () async throws(AgentError) in try await store.install(root, logger: global.logger) }
        print("installed \(path) (SHA-256 \(root.fingerprint)) and ran \(updateCommand)")
    }
}

