import CertStore
import CertkeeperTestSupport
import Foundation
import Logging
import Testing
import X509

#if canImport(Glibc)
import Glibc
#endif

/// The shipped HAProxy deploy hooks (Hooks/haproxy-hot-update.sh, Hooks/haproxy-reload.sh) against Debian's real
/// `haproxy` (2.6, master-worker mode as Debian's unit runs it): a TLS frontend in `mode tcp` relaying to an echo
/// backend, certificates from a real ``CertificateStore``, hooks run with the environment certkeeper gives them.
/// Needs the Debian packages `haproxy`, `socat` and `openssl`.
@Suite("HAProxy deploy hooks against real HAProxy", .serialized)
struct HAProxyHookTests {
    @Test("hot update: new handshakes get the new serial, no reload, an open connection keeps passing data; refusals leave HAProxy and the file as they were")
    func hotUpdate() async throws {
        try await HAProxyFixture.run(name: "haproxy-hot-update") { haproxy in
            let first = try haproxy.issue()
            try await haproxy.start(serving: first)
            #expect(try await haproxy.handshakeSerial() == hexSerial(first.certificate))

            let client = try await haproxy.openClient(name: "long-lived-client")
            #expect(try await client.echoes("before the update"), "no echo before the update: \(client.logTail())")
            #expect(try client.servedSerial() == hexSerial(first.certificate))
            let masterBefore = try haproxy.masterPid()
            let workerBefore = try await haproxy.workerPid()

            let second = try haproxy.issue()
            let meta = try haproxy.install(second)
            let secondBundle = try #require(FileManager.default.contents(atPath: meta.bundlePath(in: haproxy.store)))
            let result = try await haproxy.runHook("haproxy-hot-update.sh", meta: meta)
            #expect(result.exitCode == 0, "hook failed: \(result.stderr)")
            #expect(result.stdout == "haproxy-hot-update: updated \(haproxy.certificatePath) in HAProxy at \(haproxy.adminSocket) (no reload)\n")
            #expect(result.stderr == "")

            // Committed means served: no waiting, no reload.
            #expect(try await haproxy.handshakeSerial() == hexSerial(second.certificate))
            #expect(try haproxy.masterPid() == masterBefore)
            #expect(try await haproxy.workerPid() == workerBefore, "HAProxy started a new worker: \(haproxy.logTail())")
            #expect(haproxy.isRunning)
            #expect(FileManager.default.contents(atPath: haproxy.certificatePath) == secondBundle)
            #expect(try mode(haproxy.certificatePath) == 0o600)
            #expect(try haproxy.certificateDirectoryEntries() == [haproxy.certificateFileName])

            // The connection opened before the update is the same one (first certificate) and still relays.
            #expect(try await client.echoes("after the update"), "the open connection stopped relaying: \(client.logTail())")
            #expect(client.isRunning)
            #expect(try client.servedSerial() == hexSerial(first.certificate))

            // A path HAProxy does not know: refused in one line, nothing left behind, the second certificate stays.
            let third = try haproxy.issue()
            let thirdMeta = try haproxy.install(third)
            let unknownPath = haproxy.certificateDirectory + "/unknown.example.org.pem"
            let unknown = try await haproxy.runHook("haproxy-hot-update.sh", meta: thirdMeta, extra: ["HAPROXY_CERT_PATH": unknownPath])
            #expect(unknown.exitCode == 1)
            #expect(unknown.stdout == "")
            #expect(unknown.stderr.split(separator: "\n").count == 1, "not one line: \(unknown.stderr)")
            #expect(unknown.stderr.hasPrefix("haproxy-hot-update: HAProxy refused set ssl cert \(unknownPath): Can't replace a certificate which is not referenced by the configuration!"), "\(unknown.stderr)")
            #expect(!FileManager.default.fileExists(atPath: unknownPath))
            #expect(try await haproxy.handshakeSerial() == hexSerial(second.certificate))

            // A bundle whose key does not match its certificate is refused before HAProxy or the file see it
            // (HAProxy 2.6 would refuse it only at commit, and drop an open connection doing so).
            let mismatched = try haproxy.directory.write(third.fullChainPEM + second.privateKeyPEM, to: "mismatched/bundle.pem")
            let refused = try await haproxy.runHook("haproxy-hot-update.sh", meta: thirdMeta, extra: ["CERTKEEPER_BUNDLE": mismatched])
            #expect(refused.exitCode == 1)
            #expect(refused.stderr == "haproxy-hot-update: the private key in bundle \(mismatched) does not match its first certificate\n")
            #expect(FileManager.default.contents(atPath: haproxy.certificatePath) == secondBundle, "the refused bundle was written")
            #expect(try mode(haproxy.certificatePath) == 0o600)
            #expect(try haproxy.certificateDirectoryEntries() == [haproxy.certificateFileName])
            #expect(try await haproxy.handshakeSerial() == hexSerial(second.certificate))
            #expect(try await haproxy.adminCommand("show ssl cert").contains("# transaction") == false, "a transaction was left open")

            #expect(try haproxy.masterPid() == masterBefore)
            #expect(try await haproxy.workerPid() == workerBefore)
            #expect(try await client.echoes("after the refusals"), "the open connection stopped relaying: \(client.logTail())")
        }
    }

