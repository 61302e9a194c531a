import ArgumentParser
import ClusterTrust
import CertkeeperConfig
import Foundation
import X509

/// `certkeeper cluster …`: the cluster CA, node certificates and this node's identity for the peer API.
struct Cluster: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Create the cluster CA, issue node certificates, install this node's identity.",
        discussion: """
        Peers talk over mutual TLS: each node presents a certificate from the cluster's own CA and accepts \
        only peers that do the same. The CA lives in one directory (default <state_dir>/cluster-ca) on the \
        machine where you run init; each node needs only its identity file (node certificate, its key and the \
        CA certificate), installed at <state_dir>/cluster/identity.pem.

        Bootstrapping three nodes (the CA stays on node1):
          node1$ certkeeper cluster init --name prod
          node1$ certkeeper cluster add-node node1 --address 10.0.0.1 --install
          node1$ certkeeper cluster add-node node2 --address 10.0.0.2 --out node2.pem
          node1$ certkeeper cluster add-node node3 --address 10.0.0.3 --out node3.pem
          node1$ scp node2.pem node2:/root/ && scp node3.pem node3:/root/ && rm node2.pem node3.pem
          node2$ certkeeper cluster join /root/node2.pem && rm /root/node2.pem
          node3$ certkeeper cluster join /root/node3.pem && rm /root/node3.pem
          any$   certkeeper cluster show     # compare the CA fingerprint across nodes

        A lost or decommissioned node: 'cluster revoke-node NAME' where the CA is; every peer refuses it within \
        seconds. Rotating the CA: 'cluster trust-ca', 'add-node'/'join --force' per node, 'untrust-ca' (see the \
        README's "Rotating the cluster CA").
        """,
        subcommands: [
            ClusterInit.self, ClusterAddNode.self, ClusterJoin.self, ClusterShow.self, ClusterRevokeNode.self, ClusterTrustCA.self,
            ClusterUntrustCA.self,
        ]
    )
}

struct ClusterInit: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "init",
        abstract: "Create the cluster CA (P-256, 10 years); refuses to overwrite an existing one.",
        discussion: """
        Writes ca.pem (0644) and ca.key (0600) into the CA directory (0700). Keep ca.key on this machine only.

        Examples:
          certkeeper cluster init --name prod
          certkeeper cluster init --name prod --ca-dir /root/certkeeper-ca
        """
    )

    @OptionGroup var global: GlobalOptions

    @Option(help: ArgumentHelp("The cluster's name, shown in the CA certificate.", valueName: "name"))
    var name: String = "certkeeper"

    @Option(help: ArgumentHelp("CA directory (default: <state_dir>/cluster-ca from the configuration).", valueName: "dir"))
    var caDir: String?

    func validate() throws {
        if let problem = ClusterNames.nameProblem(name) { throw ValidationError("--name: '\(name)' is not a valid cluster name: \(problem)") }
    }

    func run() async throws {
        let directory = try caDir ?? ClusterPaths.caDirectory(stateDirectory: global.loadConfiguration().stateDirectory)
        let ca = try clusterCommand { () throws(ClusterTrustError) in try ClusterCA.create(clusterName: name, directory: directory) }
        print("created cluster CA '\(ca.clusterName)' in \(directory)")
        print("CA SHA-256 fingerprint \(ca.fingerprint)")
        print("next: certkeeper cluster add-node NAME --address ADDR for each node")
    }
}

