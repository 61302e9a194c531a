import Foundation

/// A running Pebble ACME server (Debian's `pebble` 2.4) plus `pebble-challtestsrv` as its DNS, on free loopback
/// ports, with its own TLS certificate from a ``TestCA``.
///
/// ```swift
/// let pebble = try await PebbleServer.start()
/// do { /* talk to pebble.directoryURL trusting pebble.caBundlePath */ } catch { await pebble.stop(); throw error }
/// await pebble.stop()
/// ```
///
/// challtestsrv answers every A query with 127.0.0.1 (no AAAA), so Pebble validates http-01 challenges against
/// `127.0.0.1:<httpPort>`: a test must serve the challenge there.
public final class PebbleServer: Sendable {
    /// How to configure Pebble's deliberate strictness.
    public struct Options: Sendable {
        /// Percentage of valid nonces Pebble rejects as `badNonce` (`PEBBLE_WFE_NONCEREJECT`).
        public var nonceRejectPercent: Int
        /// Percentage of new orders that reuse a valid authorization (`PEBBLE_AUTHZREUSE`).
        public var authzReusePercent: Int
        /// Skip the random sleep before validation (`PEBBLE_VA_NOSLEEP=1`).
        public var vaNoSleep: Bool
        /// Treat every challenge as valid without checking it (`PEBBLE_VA_ALWAYS_VALID=1`).
        public var alwaysValid: Bool
        /// Run with `-strict` (rejects legacy request forms).
        public var strict: Bool
        /// Lifetime of issued certificates in seconds (`certificateValidityPeriod`); Pebble's default is 5 years.
        public var certificateValidityPeriod: Int?

        /// Creates options; the defaults match lego's CI (strict, 20 % nonce rejection) without validation sleeps.
        public init(
            nonceRejectPercent: Int = 20,
            authzReusePercent: Int = 50,
            vaNoSleep: Bool = true,
            alwaysValid: Bool = false,
            strict: Bool = true,
            certificateValidityPeriod: Int? = nil
        ) {
            self.nonceRejectPercent = nonceRejectPercent
            self.authzReusePercent = authzReusePercent
            self.vaNoSleep = vaNoSleep
            self.alwaysValid = alwaysValid
            self.strict = strict
            self.certificateValidityPeriod = certificateValidityPeriod
        }
    }

    /// What Pebble's `/cert-status-by-serial/<hex>` reports about a certificate it issued.
    public struct CertificateStatus: Sendable, Decodable {
        /// `"Valid"` or `"Revoked"`.
        public let status: String
        /// The serial in hex, as Pebble prints it.
        public let serial: String
        /// The certificate as PEM.
        public let certificatePEM: String
        /// The revocation reason code, when revoked.
        public let reason: Int?
        /// When it was revoked (RFC 3339 text), when revoked.
        public let revokedAt: String?

        enum CodingKeys: String, CodingKey {
            case status = "Status", serial = "Serial", certificatePEM = "Certificate", reason = "Reason"
            case revokedAt = "RevokedAt"
        }
    }

    /// The ACME directory, e.g. `https://127.0.0.1:23456/dir`.
    public let directoryURL: String
    /// PEM file of the root that signed Pebble's TLS certificate: what a client must trust to talk to Pebble.
    public let caBundlePath: String
    /// The port Pebble connects to for http-01 validation; the test's responder must listen on 127.0.0.1 here.
    public let httpPort: Int
    /// The port Pebble connects to for tls-alpn-01 validation.
    public let tlsPort: Int
    /// Pebble's ACME port.
    public let listenPort: Int
    /// Pebble's management port (HTTPS, same certificate).
    public let managementPort: Int
    /// challtestsrv's DNS port (UDP and TCP) that Pebble resolves through.
    public let dnsPort: Int
    /// challtestsrv's management API, e.g. `http://127.0.0.1:23460`.
    public let challtestsrvManagementURL: String
    /// Working directory holding the config, the TLS files and both logs.
    public let directory: TemporaryDirectory

    private let pebble: ManagedProcess
    private let challtestsrv: ManagedProcess