    @Test("graceful reload: the new worker serves the new serial, a connection opened before keeps passing data on the old worker")
    func gracefulReload() async throws {
        try await HAProxyFixture.run(name: "haproxy-reload") { haproxy in
            let first = try haproxy.issue()
            try await haproxy.start(serving: first)
            #expect(try await haproxy.handshakeSerial() == hexSerial(first.certificate))

            let client = try await haproxy.openClient(name: "long-lived-client")
            #expect(try await client.echoes("before the reload"), "no echo before the reload: \(client.logTail())")
            let master = try haproxy.masterPid()
            let oldWorker = try await haproxy.workerPid()

            let second = try haproxy.issue()
            let meta = try haproxy.install(second)
            let result = try await haproxy.runHook("haproxy-reload.sh", meta: meta)
            #expect(result.exitCode == 0, "hook failed: \(result.stderr)")
            #expect(result.stdout == "haproxy-reload: sent SIGUSR2 to HAProxy master \(master) after installing \(haproxy.certificatePath)\n")
            #expect(FileManager.default.contents(atPath: haproxy.certificatePath) == FileManager.default.contents(atPath: meta.bundlePath(in: haproxy.store)))
            #expect(try mode(haproxy.certificatePath) == 0o600)
            #expect(try haproxy.certificateDirectoryEntries() == [haproxy.certificateFileName])

            let served = await haproxy.eventually(timeout: 30) {
                (try? await haproxy.handshakeSerial()) == hexSerial(second.certificate)
            }
            #expect(served, "the new serial is not served after the reload: \(haproxy.logTail())")
            let newWorker = await haproxy.eventually(timeout: 30) {
                if let pid = try? await haproxy.workerPid() { return pid != oldWorker }
                return false
            }
            #expect(newWorker, "no new worker answers the admin socket: \(haproxy.logTail())")
            #expect(try haproxy.masterPid() == master)

            // The old worker drains: it keeps the open connection, which still relays on the first certificate.
            #expect(processIsAlive(oldWorker), "the old worker exited with a connection open: \(haproxy.logTail())")
            #expect(try await client.echoes("after the reload"), "the connection opened before the reload stopped relaying: \(client.logTail())")
            #expect(client.isRunning)
            #expect(try client.servedSerial() == hexSerial(first.certificate))

            // Once that connection closes, the old worker exits.
            await client.close()
            let drained = await haproxy.eventually(timeout: 30) { !processIsAlive(oldWorker) }
            #expect(drained, "the old worker \(oldWorker) is still running after its last connection closed: \(haproxy.logTail())")
            #expect(try await haproxy.handshakeSerial() == hexSerial(second.certificate))
        }
    }
}