struct ClusterAddNode: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "add-node",
        abstract: "Issue a node certificate and write the node's identity file (0600).",
        discussion: """
        The certificate names the node (CN and, when it is a host name, a DNS SAN) and every --address peers dial \
        it at (IP literals become IP SANs, host names DNS SANs). It is valid for clientAuth and serverAuth. The \
        identity file holds the private key: copy it to the node, run 'certkeeper cluster join FILE' there, \
        delete the copy.

        Examples:
          certkeeper cluster add-node node2 --address 10.0.0.2 --out node2.pem
          certkeeper cluster add-node node1 --address 10.0.0.1 --address node1.internal --install
        """
    )

    @OptionGroup var global: GlobalOptions

    @Argument(help: "Node name: letters, digits, '.', '_', '-'; up to 64 characters.")
    var nodeName: String

    @Option(name: .customLong("address"), help: ArgumentHelp("An IP address or host name peers use to reach this node (repeatable, at least one).", valueName: "addr"))
    var addresses: [String] = []

    @Option(help: ArgumentHelp("CA directory (default: <state_dir>/cluster-ca from the configuration).", valueName: "dir"))
    var caDir: String?

    @Option(help: ArgumentHelp("Identity file to write (default: ./<name>.pem).", valueName: "file"))
    var out: String?

    @Flag(help: "Install the identity as this node's (<state_dir>/cluster/identity.pem) instead of writing a file.")
    var install = false

    @Flag(help: "Replace an existing output file or installed identity (e.g. to renew a node certificate).")
    var force = false

    @Option(help: ArgumentHelp("Validity of the node certificate in days.", valueName: "days"))
    var days: Int = 730

    func validate() throws {
        if let problem = ClusterNames.nameProblem(nodeName) { throw ValidationError("'\(nodeName)' is not a valid node name: \(problem)") }
        if addresses.isEmpty { throw ValidationError("give at least one --address peers dial \(nodeName) at") }
        for address in addresses {
            do { _ = try NodeAddress(parsing: address) } catch { throw ValidationError(error.description) }
        }
        if days <= 0 { throw ValidationError("--days must be positive") }
        if install && out != nil { throw ValidationError("give either --install or --out, not both") }
    }

    func run() async throws {
        var configuration: CertkeeperConfiguration?
        func stateDirectory() throws -> String {
            if configuration == nil { configuration = try global.loadConfiguration() }
            return configuration!.stateDirectory
        }
        let directory = try caDir ?? ClusterPaths.caDirectory(stateDirectory: stateDirectory())
        let destination = try install ? { _ = try stateDirectory(); return installedIdentityPath(configuration!) }() : (out ?? "\(nodeName).pem")
        if install, let configured = configuration?.nodeName, configured != nodeName {
            throw CommandFailure.usage(["--install: this node is '\(configured)' (node_name in the configuration), not '\(nodeName)'"])
        }
        let (days, addresses, nodeName, force) = (days, addresses, nodeName, force)
        // A node revoked earlier gets a certificate that starts after its revocation (a replacement under its name).
        let revocationsPath = (try? stateDirectory()).map { RevocationFile.path(clusterDirectory: ClusterPaths.identityDirectory(stateDirectory: $0)) }
        let revokedAt = try clusterCommand { () throws(ClusterTrustError) -> Date? in
            // This CA's list only (its entries cover its certificates); unverified is enough: it can only move the
            // new certificate's start later.
            guard let revocationsPath else { return nil }
            let fingerprint = try ClusterCA.load(directory: directory).fingerprint
            return try RevocationFile.read(revocationsPath).filter { $0.signer == fingerprint }
                .compactMap { $0.unverifiedContent()?.entry(for: nodeName)?.revokedAt }.max()
        }
        if let revokedAt, Date() < revokedAt.addingTimeInterval(1.2) {
            // Revoked this very second: the replacement starts after it, and not in the future (never more than 2 s:
            // a revocation further ahead is refused below as a clock problem).
            try await Task.sleep(for: .seconds(min(2, max(0, revokedAt.addingTimeInterval(1.2).timeIntervalSinceNow))))
        }
        let identity = try clusterCommand { () throws(ClusterTrustError) in
            let ca = try ClusterCA.load(directory: directory)
            var parsed: [NodeAddress] = []
            for address in addresses { parsed.append(try NodeAddress(parsing: address)) }
            let identity = try ca.issueIdentity(nodeName: nodeName, addresses: parsed, validity: TimeInterval(days) * 86400, startsAfter: revokedAt)
            try identity.write(to: destination, replacing: force)
            return identity
        }
        print("issued node certificate for \(identity.nodeName) (\(identity.addresses.joined(separator: ", "))), expires \(identity.notAfter.formatted(.iso8601))")
        if install {
            print("installed as this node's identity: \(destination)")
        } else {
            print("wrote \(destination) (secret: holds the node's key); on \(identity.nodeName) run: certkeeper cluster join \((destination as NSString).lastPathComponent)")
        }
    }
}