    private init(ports: Ports, directory: TemporaryDirectory, caBundlePath: String,
                 pebble: ManagedProcess, challtestsrv: ManagedProcess) {
        self.directoryURL = "https://127.0.0.1:\(ports.listen)/dir"
        self.caBundlePath = caBundlePath
        self.httpPort = ports.http
        self.tlsPort = ports.tls
        self.listenPort = ports.listen
        self.managementPort = ports.management
        self.dnsPort = ports.dns
        self.challtestsrvManagementURL = "http://127.0.0.1:\(ports.challtestsrvManagement)"
        self.directory = directory
        self.pebble = pebble
        self.challtestsrv = challtestsrv
    }

    private struct Ports {
        let listen, management, http, tls, dns, challtestsrvManagement: Int
        /// Fixed ports, for a network namespace of its own where nothing else listens.
        static let inNamespace = Ports(listen: 14000, management: 15000, http: 5002, tls: 5001, dns: 8053, challtestsrvManagement: 8055)
        init(listen: Int, management: Int, http: Int, tls: Int, dns: Int, challtestsrvManagement: Int) {
            (self.listen, self.management, self.http, self.tls, self.dns, self.challtestsrvManagement) =
                (listen, management, http, tls, dns, challtestsrvManagement)
        }
        init(_ allocator: PortAllocator) throws {
            let ports = try allocator.allocate(count: 6)
            (listen, management, http, tls, dns, challtestsrvManagement) =
                (ports[0], ports[1], ports[2], ports[3], ports[4], ports[5])
        }
    }

    /// Starts challtestsrv and Pebble and waits (at most `timeout` seconds per attempt) until both answer.
    /// A start that fails because another process grabbed a port is retried with new ports, three times at most.
    /// - Parameters:
    ///   - options: Pebble's strictness knobs.
    ///   - ports: Where free ports come from.
    ///   - timeout: Seconds to wait for each program to listen.
    /// - Throws: ``TestSupportError`` with the tail of the failing program's log.
    public static func start(
        options: Options = Options(),
        ports allocator: PortAllocator = .shared,
        timeout: Double = 20
    ) async throws -> PebbleServer {
        var lastError: any Error = TestSupportError.noFreePort(attempts: 0)
        for _ in 0..<3 {
            let directory = try TemporaryDirectory(name: "pebble")
            do {
                return try await startOnce(options: options, ports: try Ports(allocator), directory: directory,
                                           timeout: timeout)
            } catch let error as TestSupportError {
                directory.remove()
                lastError = error
                // Only a program dying early suggests a port race worth retrying.
                guard case .exitedEarly = error else { throw error }
            }
        }
        throw lastError
    }

    /// Starts Pebble and challtestsrv inside a test network node, on that node's loopback and fixed ports
    /// (``directoryURL`` is then `https://127.0.0.1:14000/dir` inside the node, the same in every node).
    /// Only the node's own processes can reach it; the management helpers of this type do not work on it.
    /// - Parameters:
    ///   - node: The namespace to run in.
    ///   - network: The node's network.
    ///   - options: Pebble's strictness knobs.
    ///   - timeout: Seconds to wait for each program to listen.
    public static func start(in node: TestNode, of network: TestNetwork, options: Options = Options(), timeout: Double = 20) async throws -> PebbleServer {
        let directory = try TemporaryDirectory(name: "pebble-\(node.index)")
        let launcher = Launcher(
            spawn: { name, executable, arguments, environment, logDirectory in
                try network.spawn(on: node, name: name, executable: executable, arguments: arguments, environment: environment, logDirectory: logDirectory)
            },
            waitForPort: { process, port, timeout in
                try await network.waitForTCPPort(from: node, host: "127.0.0.1", port: port, process: process, timeout: timeout)
            })
        do {
            return try await startOnce(options: options, ports: .inNamespace, directory: directory, timeout: timeout, launcher: launcher)
        } catch {
            directory.remove()
            throw error
        }
    }

    /// How the two programs are started and waited for: on the host, or inside a network namespace.
    private struct Launcher: Sendable {
        var spawn: @Sendable (_ name: String, _ executable: String, _ arguments: [String], _ environment: [String: String], _ logDirectory: String) throws -> ManagedProcess
        var waitForPort: @Sendable (_ process: ManagedProcess, _ port: Int, _ timeout: Double) async throws -> Void

