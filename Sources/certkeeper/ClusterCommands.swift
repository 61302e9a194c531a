import ArgumentParser
import ClusterTrust
import CertkeeperConfig
import Foundation

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
        """,
        subcommands: [ClusterInit.self, ClusterAddNode.self, ClusterJoin.self, ClusterShow.self]
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
        let identity = try clusterCommand { () throws(ClusterTrustError) in
            let ca = try ClusterCA.load(directory: directory)
            var parsed: [NodeAddress] = []
            for address in addresses { parsed.append(try NodeAddress(parsing: address)) }
            let identity = try ca.issueIdentity(nodeName: nodeName, addresses: parsed, validity: TimeInterval(days) * 86400)
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
        try clusterCommand { () throws(ClusterTrustError) in try identity.write(to: destination, replacing: force) }
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