struct ClusterJoin: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "join",
        abstract: "Check an identity file from add-node and install it as this node's identity.",
        discussion: """
        Checks the file (key matches certificate, issued by the CA inside it, valid now, clientAuth + serverAuth) \
        and installs it atomically with mode 0600 at <state_dir>/cluster/identity.pem. Installing the same \
        identity again does nothing; replacing a different one needs --force. Delete the copied file afterwards.

        Examples:
          certkeeper cluster join /root/node2.pem && rm /root/node2.pem
          certkeeper cluster join --force /root/node2-renewed.pem
        """
    )

    @OptionGroup var global: GlobalOptions

    @Flag(help: "Replace an installed identity that differs (a renewed node certificate, a new CA).")
    var force = false

    @Argument(help: "The identity file written by 'certkeeper cluster add-node'.")
    var file: String

    func run() async throws {
        let configuration = try global.loadConfiguration()
        let destination = installedIdentityPath(configuration)
        let (file, force) = (file, force)
        let identity = try clusterCommand { () throws(ClusterTrustError) in
            try ClusterIdentity.load(path: file, requireOwnerOnly: false)
        }
        if let configured = configuration.nodeName, configured != identity.nodeName {
            throw CommandFailure.usage(["\(file): identity is for node '\(identity.nodeName)' but this node is '\(configured)' (node_name in the configuration); nothing installed"])
        }
        if let installed = try? ClusterIdentity.load(path: destination), installed.fingerprint == identity.fingerprint {
            print("identity for \(identity.nodeName) is already installed at \(destination)")
            return
        }
        // The CA of the identity being replaced, even when that identity has expired.
        let previousCA = ClusterIdentity.caCertificate(inFile: destination)
        let trustedPath = TrustedCAFile.path(clusterDirectory: ClusterPaths.identityDirectory(stateDirectory: configuration.stateDirectory))
        let keptTrust = try clusterCommand { () throws(ClusterTrustError) -> String? in
            // A new identity from another CA: the old CA stays trusted, so nodes not yet moved still talk to this one.
            var kept: String?
            if force, let previousCA, TrustedCAFile.fingerprint(previousCA) != identity.caFingerprint {
                try TrustedCAFile.add(previousCA, to: trustedPath)
                kept = TrustedCAFile.fingerprint(previousCA)
            }
            try identity.write(to: destination, replacing: force)
            return kept
        }
        if let keptTrust {
            print("the previous cluster CA (SHA-256 \(keptTrust)) stays trusted in \(trustedPath); once every node has moved, run: certkeeper cluster untrust-ca \(keptTrust)")
        }
        print("installed identity for \(identity.nodeName) (cluster \(identity.clusterName), CA SHA-256 \(identity.caFingerprint)) at \(destination)")
        print("expires \(identity.notAfter.formatted(.iso8601)); delete \(file) now")
    }
}

struct ClusterShow: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "show",
        abstract: "Show this node's cluster identity and, if present here, the cluster CA.",
        discussion: """
        Exit code 1 when the identity is missing or invalid (expired, wrong key, not from its CA).

        Examples:
          certkeeper cluster show
          certkeeper cluster show --ca-dir /root/certkeeper-ca
        """
    )

    @OptionGroup var global: GlobalOptions

    @Option(help: ArgumentHelp("CA directory (default: <state_dir>/cluster-ca).", valueName: "dir"))
    var caDir: String?

    func run() async throws {
        let configuration = try global.loadConfiguration()
        let state = configuration.stateDirectory
        let identityPath = installedIdentityPath(configuration)
        let caDirectory = caDir ?? ClusterPaths.caDirectory(stateDirectory: state)
        var problem: String?
        do {
            let identity = try ClusterIdentity.load(path: identityPath)
            let daysLeft = Int(identity.notAfter.timeIntervalSinceNow / 86400)
            print("""
            node:        \(identity.nodeName)
            cluster:     \(identity.clusterName)
            CA SHA-256:  \(identity.caFingerprint)
            addresses:   \(identity.addresses.joined(separator: ", "))
            expires:     \(identity.notAfter.formatted(.iso8601)) (\(daysLeft) days left)
            identity:    \(identityPath)
            """)
        } catch {
            problem = error.description
            print("identity:    none usable (\(error.description))")
        }
        let clusterDirectory = ClusterPaths.identityDirectory(stateDirectory: state)
        do {
            for extra in try TrustedCAFile.read(TrustedCAFile.path(clusterDirectory: clusterDirectory)) {
                print("also trusts: \(TrustedCAFile.fingerprint(extra)) (\(extra.subject), expires \(extra.notValidAfter.formatted(.iso8601)))")
            }
            // Only with a usable identity (its CA is a trust anchor); otherwise the identity line above says why.
            if problem == nil {
                let credentials = try ClusterCredentials(identityPath: identityPath, clusterDirectory: clusterDirectory)
                let revoked = credentials.current.revokedNodes.map { "\($0.node.node) (\($0.node.revokedAt.formatted(.iso8601)))" }
                print("revoked:     \(revoked.isEmpty ? "none" : revoked.joined(separator: ", "))\(credentials.current.revocations.map { " [CA \($0.signed.signer.prefix(11)) list version \($0.list.version)]" }.joined())")
            }
        } catch {
            print("trust:       unusable (\(error.description))")
            problem = problem ?? error.description
        }
        if caDir != nil || FileManager.default.fileExists(atPath: caDirectory) {
            do {
                let ca = try ClusterCA.load(directory: caDirectory)
                print("""
                CA here:     \(caDirectory) (cluster \(ca.clusterName), SHA-256 \(ca.fingerprint), expires \(ca.certificate.notValidAfter.formatted(.iso8601)))
                """)
            } catch {
                print("CA here:     unusable (\(error.description))")
                problem = problem ?? error.description
            }
        }
        if let problem { throw CommandFailure.failure(problem) }
    }
}