        static let host = Launcher(
            spawn: { name, executable, arguments, environment, logDirectory in
                try ManagedProcess.start(name: name, executable: executable, arguments: arguments, environment: environment, logDirectory: logDirectory)
            },
            waitForPort: { process, port, timeout in try await process.waitForTCPPort(port: port, timeout: timeout) })
    }

    private static func startOnce(options: Options, ports: Ports, directory: TemporaryDirectory,
                                  timeout: Double, launcher: Launcher = .host) async throws -> PebbleServer {
        let identity = try LocalhostServerIdentity(commonName: "Pebble TLS Test Root")
        let files = try identity.writePEMFiles(to: directory.path)
        var config: [String: Any] = [
            "listenAddress": "127.0.0.1:\(ports.listen)",
            "managementListenAddress": "127.0.0.1:\(ports.management)",
            "certificate": files["cert.pem"]!,
            "privateKey": files["privkey.pem"]!,
            "httpPort": ports.http,
            "tlsPort": ports.tls,
            "ocspResponderURL": "",
            "externalAccountBindingRequired": false,
        ]
        if let period = options.certificateValidityPeriod { config["certificateValidityPeriod"] = period }
        let configData = try JSONSerialization.data(withJSONObject: ["pebble": config], options: [.sortedKeys])
        let configPath = try directory.write(String(decoding: configData, as: UTF8.self), to: "pebble-config.json")

        let challtestsrv = try launcher.spawn(
            "pebble-challtestsrv", "/usr/bin/pebble-challtestsrv",
            [
                "-dns01", "127.0.0.1:\(ports.dns)", "-management", "127.0.0.1:\(ports.challtestsrvManagement)",
                "-http01", "", "-https01", "", "-tlsalpn01", "",
                "-defaultIPv4", "127.0.0.1", "-defaultIPv6", "",
            ],
            [:], directory.path)
        do {
            try await launcher.waitForPort(challtestsrv, ports.challtestsrvManagement, timeout)
            try await launcher.waitForPort(challtestsrv, ports.dns, timeout)
        } catch {
            await challtestsrv.stop()
            throw error
        }

        var arguments = ["-config", configPath, "-dnsserver", "127.0.0.1:\(ports.dns)"]
        if options.strict { arguments.append("-strict") }
        let environment = [
            "PEBBLE_WFE_NONCEREJECT": String(options.nonceRejectPercent),
            "PEBBLE_AUTHZREUSE": String(options.authzReusePercent),
            "PEBBLE_VA_NOSLEEP": options.vaNoSleep ? "1" : "0",
            "PEBBLE_VA_ALWAYS_VALID": options.alwaysValid ? "1" : "0",
        ]
        let pebble: ManagedProcess
        do {
            pebble = try launcher.spawn("pebble", "/usr/bin/pebble", arguments, environment, directory.path)
        } catch {
            await challtestsrv.stop()
            throw error
        }
        let server = PebbleServer(ports: ports, directory: directory, caBundlePath: files["ca.pem"]!,
                                  pebble: pebble, challtestsrv: challtestsrv)
        do {
            try await launcher.waitForPort(pebble, ports.listen, timeout)
            try await launcher.waitForPort(pebble, ports.management, timeout)
        } catch {
            await server.stopProcesses()
            throw error
        }
        return server
    }

    /// Whether both programs are still running.
    public var isRunning: Bool { pebble.isRunning && challtestsrv.isRunning }

    /// The process ids of Pebble and challtestsrv (to check that ``stop()`` left nothing behind).
    public var processIdentifiers: [Int32] { [pebble.processIdentifier, challtestsrv.processIdentifier] }

    /// The PEM of Pebble's current issuing root (`/roots/0`), which signs the chain of issued certificates.
    /// - Throws: ``TestSupportError/http(url:reason:)``.
    public func rootPEMs() async throws -> String {
        try await managementPEM(path: "/roots/0")
    }