// MARK: - Fixture

/// One real HAProxy (master-worker, foreground, pid file) with a TLS frontend on a high port whose `crt` is a
/// directory, relaying in `mode tcp` to a `socat` echo server; the admin socket at `level admin`; a certificate
/// store and CA to make the bundles the hooks deploy. Everything lives in one temporary directory.
final class HAProxyFixture {
    static let haproxy = "/usr/sbin/haproxy"
    static let socat = "/usr/bin/socat"
    static let openssl = "/usr/bin/openssl"
    static let hooksDirectory = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Hooks").path

    let serverName = "mqtt.example.org"
    let certificateName = "mqtt"
    let directory: TemporaryDirectory
    let store: CertStore.CertificateStore
    let root: TestCA
    let ca: TestCA
    let rootPath: String
    let frontendPort: Int
    let backendPort: Int
    var certificateDirectory: String { directory.appending("certs") }
    var certificateFileName: String { "\(certificateName).pem" }
    var certificatePath: String { "\(certificateDirectory)/\(certificateFileName)" }
    var adminSocket: String { directory.appending("admin.sock") }
    var pidFile: String { directory.appending("haproxy.pid") }

    private var haproxyProcess: ManagedProcess?
    private var processes: [ManagedProcess] = []
    private var clients: [LongLivedTLSClient] = []

    private init(name: String) throws {
        directory = try TemporaryDirectory(name: name)
        store = CertStore.CertificateStore(root: directory.appending("state"), logger: Logger(label: "haproxy-hook-test"))
        root = try TestCA.make(commonName: "haproxy hook test root")
        ca = try root.issueIntermediate(commonName: "haproxy hook test intermediate")
        rootPath = try directory.write(root.certificatePEM, to: "root.pem")
        let ports = try PortAllocator.shared.allocate(count: 2)
        frontendPort = ports[0]
        backendPort = ports[1]
    }

    /// Runs `body` with a fresh fixture; stops every process it started and removes its directory afterwards,
    /// also when `body` throws.
    static func run(name: String, _ body: (HAProxyFixture) async throws -> Void) async throws {
        for tool in [haproxy, socat, openssl] {
            try #require(FileManager.default.isExecutableFile(atPath: tool), "\(tool) is missing: apt-get install haproxy socat openssl")
        }
        let fixture = try HAProxyFixture(name: name)
        do {
            try await body(fixture)
        } catch {
            await fixture.stop()
            throw error
        }
        await fixture.stop()
    }

    /// A new leaf for ``serverName`` from the test CA (a fresh random serial each time).
    func issue() throws -> TestCertificate {
        try ca.issueLeaf(dnsNames: [serverName])
    }

    /// Installs `leaf` into the store as ``certificateName``, as a renewal would.
    func install(_ leaf: TestCertificate) throws -> CertificateMeta {
        let bundle = CertificateBundle(certificatePEM: leaf.certificatePEM, chainPEM: leaf.chainPEM, privateKeyPEM: leaf.privateKeyPEM)
        let verified = try BundleVerifier().verify(bundle, expectedDomains: [serverName], now: Date())
        return try store.install(verified, name: certificateName, issuedBy: "haproxy-hook-test", now: Date())
    }