struct ClusterRevokeNode: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "revoke-node",
        abstract: "Revoke a node's cluster certificates; every peer refuses them within seconds.",
        discussion: """
        Run it on a node where the cluster CA is. It adds NAME to that CA's revocation list (every certificate \
        for NAME the CA issued until now), signs the list with the CA and writes \
        <state_dir>/cluster/revocations.json. The \
        daemon here serves the list in its catalogue, every peer checks the signature, installs it and passes it \
        on; from then on the node's certificates get 403 from every peer API, also on connections already open. \
        A replacement node under the same name: 'cluster add-node NAME' afterwards issues a certificate that \
        starts after the revocation. Remove a decommissioned node from every cluster.peers as well.

        Examples:
          certkeeper cluster revoke-node node3 --reason "disk lost"
          certkeeper cluster revoke-node old-node --ca-dir /root/certkeeper-ca
        """
    )

    @OptionGroup var global: GlobalOptions

    @Argument(help: "The node to revoke.")
    var nodeName: String

    @Option(help: ArgumentHelp("Why (one line, kept in the list).", valueName: "text"))
    var reason: String?

    @Option(help: ArgumentHelp("CA directory (default: <state_dir>/cluster-ca).", valueName: "dir"))
    var caDir: String?

    func validate() throws {
        if let problem = ClusterNames.nameProblem(nodeName) { throw ValidationError("'\(nodeName)' is not a valid node name: \(problem)") }
        if let reason, reason.count > 200 || reason.contains(where: \.isNewline) { throw ValidationError("--reason: at most 200 characters on one line") }
    }

    func run() async throws {
        let configuration = try global.loadConfiguration()
        if configuration.nodeName == nodeName {
            throw CommandFailure.usage(["'\(nodeName)' is this node (node_name); revoke it from another node's configuration, or give this node a new identity"])
        }
        let directory = caDir ?? ClusterPaths.caDirectory(stateDirectory: configuration.stateDirectory)
        let clusterDirectory = ClusterPaths.identityDirectory(stateDirectory: configuration.stateDirectory)
        let path = RevocationFile.path(clusterDirectory: clusterDirectory)
        let (nodeName, reason) = (nodeName, reason)
        let identityPath = installedIdentityPath(configuration)
        let list = try clusterCommand { () throws(ClusterTrustError) -> RevocationList in
            let ca = try ClusterCA.load(directory: directory)
            // Only a CA this node trusts: the list of any other would be refused by every peer (after a rotation,
            // give --ca-dir of the new CA).
            let credentials = try ClusterCredentials(identityPath: identityPath, clusterDirectory: clusterDirectory)
            guard credentials.current.anchors.contains(where: { TrustedCAFile.fingerprint($0) == ca.fingerprint }) else {
                throw ClusterTrustError(
                    code: .notSignedByCA, subject: directory,
                    detail: "this CA (\(ca.fingerprint.prefix(23))…) is not one this node trusts; give --ca-dir of the CA that issued the node's identity")
            }
            // This CA's list (each CA keeps its own; its entries cover its certificates), one version on.
            let current = credentials.current.revocations(signedBy: ca.fingerprint)?.list
                ?? RevocationList(cluster: ca.clusterName, version: 0, issuedAt: Date(), revoked: [])
            var next = current.revoking(nodeName, at: Date(), reason: reason)
            next.cluster = ca.clusterName
            let others = credentials.current.signedRevocations.filter { $0.signer != ca.fingerprint }
            try RevocationFile.write((others + [try ca.sign(next)]).sorted { $0.signer < $1.signer }, to: path)
            return next
        }
        print("revoked node \(nodeName): its certificates from this CA issued until \(list.entry(for: nodeName)!.revokedAt.formatted(.iso8601)) are refused (revocation list version \(list.version), \(path))")
        print("the daemon here passes the list to every peer; check with: certkeeper cluster show (on any node)")
    }
}