    /// The PEM of Pebble's current intermediate (`/intermediates/0`).
    /// - Throws: ``TestSupportError/http(url:reason:)``.
    public func intermediatePEM() async throws -> String {
        try await managementPEM(path: "/intermediates/0")
    }

    /// Revocation status of a certificate Pebble issued (`/cert-status-by-serial/<hex>`).
    /// - Parameter serialHex: The serial in hex, any case; a `0x` prefix, colons and leading zeros are ignored.
    /// - Throws: ``TestSupportError/http(url:reason:)``, also when Pebble does not know the serial (404).
    public func certStatus(serialHex: String) async throws -> CertificateStatus {
        var hex = serialHex.lowercased().replacingOccurrences(of: ":", with: "")
        if hex.hasPrefix("0x") { hex.removeFirst(2) }
        let url = "https://127.0.0.1:\(managementPort)/cert-status-by-serial/\(hex)"
        let response = try await Curl.request("GET", url, caBundlePath: caBundlePath)
        guard response.status == 200 else {
            throw TestSupportError.http(url: url, reason: "status \(response.status)")
        }
        do {
            return try JSONDecoder().decode(CertificateStatus.self, from: Data(response.body.utf8))
        } catch {
            throw TestSupportError.http(url: url, reason: "undecodable JSON: \(error)")
        }
    }

    /// Makes challtestsrv answer TXT queries for `host` with `value` (for dns-01).
    /// - Parameters:
    ///   - host: E.g. `_acme-challenge.example.org`; a trailing dot is added if missing.
    ///   - value: The TXT record value.
    /// - Throws: ``TestSupportError/http(url:reason:)``.
    public func setTXT(host: String, value: String) async throws {
        try await challtestsrvPost("/set-txt", ["host": Self.fqdn(host), "value": value])
    }

    /// Removes the TXT records for `host`.
    /// - Throws: ``TestSupportError/http(url:reason:)``.
    public func clearTXT(host: String) async throws {
        try await challtestsrvPost("/clear-txt", ["host": Self.fqdn(host)])
    }

    /// Makes challtestsrv answer A queries for `host` with `ip` instead of the default 127.0.0.1.
    /// - Throws: ``TestSupportError/http(url:reason:)``.
    public func addA(host: String, ip: String) async throws {
        try await challtestsrvPost("/add-a", ["host": Self.fqdn(host), "addresses": [ip]])
    }

    /// Removes the A records added for `host`.
    /// - Throws: ``TestSupportError/http(url:reason:)``.
    public func clearA(host: String) async throws {
        try await challtestsrvPost("/clear-a", ["host": Self.fqdn(host)])
    }

    /// The last lines of both logs, for failure messages.
    public func logTail(lines: Int = 20) -> String {
        "pebble:\n\(pebble.logTail(lines: lines))\npebble-challtestsrv:\n\(challtestsrv.logTail(lines: lines))"
    }

    /// Stops both programs (SIGTERM, SIGKILL after 3 s) and deletes the working directory. Safe to call twice.
    public func stop() async {
        await stopProcesses()
        directory.remove()
    }

    private func stopProcesses() async {
        await pebble.stop()
        await challtestsrv.stop()
    }

    private func managementPEM(path: String) async throws -> String {
        let url = "https://127.0.0.1:\(managementPort)\(path)"
        let response = try await Curl.request("GET", url, caBundlePath: caBundlePath)
        guard response.status == 200, response.body.contains("-----BEGIN CERTIFICATE-----") else {
            throw TestSupportError.http(url: url, reason: "status \(response.status), no PEM certificate in body")
        }
        return response.body
    }

    private func challtestsrvPost(_ path: String, _ body: [String: Any]) async throws {
        let url = challtestsrvManagementURL + path
        let json = String(decoding: try JSONSerialization.data(withJSONObject: body, options: [.sortedKeys]),
                          as: UTF8.self)
        let response = try await Curl.request("POST", url, headers: ["Content-Type": "application/json"], body: json)
        guard response.status == 200 else {
            throw TestSupportError.http(url: url, reason: "status \(response.status): \(response.body)")
        }
    }

    private static func fqdn(_ host: String) -> String { host.hasSuffix(".") ? host : host + "." }
}
