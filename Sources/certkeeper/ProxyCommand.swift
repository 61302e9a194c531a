import ArgumentParser
import CertProxy
import Durations
import CertkeeperConfig
import Foundation
import Logging
import NIOCore
import ServiceLifecycle
import UnixSignals

struct Proxy: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run a TLS-terminating TCP proxy with no configuration file.",
        discussion: """
        Terminates TLS 1.2/1.3 on --listen with the certificates in the --cert bundles (full chain + key, \
        HAProxy's format; the first is the default for clients without SNI or with an unknown name), and relays \
        each connection round-robin to the --to addresses. A bundle that changes on disk (written in place or \
        renamed into place) is served to new handshakes at once, after its key and chain are checked; open \
        connections are untouched, and a broken bundle is refused while the last good one keeps serving. \
        SIGTERM or SIGINT stops accepting and drains open connections for --grace.

        Examples:
          certkeeper proxy --listen 127.0.0.1:8443 --cert /var/lib/certkeeper/live/web/bundle.pem --to 127.0.0.1:8080
          certkeeper proxy --listen 0.0.0.0:8883 --cert mqtt.pem --to 10.0.0.1:1883 --to 10.0.0.2:1883 --threads 2
          certkeeper proxy --listen 0.0.0.0:443 --cert web.pem --to 127.0.0.1:8080 --alpn h2,http/1.1 --idle-timeout 60
        """
    )

    @Option(name: .long, help: ArgumentHelp("Address to accept TLS on.", valueName: "host:port"))
    var listen: String

    @Option(name: .long, help: ArgumentHelp("A PEM bundle: full chain then private key. Repeat for SNI.", valueName: "path"))
    var cert: [String] = []

    @Option(name: .long, help: ArgumentHelp("A backend address. Repeat for round-robin.", valueName: "host:port"))
    var to: [String] = []

    @Option(name: .long, help: "Event loop threads (default: the number of cores).")
    var threads: Int = System.coreCount

    @Option(name: .long, help: "Seconds open connections may continue after SIGTERM.")
    var grace: Int = 30

    @Option(name: .long, help: ArgumentHelp("ALPN protocols to offer, in preference order (e.g. h2,http/1.1); none by default.", valueName: "list"))
    var alpn: String?

    @Option(name: .long, help: ArgumentHelp("Seconds a client may take to complete the TLS handshake.", valueName: "seconds"))
    var handshakeTimeout: Double = 10

    @Option(name: .long, help: ArgumentHelp("Seconds to wait for a backend connection before closing the client.", valueName: "seconds"))
    var connectTimeout: Double = 5

    @Option(name: .long, help: ArgumentHelp("Seconds without traffic in either direction before a connection is closed.", valueName: "seconds"))
    var idleTimeout: Double = 300

    @Option(name: .long, help: ArgumentHelp("trace, debug, info, notice, warning, error or critical.", valueName: "level"))
    var logLevel: String = "info"

    func validate() throws {
        guard (try? ListenAddress(parsing: listen)) != nil else { throw ValidationError("--listen: '\(listen)' is not host:port") }
        guard !cert.isEmpty else { throw ValidationError("give at least one --cert bundle") }
        guard !to.isEmpty else { throw ValidationError("give at least one --to backend") }
        for backend in to where (try? ListenAddress(parsing: backend)) == nil {
            throw ValidationError("--to: '\(backend)' is not host:port")
        }
        for path in cert where !path.hasPrefix("/") && path.contains("\0") {
            throw ValidationError("--cert: '\(path)' is not a path")
        }
        guard (1...256).contains(threads) else { throw ValidationError("--threads: must be 1 to 256") }
        guard grace >= 0 else { throw ValidationError("--grace: must not be negative") }
        guard Logger.Level(rawValue: logLevel) != nil else { throw ValidationError("--log-level: '\(logLevel)' is not a level") }
        if let alpn {
            for name in alpn.split(separator: ",", omittingEmptySubsequences: false) {
                guard !name.isEmpty, name.utf8.count <= 255, name.allSatisfy({ $0.isASCII && !$0.isWhitespace }) else {
                    throw ValidationError("--alpn: '\(alpn)' is not a comma-separated list of protocol names (e.g. h2,http/1.1)")
                }
            }
        }
        for (flag, value) in [("--handshake-timeout", handshakeTimeout), ("--connect-timeout", connectTimeout), ("--idle-timeout", idleTimeout)] {
            guard value.isFinite, value > 0, value <= 86_400 * 7 else {
                throw ValidationError("\(flag): must be a number of seconds above 0 and at most 604800")
            }
        }
    }

    /// The ALPN list from `--alpn`.
    var applicationProtocols: [String] {
        alpn.map { $0.split(separator: ",").map(String.init) } ?? []
    }

    /// The time limits from the timeout flags.
    var timeouts: ProxyTimeouts {
        func amount(_ seconds: Double) -> TimeAmount { TimeAmount(Duration.clampedSeconds(seconds)) }
        return ProxyTimeouts(handshake: amount(handshakeTimeout), backendConnect: amount(connectTimeout), idle: amount(idleTimeout))
    }

    func run() async throws {
        let level = Logger.Level(rawValue: logLevel) ?? .info
        let logger = Logger(label: "certkeeper") { label in LineLogHandler(label: label, level: level) }
        let listenAddress = try ListenAddress(parsing: listen)
        let backends = try to.map { text in
            let address = try ListenAddress(parsing: text)
            return ProxyBackend(host: address.host, port: address.port)
        }
        let sources = Self.sources(for: cert)
        let certificates = CertificateSet(defaultName: sources.first.flatMap { if case .file(let name, _) = $0 { name } else { nil } })
        let reloader = CertificateReloader(sources: sources, certificates: certificates, logger: logger)
        let refused = reloader.loadAll()
        guard refused.isEmpty else {
            throw CommandFailure.usage(refused.map { "\($0)" })
        }
        let frontend = ProxyFrontend(
            name: "proxy", host: listenAddress.host, port: listenAddress.port,
            tls: ProxyTLSSettings(applicationProtocols: applicationProtocols), backends: backends, timeouts: timeouts)
        let service = ProxyService(frontends: [frontend], certificates: certificates, reloader: reloader, threads: threads, grace: .seconds(grace), logger: logger)
        let group = ServiceGroup(configuration: .init(
            services: [.init(service: service)],
            gracefulShutdownSignals: [.sigterm, .sigint],
            logger: logger
        ))
        do {
            try await group.run()
        } catch {
            throw CommandFailure.failure("\(error)")
        }
    }

    /// One certificate source per bundle, named after the file (`web.pem` → `web`), made unique by position.
    static func sources(for paths: [String]) -> [CertificateSource] {
        var used: Set<String> = []
        return paths.enumerated().map { index, path in
            let absolute = path.hasPrefix("/") ? path : FileManager.default.currentDirectoryPath + "/" + path
            var name = ((absolute as NSString).lastPathComponent as NSString).deletingPathExtension
            if name.isEmpty || used.contains(name) { name = "\(name)-\(index + 1)" }
            used.insert(name)
            return .file(name: name, path: absolute)
        }
    }
}