    /// Installs `leaf`, copies its bundle where HAProxy's `crt` points, starts the echo backend and HAProxy, and
    /// waits until the frontend and the admin socket answer.
    func start(serving leaf: TestCertificate) async throws {
        let meta = try install(leaf)
        try FileManager.default.createDirectory(atPath: certificateDirectory, withIntermediateDirectories: true)
        try FileManager.default.copyItem(atPath: meta.bundlePath(in: store), toPath: certificatePath)
        guard chmod(certificatePath, 0o600) == 0 else { throw TestSupportError.fileSystem(operation: "chmod", path: certificatePath, reason: "errno \(errno)") }
        let configuration = """
            global
                stats socket \(adminSocket) mode 600 level admin
                stats timeout 2m

            defaults
                mode tcp
                timeout connect 5s
                timeout client 10m
                timeout server 10m

            frontend mqtt
                bind 127.0.0.1:\(frontendPort) ssl crt \(certificateDirectory)/
                default_backend echo

            backend echo
                server echo 127.0.0.1:\(backendPort)

            """
        let configPath = try directory.write(configuration, to: "haproxy.cfg")
        let backend = try ManagedProcess.start(
            name: "echo-backend", executable: Self.socat,
            arguments: ["TCP-LISTEN:\(backendPort),bind=127.0.0.1,reuseaddr,fork", "PIPE"],
            logDirectory: directory.path)
        processes.append(backend)
        try await backend.waitForTCPPort(port: backendPort)
        let haproxy = try ManagedProcess.start(
            name: "haproxy", executable: Self.haproxy,
            arguments: ["-W", "-db", "-f", configPath, "-p", pidFile],
            logDirectory: directory.path)
        haproxyProcess = haproxy
        processes.append(haproxy)
        try await haproxy.waitForTCPPort(port: frontendPort, timeout: 30)
        let answered = await eventually(timeout: 30) { (try? await self.workerPid()) != nil }
        if !answered {
            throw TestSupportError.timedOut(what: "HAProxy's admin socket \(adminSocket)", seconds: 30, logTail: haproxy.logTail())
        }
    }

    /// Whether the HAProxy master is still running.
    var isRunning: Bool { haproxyProcess?.isRunning ?? false }

    /// The last lines of HAProxy's output, for failure messages.
    func logTail() -> String { haproxyProcess?.logTail() ?? "" }

    /// The master's pid, from the pid file (`-p`), which is what haproxy-reload.sh signals.
    func masterPid() throws -> Int32 {
        let text = try String(contentsOfFile: pidFile, encoding: .utf8)
        guard let pid = Int32(text.split(separator: "\n").first.map(String.init) ?? "") else {
            throw TestSupportError.fileSystem(operation: "parse pid", path: pidFile, reason: "'\(text)'")
        }
        return pid
    }

    /// The pid of the worker answering the admin socket (`show info`, `Pid:`).
    func workerPid() async throws -> Int32 {
        let info = try await adminCommand("show info")
        guard let line = info.split(separator: "\n").first(where: { $0.hasPrefix("Pid: ") }),
              let pid = Int32(line.dropFirst("Pid: ".count)) else {
            throw TestSupportError.timedOut(what: "a Pid line from show info", seconds: 0, logTail: info)
        }
        return pid
    }

    /// Sends one command to the admin socket and returns the reply.
    func adminCommand(_ command: String) async throws -> String {
        let result = try await OneShotProcess.run(
            executable: "/bin/sh",
            arguments: ["-c", "printf '%s\\n' \"$1\" | \(Self.socat) -t 10 -T 10 STDIO UNIX-CONNECT:\"$2\"", "admin", command, adminSocket],
            timeout: 30)
        guard result.exitCode == 0 else {
            throw TestSupportError.timedOut(what: "admin command '\(command)'", seconds: 0, logTail: result.stderr)
        }
        return result.stdout
    }

    /// The serial a fresh handshake gets for ``serverName``, verified against the test root with the hostname
    /// checked; "" when the handshake or the verification fails.
    func handshakeSerial() async throws -> String {
        let script = "\(Self.openssl) s_client -connect 127.0.0.1:\(frontendPort) -servername \(serverName) -CAfile \(rootPath) -verify_return_error -verify_hostname \(serverName) </dev/null 2>/dev/null | \(Self.openssl) x509 -noout -serial"
        let result = try await OneShotProcess.run(executable: "/bin/sh", arguments: ["-c", script], timeout: 30)
        return normalised(result.stdout.replacingOccurrences(of: "serial=", with: ""))
    }