struct ClusterTrustCA: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "trust-ca",
        abstract: "Trust another cluster CA besides this node's identity's (the start of a CA rotation).",
        discussion: """
        Adds the CA certificate to <state_dir>/cluster/trusted-cas.pem; the running daemon takes it up at once \
        (new peer connections verify against both CAs).

        Example:
          certkeeper cluster trust-ca /root/new-ca.pem
        """
    )

    @OptionGroup var global: GlobalOptions

    @Argument(help: "A cluster CA certificate (the new CA directory's ca.pem).")
    var file: String

    func run() async throws {
        let configuration = try global.loadConfiguration()
        let path = TrustedCAFile.path(clusterDirectory: ClusterPaths.identityDirectory(stateDirectory: configuration.stateDirectory))
        let file = file
        let (certificate, added) = try clusterCommand { () throws(ClusterTrustError) -> (Certificate, Bool) in
            let certificate = try TrustedCAFile.readOne(file)
            return (certificate, try TrustedCAFile.add(certificate, to: path))
        }
        print(added
            ? "now trusting cluster CA \(TrustedCAFile.fingerprint(certificate)) (\(certificate.subject)) besides this node's own, in \(path)"
            : "cluster CA \(TrustedCAFile.fingerprint(certificate)) is already trusted here")
    }
}

struct ClusterUntrustCA: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "untrust-ca",
        abstract: "Stop trusting an extra cluster CA (the end of a CA rotation).",
        discussion: """
        Removes the CA with this SHA-256 fingerprint (as 'cluster show' prints it) from \
        <state_dir>/cluster/trusted-cas.pem. The running daemon refuses that CA's certificates at once, also on \
        connections already open. This node's own identity's CA cannot be removed this way.

        Example:
          certkeeper cluster untrust-ca AB:CD:...:EF
        """
    )

    @OptionGroup var global: GlobalOptions

    @Argument(help: "The CA's SHA-256 fingerprint.")
    var fingerprint: String

    func run() async throws {
        let configuration = try global.loadConfiguration()
        let path = TrustedCAFile.path(clusterDirectory: ClusterPaths.identityDirectory(stateDirectory: configuration.stateDirectory))
        let fingerprint = fingerprint
        let removed = try clusterCommand { () throws(ClusterTrustError) -> Bool in try TrustedCAFile.remove(fingerprint: fingerprint, from: path) }
        guard removed else {
            throw CommandFailure.failure("\(path): no extra trusted CA has fingerprint \(fingerprint) (see certkeeper cluster show)")
        }
        print("no longer trusting cluster CA \(fingerprint)")
    }
}

/// Where this node's identity is installed. One place, so the configuration's `cluster.identity` override can be
/// honoured here once it exists.
/// This node's identity file: `cluster.identity` when configured, else `<state_dir>/cluster/identity.pem`.
private func installedIdentityPath(_ configuration: CertkeeperConfiguration) -> String {
    configuration.cluster?.identityFile(stateDirectory: configuration.stateDirectory)
        ?? ClusterPaths.identityPath(stateDirectory: configuration.stateDirectory)
}

/// Runs cluster-trust work, mapping its errors to the documented exit codes: bad names, addresses or validity
/// are usage errors (2); everything else is a failure (1).
private func clusterCommand<T>(_ body: () throws(ClusterTrustError) -> T) throws(CommandFailure) -> T {
    do {
        return try body()
    } catch {
        switch error.code {
        case .invalidName, .invalidAddress, .invalidValidity: throw CommandFailure.usage([error.description])
        default: throw CommandFailure.failure(error.description)
        }
    }
}
