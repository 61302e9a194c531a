import CertkeeperTestSupport
import Foundation
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// Every listener of `certkeeper daemon` behaves alike at the edges: its sockets, and the connections it accepts, are
/// close-on-exec (read from /proc/<pid>/fdinfo), and at the descriptor limit it backs off instead of spinning in
/// `accept4` (the process's CPU time measured over the storm), with a throttled warning.
@Suite("Listeners: close-on-exec and the descriptor limit", .serialized)
struct ListenerHygieneTests {
    @Test("every descriptor of the daemon is close-on-exec: proxy, http, stats and peer API listeners and the connections they accept")
    func everyDescriptorIsCloseOnExec() async throws {
        let directory = try TemporaryDirectory(name: "cloexec")
        defer { directory.remove() }
        let ports = try PortAllocator.shared.allocate(count: 4)
        let (peerPort, tlsPort, httpPort, statsPort) = (ports[0], ports[1], ports[2], ports[3])
        // A backend that answers: with none, the TLS frontend closes its client at once ("no server left").
        _ = try directory.write("hello\n", to: "site/index.html")
        let backend = try await StaticFileServer.start(rootDirectory: directory.appending("site"))
        defer { Task { await backend.stop() } }
        let caDirectory = directory.appending("cluster-ca")
        let identity = directory.appending("n1.pem")
        let config = try directory.write("""
            state_dir: \(directory.appending("state"))
            node_name: n1
            certificates:
              - {name: localhost, issuer: internal, domains: [localhost]}
            cluster:
              role: renewer
              listen: "127.0.0.1:\(peerPort)"
            proxy:
              threads: 1
              grace: 1s
              frontends:
                - {name: tls, listen: "127.0.0.1:\(tlsPort)", backends: ["127.0.0.1:\(backend.port)"]}
                - {name: acme, listen: "127.0.0.1:\(httpPort)", mode: http}
            stats:
              listen: "127.0.0.1:\(statsPort)"

            """, to: "certkeeper.yaml")
        for arguments in [
            ["cluster", "init", "--name", "test", "--ca-dir", caDirectory],
            ["cluster", "add-node", "n1", "--address", "127.0.0.1", "--ca-dir", caDirectory, "--out", identity],
            ["cluster", "join", identity, "--config", config],
        ] {
            let result = try await CLI.run(arguments, environment: ["CERTKEEPER_CONFIG": ""])
            try #require(result.exitCode == 0, "\(arguments[0...1]): \(result.stderr)")
        }
        let daemon = try CLI.start(["daemon", "--config", config], environment: ["CERTKEEPER_CONFIG": ""], logDirectory: directory.path)
        try await withDaemon(daemon) {
            for port in ports { try await daemon.waitForTCPPort(port: port) }
            // Connections the daemon accepts and keeps open (none of them starts a TLS handshake or a request).
            var clients: [Int32] = []
            defer { for fd in clients { close(fd) } }
            for port in ports { clients.append(try #require(BlockingTCPClient.connect(port: port), "connect to \(port)")) }
            let pid = daemon.processIdentifier
            let accepted = try await eventually(seconds: 10) { try DescriptorTable(pid: pid).established(ports: ports).count >= ports.count }
            let open = try ports.map { port in "\(port): \(try DescriptorTable(pid: pid).established(ports: [port]).count)" }
            #expect(accepted, "the daemon did not accept the four connections (peer, tls, http, stats): \(open); \(daemon.logTail())")

            // Marked right after each accept, on the connection's event loop: wait for that rather than race it.
            let marked = try await eventually(seconds: 10) { try DescriptorTable(pid: pid).descriptors.allSatisfy { $0.number <= 2 || $0.closeOnExec } }
            let table = try DescriptorTable(pid: pid)
            let listening = try table.listening(ports: ports)
            #expect(listening.count == ports.count, "listening sockets found: \(listening)")
            let leaking = table.descriptors.filter { $0.number > 2 && !$0.closeOnExec }
            #expect(marked && leaking.isEmpty, "descriptors without FD_CLOEXEC: \(leaking.map { "\($0.number) \($0.target)" })")
            #expect(table.descriptors.filter { $0.target.hasPrefix("socket:") }.count >= 2 * ports.count)
        }
    }

    @Test("at the descriptor limit the proxy backs off instead of spinning in accept4, with one warning per minute")
    func descriptorLimitBacksOff() async throws {
        let directory = try TemporaryDirectory(name: "emfile")
        defer { directory.remove() }
        let ca = try TestCA.make().issueIntermediate()
        let leaf = try ca.issueLeaf(dnsNames: ["limit.example"])
        let bundle = try directory.write(leaf.fullChainPEM + leaf.privateKeyPEM, to: "bundle.pem")
        let port = try PortAllocator.shared.allocate(count: 1)[0]
        // 64 descriptors: the runtime, event loops and the listener take some, the clients below the rest.
        let proxy = try ManagedProcess.start(
            name: "proxy-emfile", executable: "/usr/bin/prlimit",
            arguments: ["--nofile=64:64", "--", try CLI.executablePath(), "proxy", "--listen", "127.0.0.1:\(port)", "--cert", bundle,
                        "--to", "127.0.0.1:9", "--threads", "1", "--grace", "1"],
            environment: [:], logDirectory: directory.path)
        defer { Task { await proxy.stop() } }
        try await proxy.waitForTCPPort(port: port)
        var clients: [Int32] = []
        defer { for fd in clients { close(fd) } }
        // More than the limit: the kernel completes every handshake into the backlog, the proxy can accept only some.
        for _ in 0..<150 {
            guard let fd = BlockingTCPClient.connect(port: port, timeout: 1) else { break }
            clients.append(fd)
        }
        #expect(clients.count >= 100)
        let pid = proxy.processIdentifier
        let warned = try await eventually(seconds: 10) { (try? String(contentsOfFile: proxy.logPath, encoding: .utf8))?.contains("a resource limit is reached") == true }
        #expect(warned, "no warning about the descriptor limit: \(proxy.logTail())")

        // The storm: connections wait in the backlog while accept4 fails with EMFILE. CPU time, not wall time.
        let start = try ProcessCPU.seconds(pid: pid)
        try await Task.sleep(for: .seconds(3))
        let used = try ProcessCPU.seconds(pid: pid) - start
        #expect(used < 0.3, "the proxy used \(used) s of CPU in 3 s at the descriptor limit (spinning on EMFILE)")
        let log = (try? String(contentsOfFile: proxy.logPath, encoding: .utf8)) ?? ""
        let warnings = log.split(separator: "\n").filter { $0.contains("a resource limit is reached") }
        #expect(warnings.count == 1, "warnings: \(warnings)")
        #expect(warnings.first?.contains("EMFILE") == true || warnings.first?.contains("errno=24") == true, "\(warnings)")

        // Once descriptors are free again, it accepts again (the pause ends): a new connection is accepted by the
        // proxy itself, not only queued by the kernel.
        for fd in clients { close(fd) }
        clients = []
        let fresh = try #require(BlockingTCPClient.connect(port: port))
        clients.append(fresh)
        let again = try await eventually(seconds: 15) { try DescriptorTable(pid: pid).established(ports: [port]).count >= 1 }
        #expect(again, "the proxy did not accept again after the descriptor limit: \(proxy.logTail())")
    }
}

extension ListenerHygieneTests {
    @Test("the async listeners pause at the descriptor limit too: the daemon's stats listener under a connection flood")
    func asyncListenerBacksOff() async throws {
        let directory = try TemporaryDirectory(name: "emfile-stats")
        defer { directory.remove() }
        let statsPort = try PortAllocator.shared.allocate(count: 1)[0]
        let config = try directory.write("""
            state_dir: \(directory.appending("state"))
            node_name: n1
            certificates:
              - {name: localhost, issuer: internal, domains: [localhost]}
            stats:
              listen: "127.0.0.1:\(statsPort)"

            """, to: "certkeeper.yaml")
        let daemon = try ManagedProcess.start(
            name: "daemon-emfile", executable: "/usr/bin/prlimit",
            arguments: ["--nofile=96:96", "--", try CLI.executablePath(), "daemon", "--config", config],
            environment: ["CERTKEEPER_CONFIG": ""], logDirectory: directory.path)
        defer { Task { await daemon.stop() } }
        try await daemon.waitForTCPPort(port: statsPort)
        var clients: [Int32] = []
        defer { for fd in clients { close(fd) } }
        // Until the descriptors and then the backlog (the stats listener's is 32) are full: connects then time out.
        var failuresInARow = 0
        for _ in 0..<300 where failuresInARow < 3 {
            if let fd = BlockingTCPClient.connect(port: statsPort, timeout: 1) {
                clients.append(fd)
                failuresInARow = 0
            } else {
                failuresInARow += 1
            }
        }
        #expect(clients.count > 32, "only \(clients.count) connections")
        let pid = daemon.processIdentifier
        let warned = try await eventually(seconds: 10) {
            (try? String(contentsOfFile: daemon.logPath, encoding: .utf8))?.contains("a resource limit is reached") == true
        }
        #expect(warned, "no warning about the descriptor limit: \(daemon.logTail())")
        let start = try ProcessCPU.seconds(pid: pid)
        try await Task.sleep(for: .seconds(3))
        let used = try ProcessCPU.seconds(pid: pid) - start
        #expect(used < 0.3, "the daemon used \(used) s of CPU in 3 s at the descriptor limit")
        let warnings = ((try? String(contentsOfFile: daemon.logPath, encoding: .utf8)) ?? "").split(separator: "\n").filter { $0.contains("a resource limit is reached") }
        #expect(warnings.count == 1 && warnings.first?.contains("stats 127.0.0.1") == true, "\(warnings)")
    }
}

/// Another process's open descriptors, from /proc/<pid>/fd and /proc/<pid>/fdinfo.
struct DescriptorTable {
    struct Descriptor {
        var number: Int
        /// The link target: a path, `socket:[inode]`, `anon_inode:[eventpoll]`, …
        var target: String
        /// Whether `flags:` in fdinfo has O_CLOEXEC (octal 02000000).
        var closeOnExec: Bool
    }

    let pid: Int32
    let descriptors: [Descriptor]

    init(pid: Int32) throws {
        self.pid = pid
        var found: [Descriptor] = []
        for name in try FileManager.default.contentsOfDirectory(atPath: "/proc/\(pid)/fd") {
            guard let number = Int(name),
                  let target = try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/\(pid)/fd/\(name)"),
                  let info = try? String(contentsOfFile: "/proc/\(pid)/fdinfo/\(name)", encoding: .utf8),
                  let flagsLine = info.split(separator: "\n").first(where: { $0.hasPrefix("flags:") }),
                  let flags = Int(flagsLine.dropFirst("flags:".count).trimmingCharacters(in: .whitespaces), radix: 8) else { continue }
            found.append(Descriptor(number: number, target: target, closeOnExec: flags & 0o2000000 != 0))
        }
        descriptors = found.sorted { $0.number < $1.number }
    }

    /// Sockets of this process in state `state` (hex, as /proc/net/tcp prints it) whose local port is one of `ports`.
    private func sockets(ports: [Int], state: String) throws -> [Descriptor] {
        // Read to the end: procfs files report size 0, and one read returns a page at most.
        let handle = try FileHandle(forReadingFrom: URL(fileURLWithPath: "/proc/\(pid)/net/tcp"))
        defer { try? handle.close() }
        let table = String(decoding: try handle.readToEnd() ?? Data(), as: UTF8.self)
        var inodes: Set<String> = []
        for line in table.split(separator: "\n").dropFirst() {
            let fields = line.split(separator: " ", omittingEmptySubsequences: true)
            guard fields.count > 9, fields[3] == state,
                  let port = fields[1].split(separator: ":").last.flatMap({ Int($0, radix: 16) }), ports.contains(port) else { continue }
            inodes.insert(String(fields[9]))
        }
        return descriptors.filter { descriptor in inodes.contains { descriptor.target == "socket:[\($0)]" } }
    }

    /// The listening sockets on `ports`.
    func listening(ports: [Int]) throws -> [Descriptor] { try sockets(ports: ports, state: "0A") }
    /// The accepted connections on `ports`.
    func established(ports: [Int]) throws -> [Descriptor] { try sockets(ports: ports, state: "01") }
}

/// A process's CPU time (user + system) from /proc/<pid>/stat.
enum ProcessCPU {
    static func seconds(pid: Int32) throws -> Double {
        let stat = try String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8)
        // Fields after the parenthesised command name; utime and stime are fields 14 and 15.
        guard let close = stat.lastIndex(of: ")") else { return 0 }
        let fields = stat[stat.index(after: close)...].split(separator: " ")
        guard fields.count > 13, let user = Double(fields[11]), let system = Double(fields[12]) else { return 0 }
        return (user + system) / Double(sysconf(Int32(_SC_CLK_TCK)))
    }
}