    /// Opens a TLS connection that stays open until ``LongLivedTLSClient/close()`` or the end of the test.
    func openClient(name: String) async throws -> LongLivedTLSClient {
        let client = try LongLivedTLSClient.connect(
            name: name, port: frontendPort, serverName: serverName, rootPath: rootPath, directory: directory)
        clients.append(client)
        return client
    }

    /// Runs `Hooks/<script>` with the environment certkeeper gives deploy hooks for `meta` (see
    /// `DeployEvent.environment`), plus the operator settings pointing at this HAProxy, plus `extra`.
    func runHook(_ script: String, meta: CertificateMeta, extra: [String: String] = [:]) async throws -> (exitCode: Int32, stdout: String, stderr: String) {
        let live = store.liveDirectory(name: meta.name)
        let domains = meta.domains.joined(separator: " ")
        var environment: [String: String] = [
            "PATH": "/usr/sbin:/usr/bin:/sbin:/bin",
            "RENEWED_LINEAGE": live,
            "RENEWED_DOMAINS": domains,
            "CERTKEEPER_EVENT": "deploy",
            "CERTKEEPER_CERT_NAME": meta.name,
            "CERTKEEPER_LIVE_DIR": live,
            "CERTKEEPER_DOMAINS": domains,
            "CERTKEEPER_SERIAL": meta.serial,
            "CERTKEEPER_NOT_AFTER": meta.notAfter.formatted(.iso8601),
            "CERTKEEPER_ISSUED_BY": meta.issuedBy,
            "CERTKEEPER_CERT": "\(live)/cert.pem",
            "CERTKEEPER_CHAIN": "\(live)/chain.pem",
            "CERTKEEPER_FULLCHAIN": "\(live)/fullchain.pem",
            "CERTKEEPER_PRIVKEY": "\(live)/privkey.pem",
            "CERTKEEPER_BUNDLE": meta.bundlePath(in: store),
            // Operator settings: this HAProxy, and never systemd (the machine's haproxy service is not ours).
            "HAPROXY_CERT_DIR": certificateDirectory,
            "HAPROXY_CERT_PATH": "",
            "HAPROXY_SOCKET": adminSocket,
            "HAPROXY_SOCKET_TIMEOUT": "10",
            "HAPROXY_RELOAD_METHOD": "pidfile",
            "HAPROXY_PIDFILE": pidFile,
        ]
        environment.merge(extra) { _, new in new }
        return try await OneShotProcess.run(executable: Self.hooksDirectory + "/" + script, environment: environment, timeout: 60)
    }

    /// The names in the certificate directory (temporary files and backups must not stay behind).
    func certificateDirectoryEntries() throws -> [String] {
        try FileManager.default.contentsOfDirectory(atPath: certificateDirectory).sorted()
    }

    /// Polls `condition` every 100 ms for at most `timeout` seconds.
    func eventually(timeout: Double, _ condition: () async -> Bool) async -> Bool {
        let deadline = ContinuousClock.now + .seconds(timeout)
        while ContinuousClock.now < deadline {
            if await condition() { return true }
            try? await Task.sleep(for: .milliseconds(100))
        }
        return await condition()
    }

    /// Closes the clients, then stops HAProxy (master and workers, one process group) and the backend.
    func stop() async {
        for client in clients { await client.close() }
        for process in processes.reversed() { await process.stop() }
        directory.remove()
    }
}

extension CertificateMeta {
    /// `live/<name>/bundle.pem` in `store`.
    func bundlePath(in store: CertStore.CertificateStore) -> String {
        store.liveDirectory(name: name) + "/bundle.pem"
    }
}

// MARK: - Long-lived client

/// `openssl s_client` holding one TLS connection open: lines written to its FIFO go to the server, and what the
/// server sends (plus s_client's report, with the server certificate) lands in its log.
final class LongLivedTLSClient {
    private let process: ManagedProcess
    private let input: Int32
    private var sent = 0
    private var closed = false

    private init(process: ManagedProcess, input: Int32) {
        self.process = process
        self.input = input
    }

    /// Starts the client; it connects at once. The FIFO is opened read-write here first (Linux), so neither side
    /// blocks in open() and s_client never sees end of input while the test holds it.
    static func connect(name: String, port: Int, serverName: String, rootPath: String, directory: TemporaryDirectory) throws -> LongLivedTLSClient {
        let fifo = directory.appending("\(name).in")
        guard mkfifo(fifo, 0o600) == 0 else {
            throw TestSupportError.fileSystem(operation: "mkfifo", path: fifo, reason: String(cString: strerror(errno)))
        }
        let input = open(fifo, O_RDWR | O_CLOEXEC)
        guard input >= 0 else {
            throw TestSupportError.fileSystem(operation: "open", path: fifo, reason: String(cString: strerror(errno)))
        }
        do {
            let process = try ManagedProcess.start(
                name: name, executable: "/bin/sh",
                arguments: ["-c", "exec \"$0\" s_client -connect \"$1\" -servername \"$2\" -CAfile \"$3\" -verify_return_error -ign_eof -nocommands <\"$4\"",
                            HAProxyFixture.openssl, "127.0.0.1:\(port)", serverName, rootPath, fifo],
                logDirectory: directory.path)
            return LongLivedTLSClient(process: process, input: input)
        } catch {
            Glibc.close(input)
            throw error
        }
    }

    /// Whether s_client (and so its one connection) is still up.
    var isRunning: Bool { process.isRunning }

    /// The client's log, for failure messages.
    func logTail() -> String {
        let state = process.exitCode.map { "s_client exited with \($0)" } ?? "s_client still running"
        return state + "; its log ends: " + process.logTail(lines: 8)
    }

    /// Sends a unique line built from `label` and waits (at most 30 s) until the echo backend's copy comes back.
    func echoes(_ label: String) async throws -> Bool {
        sent += 1
        let line = "ping \(sent) \(label.replacingOccurrences(of: " ", with: "-")) \(UInt32.random(in: 0...UInt32.max))"
        let bytes = Array((line + "\n").utf8)
        let written = bytes.withUnsafeBytes { write(input, $0.baseAddress, $0.count) }
        guard written == bytes.count else {
            throw TestSupportError.fileSystem(operation: "write", path: "\(process.name) input", reason: String(cString: strerror(errno)))
        }
        let deadline = ContinuousClock.now + .seconds(30)
        while ContinuousClock.now < deadline {
            if log().contains(line + "\n") { return true }
            if !process.isRunning { return log().contains(line + "\n") }
            try await Task.sleep(for: .milliseconds(50))
        }
        return log().contains(line + "\n")
    }

    /// The serial of the certificate this connection was handshaken with (the first PEM block s_client printed).
    func servedSerial() throws -> String {
        let text = log()
        guard let begin = text.range(of: "-----BEGIN CERTIFICATE-----"),
              let end = text.range(of: "-----END CERTIFICATE-----", range: begin.upperBound..<text.endIndex) else {
            return ""
        }
        let certificate = try Certificate(pemEncoded: String(text[begin.lowerBound..<end.upperBound]))
        return hexSerial(certificate)
    }

    /// Ends the connection (SIGTERM to s_client) and releases the FIFO. Safe to call more than once.
    func close() async {
        await process.stop()
        if !closed {
            Glibc.close(input)
            closed = true
        }
    }

    private func log() -> String {
        String(decoding: FileManager.default.contents(atPath: process.logPath) ?? Data(), as: UTF8.self)
    }
}

/// Whether `pid` exists and is not a zombie.
func processIsAlive(_ pid: Int32) -> Bool {
    guard kill(pid, 0) == 0 else { return false }
    guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
          let afterName = stat.range(of: ") ", options: .backwards) else { return true }
    return !stat[afterName.upperBound...].hasPrefix("Z")
}
