import Foundation
import NIOConcurrencyHelpers

#if canImport(Glibc)
import Glibc
#endif

/// One node of a ``TestNetwork``: a network namespace with one interface (`eth0`) on the network's bridge.
public struct TestNode: Sendable, Hashable, CustomStringConvertible {
    /// 1-based position in ``TestNetwork/nodes``.
    public let index: Int
    /// The network namespace's name (as in `ip netns exec <name> …`).
    public let name: String
    /// The node's IPv4 address on the private /24, e.g. `10.213.7.11`.
    public let address: String

    /// `n<index> (<address>, netns <name>)`, for failure messages.
    public var description: String { "n\(index) (\(address), netns \(name))" }
}

/// Why building, using or tearing down a ``TestNetwork`` failed.
public enum TestNetworkError: Error, CustomStringConvertible, Sendable {
    /// `ip` is not installed (Debian package `iproute2`).
    case ipNotFound(searched: [String])
    /// An `ip` command failed; `command` is the whole command line.
    case command(command: String, exitCode: Int32, stderr: String)
    /// A namespace could not be entered from this process (`setns`).
    case enterNamespace(name: String, reason: String)
    /// A socket operation inside a namespace failed.
    case socket(node: String, operation: String, reason: String)
    /// The network was already destroyed.
    case destroyed(prefix: String)

    /// One line naming what failed and why.
    public var description: String {
        switch self {
        case .ipNotFound(let searched):
            return "ip (iproute2) not found at \(searched.joined(separator: ", "))"
        case .command(let command, let exitCode, let stderr):
            let reason = stderr.split(separator: "\n").joined(separator: " | ")
            return "\(command) exited with status \(exitCode): \(reason)"
        case .enterNamespace(let name, let reason):
            return "cannot enter network namespace \(name): \(reason)"
        case .socket(let node, let operation, let reason):
            return "\(operation) in \(node) failed: \(reason)"
        case .destroyed(let prefix):
            return "test network \(prefix) was already destroyed"
        }
    }
}

/// A private network of N nodes on one machine, built from Linux network namespaces, for multi-node tests.
///
/// Topology: one "switch" namespace holds a bridge `br0`; each node is a namespace whose `eth0` is one end of a
/// veth pair, the other end (`p<i>`) is a port of the bridge. Each node also has `lo` up. Nothing is created in
/// the host's network namespace, so the addresses (a random `10.x.y.0/24`) cannot clash with the host's, and two
/// networks never see each other even if they picked the same /24. Interface names are per namespace, so they
/// stay short (`br0`, `p1`, `eth0`) whatever the instance.
///
/// Namespace names are `ckn-<label>-<pid>-<random>-{sw,n1,n2,…}`: unique per instance, and `create` removes
/// namespaces with the `ckn-` prefix left behind by a test process that no longer runs (or older than an hour).
///
/// The test process itself stays in the host namespace: reach the nodes with ``spawn(on:name:executable:arguments:environment:logDirectory:)``,
/// ``run(on:executable:arguments:environment:timeout:)``, or sockets opened inside a node with
/// ``connect(from:to:port:timeoutMilliseconds:)`` / ``withNamespace(of:_:)``.
///
/// Needs root (CAP_SYS_ADMIN and CAP_NET_ADMIN) and `ip` from iproute2. Always pair ``create(nodes:label:)`` with
/// ``destroy()``, or use ``withTestNetwork(nodes:label:_:)``.
public final class TestNetwork: Sendable {
    /// The prefix of every namespace a ``TestNetwork`` creates.
    public static let namespacePrefix = "ckn-"
    /// Namespaces with ``namespacePrefix`` older than this are removed by ``create(nodes:label:)`` even when the
    /// process that made them looks alive (its pid may have been reused).
    public static let staleAge: TimeInterval = 3600

    /// The nodes, in order (`nodes[0]` is n1).
    public let nodes: [TestNode]
    /// The switch namespace holding the bridge.
    public let switchNamespace: String
    /// The shared part of every namespace name of this instance, e.g. `ckn-sync-4242-k3x9`.
    public let prefix: String
    /// The network's /24, e.g. `10.213.7.0/24`.
    public let subnet: String

    private let ip: String
    private struct State {
        var destroyed = false
        var processes: [ManagedProcess] = []
    }
    private let state = NIOLockedValueBox(State())

    /// Subnets handed out in this process, so concurrent tests in one process never share one (different
    /// processes pick at random; even a clash would be harmless, see the type's documentation).
    private static let subnetsInUse = NIOLockedValueBox(Set<Int>())

    private init(nodes: [TestNode], switchNamespace: String, prefix: String, subnet: String, ip: String) {
        self.nodes = nodes
        self.switchNamespace = switchNamespace
        self.prefix = prefix
        self.subnet = subnet
        self.ip = ip
    }

    deinit {
        if let subnetKey = Self.subnetKey(subnet) {
            _ = Self.subnetsInUse.withLockedValue { $0.remove(subnetKey) }
        }
    }

    /// Builds the network: the switch namespace with its bridge, then `nodes` node namespaces each linked to it.
    ///
    /// Removes stale namespaces from earlier crashed runs first. If any step fails, everything built so far is
    /// removed before the error is thrown.
    /// - Parameters:
    ///   - nodes: How many nodes (1…200).
    ///   - label: A readable tag for the namespace names (letters and digits kept, at most 8).
    /// - Throws: ``TestNetworkError``.
    public static func create(nodes count: Int, label: String) async throws -> TestNetwork {
        precondition((1...200).contains(count), "a TestNetwork has 1 to 200 nodes")
        let ip = try findIP()
        await removeStaleNamespaces(ip: ip)

        let tag = String(label.lowercased().filter { $0.isASCII && ($0.isLetter || $0.isNumber) }.prefix(8))
        let random = String(UInt32.random(in: 0...UInt32.max), radix: 36)
        let prefix = "\(namespacePrefix)\(tag.isEmpty ? "net" : tag)-\(getpid())-\(random)"
        let subnetKey = reserveSubnet()
        let base = "10.\(subnetKey >> 8).\(subnetKey & 0xff)"
        let nodeList = (1...count).map { TestNode(index: $0, name: "\(prefix)-n\($0)", address: "\(base).\(10 + $0)") }
        let network = TestNetwork(
            nodes: nodeList, switchNamespace: "\(prefix)-sw", prefix: prefix, subnet: "\(base).0/24", ip: ip)
        do {
            try await network.build()
        } catch {
            await network.destroy()
            throw error
        }
        return network
    }

    private func build() async throws {
        let sw = switchNamespace
        try await ipCommand(["netns", "add", sw])
        try await ipCommand(["-n", sw, "link", "set", "lo", "up"])
        try await ipCommand(["-n", sw, "link", "add", "br0", "type", "bridge"])
        try await ipCommand(["-n", sw, "link", "set", "br0", "up"])
        for node in nodes {
            try await ipCommand(["netns", "add", node.name])
            try await ipCommand(["-n", node.name, "link", "set", "lo", "up"])
            // Created inside the switch namespace, the node's end moved straight into the node's namespace: the
            // host namespace never sees either end.
            try await ipCommand([
                "-n", sw, "link", "add", "p\(node.index)", "type", "veth", "peer", "name", "eth0", "netns", node.name,
            ])
            try await ipCommand(["-n", sw, "link", "set", "p\(node.index)", "master", "br0", "up"])
            try await ipCommand(["-n", node.name, "addr", "add", "\(node.address)/24", "dev", "eth0"])
            try await ipCommand(["-n", node.name, "link", "set", "eth0", "up"])
        }
    }

    /// Starts a long-running program inside `node`'s namespace (through `ip netns exec`, which execs in place, so
    /// the returned process's pid is the program's own and signals reach it).
    ///
    /// The process is also remembered: ``destroy()`` stops it if the test has not.
    /// - Parameters:
    ///   - node: Where it runs.
    ///   - name: A short name for its log file (`<logDirectory>/<name>.log`).
    ///   - executable: Absolute path of the program.
    ///   - arguments: Its arguments.
    ///   - environment: Variables added to this process's environment.
    ///   - logDirectory: An existing directory for the log file.
    /// - Throws: ``TestNetworkError/destroyed(prefix:)``, ``TestSupportError/launchFailed(executable:reason:)``.
    public func spawn(
        on node: TestNode,
        name: String,
        executable: String,
        arguments: [String] = [],
        environment: [String: String] = [:],
        logDirectory: String
    ) throws -> ManagedProcess {
        try state.withLockedValue { state in
            guard !state.destroyed else { throw TestNetworkError.destroyed(prefix: prefix) }
            let process = try ManagedProcess.start(
                name: name, executable: ip, arguments: ["netns", "exec", node.name, executable] + arguments,
                environment: environment, logDirectory: logDirectory)
            state.processes.append(process)
            return process
        }
    }

    /// Runs a program to completion inside `node`'s namespace and captures its output.
    /// - Parameters:
    ///   - node: Where it runs.
    ///   - executable: Absolute path of the program.
    ///   - arguments: Its arguments.
    ///   - environment: Variables added to this process's environment.
    ///   - timeout: Seconds before it is killed and ``TestSupportError/timedOut(what:seconds:logTail:)`` thrown.
    /// - Returns: Exit code (128 + signal when killed), stdout, stderr.
    /// - Throws: ``TestSupportError`` when it cannot start or times out.
    public func run(
        on node: TestNode,
        executable: String,
        arguments: [String] = [],
        environment: [String: String] = [:],
        timeout: Double = 60
    ) async throws -> (exitCode: Int32, stdout: String, stderr: String) {
        try await OneShotProcess.run(
            executable: ip, arguments: ["netns", "exec", node.name, executable] + arguments,
            environment: environment, timeout: timeout)
    }

    /// Partitions `node` (link down on the switch side of its veth: the node keeps its address but nothing it
    /// sends reaches the bridge, nothing reaches it) or reconnects it.
    /// - Throws: ``TestNetworkError/command(command:exitCode:stderr:)``.
    public func setLink(_ node: TestNode, up: Bool) async throws {
        try await ipCommand(["-n", switchNamespace, "link", "set", "p\(node.index)", up ? "up" : "down"])
    }

    /// Runs `body` on a dedicated thread that has entered `node`'s network namespace, and returns its result.
    ///
    /// Sockets keep the namespace they were created in, so a socket made in `body` can be used from any thread
    /// afterwards (for example handed to NIO with `ClientBootstrap.withConnectedSocket` or
    /// `ServerBootstrap.withBoundSocket`). The thread ends when `body` returns; no other thread changes namespace.
    /// - Throws: ``TestNetworkError/enterNamespace(name:reason:)`` or what `body` throws.
    public func withNamespace<T: Sendable>(
        of node: TestNode, _ body: @escaping @Sendable () throws -> T
    ) async throws -> T {
        let path = "/run/netns/\(node.name)"
        return try await withCheckedThrowingContinuation { continuation in
            let thread = Thread {
                let fd = open(path, O_RDONLY | O_CLOEXEC)
                guard fd >= 0 else {
                    continuation.resume(throwing: TestNetworkError.enterNamespace(
                        name: node.name, reason: String(cString: strerror(errno))))
                    return
                }
                defer { close(fd) }
                guard let setns = Self.setnsFunction else {
                    continuation.resume(throwing: TestNetworkError.enterNamespace(
                        name: node.name, reason: "this libc has no setns"))
                    return
                }
                guard setns(fd, Self.cloneNewNet) == 0 else {
                    continuation.resume(throwing: TestNetworkError.enterNamespace(
                        name: node.name, reason: String(cString: strerror(errno))))
                    return
                }
                continuation.resume(with: Result { try body() })
            }
            thread.start()
        }
    }

    /// Opens a TCP connection from inside `node` to `host:port`.
    /// - Parameters:
    ///   - node: The namespace the connection starts in.
    ///   - host: An IPv4 literal (another node's address, or 127.0.0.1 for the node's own loopback).
    ///   - port: The port.
    ///   - timeoutMilliseconds: Bound on the connect.
    /// - Returns: A connected, blocking socket descriptor; the caller closes it.
    /// - Throws: ``TestNetworkError/socket(node:operation:reason:)`` when the connection fails or times out.
    public func connect(
        from node: TestNode, to host: String, port: Int, timeoutMilliseconds: Int32 = 1000
    ) async throws -> Int32 {
        try await withNamespace(of: node) {
            try Self.connectTCP(node: node.description, host: host, port: port, timeoutMilliseconds: timeoutMilliseconds)
        }
    }

    /// Whether a TCP connection from inside `node` to `host:port` succeeds within `timeoutMilliseconds`.
    public func canConnect(from node: TestNode, to host: String, port: Int, timeoutMilliseconds: Int32 = 1000) async -> Bool {
        guard let fd = try? await connect(from: node, to: host, port: port, timeoutMilliseconds: timeoutMilliseconds)
        else { return false }
        close(fd)
        return true
    }

    /// Waits until a TCP connection from `node` to `host:port` succeeds (a server started in a namespace is ready).
    /// - Parameters:
    ///   - node: Where the probe starts (usually the server's own node).
    ///   - host: The address the server listens on.
    ///   - port: Its port.
    ///   - process: The server, so a crash is reported at once with its log instead of a timeout.
    ///   - timeout: Seconds to keep trying.
    /// - Throws: ``TestSupportError/exitedEarly(what:exitCode:logTail:)`` or ``TestSupportError/timedOut(what:seconds:logTail:)``.
    public func waitForTCPPort(
        from node: TestNode, host: String, port: Int, process: ManagedProcess? = nil, timeout: Double = 20
    ) async throws {
        let deadline = ContinuousClock.now + .milliseconds(Int(timeout * 1000))
        while true {
            if let process, let exitCode = process.exitCode {
                throw TestSupportError.exitedEarly(
                    what: "\(process.name) in \(node)", exitCode: exitCode, logTail: process.logTail())
            }
            if await canConnect(from: node, to: host, port: port, timeoutMilliseconds: 500) { return }
            if ContinuousClock.now >= deadline {
                throw TestSupportError.timedOut(
                    what: "\(host):\(port) reachable from \(node)", seconds: timeout, logTail: process?.logTail() ?? "")
            }
            try await Task.sleep(for: .milliseconds(50))
        }
    }

    /// Tears everything down; safe to call more than once, never throws.
    ///
    /// Stops the processes started with ``spawn(on:name:executable:arguments:environment:logDirectory:)``
    /// (SIGTERM, then SIGKILL), SIGKILLs anything else still inside a namespace (`ip netns pids`), then deletes the
    /// namespaces; the veths and the bridge go with them.
    public func destroy() async {
        let processes = state.withLockedValue { state -> [ManagedProcess] in
            state.destroyed = true
            defer { state.processes = [] }
            return state.processes
        }
        for process in processes { await process.stop(gracePeriod: 2) }
        for name in nodes.map(\.name) + [switchNamespace] {
            await Self.removeNamespace(name, ip: ip)
        }
    }

    /// The names of all namespaces that exist now (`ip netns list`).
    public static func existingNamespaces() async throws -> [String] {
        let ip = try findIP()
        let result = try await OneShotProcess.run(executable: ip, arguments: ["netns", "list"], timeout: 30)
        guard result.exitCode == 0 else {
            throw TestNetworkError.command(command: "ip netns list", exitCode: result.exitCode, stderr: result.stderr)
        }
        // Lines look like "name" or "name (id: 3)".
        return result.stdout.split(separator: "\n").compactMap { $0.split(separator: " ").first.map(String.init) }
    }

    // MARK: - Internals

    private func ipCommand(_ arguments: [String]) async throws {
        let result = try await OneShotProcess.run(executable: ip, arguments: arguments, timeout: 30)
        guard result.exitCode == 0 else {
            throw TestNetworkError.command(
                command: "ip " + arguments.joined(separator: " "), exitCode: result.exitCode, stderr: result.stderr)
        }
    }

    /// `CLONE_NEWNET` from <sched.h>, which the Glibc module does not export (it needs `_GNU_SOURCE`).
    private static let cloneNewNet: Int32 = 0x4000_0000

    private typealias SetNS = @convention(c) (Int32, Int32) -> Int32

    /// glibc's `setns(2)` wrapper, looked up at run time for the same reason.
    private static var setnsFunction: SetNS? {
        guard let symbol = dlsym(UnsafeMutableRawPointer(bitPattern: 0), "setns") else { return nil }
        return unsafeBitCast(symbol, to: SetNS.self)
    }

    private static let ipCandidates = ["/usr/sbin/ip", "/sbin/ip", "/usr/bin/ip", "/bin/ip"]

    private static func findIP() throws -> String {
        guard let path = ipCandidates.first(where: { FileManager.default.isExecutableFile(atPath: $0) }) else {
            throw TestNetworkError.ipNotFound(searched: ipCandidates)
        }
        return path
    }

    private static func reserveSubnet() -> Int {
        subnetsInUse.withLockedValue { used in
            while true {
                // 10.16.0.0 – 10.254.255.0: far from the 10.0.x.y ranges most setups use (it would not matter,
                // the host never routes to these namespaces).
                let key = Int.random(in: (16 << 8)...(254 << 8 | 255))
                if used.insert(key).inserted { return key }
            }
        }
    }

    private static func subnetKey(_ subnet: String) -> Int? {
        let parts = subnet.split(separator: ".").compactMap { Int($0) }
        guard parts.count >= 3 else { return nil }
        return parts[1] << 8 | parts[2]
    }

    /// SIGKILLs every process inside `name` (bounded wait for them to go), then deletes the namespace.
    private static func removeNamespace(_ name: String, ip: String) async {
        guard FileManager.default.fileExists(atPath: "/run/netns/\(name)") else { return }
        for _ in 0..<50 {
            guard let listed = try? await OneShotProcess.run(executable: ip, arguments: ["netns", "pids", name], timeout: 10)
            else { break }
            let pids = listed.stdout.split(whereSeparator: \.isWhitespace).compactMap { pid_t($0) }
            if pids.isEmpty { break }
            for pid in pids { kill(pid, SIGKILL) }
            try? await Task.sleep(for: .milliseconds(100))
        }
        _ = try? await OneShotProcess.run(executable: ip, arguments: ["netns", "del", name], timeout: 10)
    }

    /// Removes `ckn-` namespaces whose creating process is gone, or that are older than ``staleAge``.
    private static func removeStaleNamespaces(ip: String) async {
        guard let names = try? await existingNamespaces() else { return }
        let now = Date()
        for name in names where name.hasPrefix(namespacePrefix) {
            // ckn-<label>-<pid>-<random>-<role>
            let parts = name.split(separator: "-")
            let pid = parts.count == 5 ? pid_t(parts[2]) : nil
            let ownerGone = pid.map { kill($0, 0) != 0 && errno == ESRCH } ?? true
            let created = (try? FileManager.default.attributesOfItem(atPath: "/run/netns/\(name)")[.modificationDate]) as? Date
            let old = created.map { now.timeIntervalSince($0) > staleAge } ?? false
            if ownerGone || old { await removeNamespace(name, ip: ip) }
        }
    }

    private static func connectTCP(node: String, host: String, port: Int, timeoutMilliseconds: Int32) throws -> Int32 {
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        guard inet_pton(AF_INET, host, &address.sin_addr) == 1 else {
            throw TestNetworkError.socket(node: node, operation: "connect to \(host):\(port)", reason: "not an IPv4 literal")
        }
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else {
            throw TestNetworkError.socket(node: node, operation: "socket", reason: String(cString: strerror(errno)))
        }
        func fail(_ reason: String) -> TestNetworkError {
            close(fd)
            return TestNetworkError.socket(node: node, operation: "connect to \(host):\(port)", reason: reason)
        }
        let result = withUnsafePointer(to: &address) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                Glibc.connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        if result != 0 {
            guard errno == EINPROGRESS else { throw fail(String(cString: strerror(errno))) }
            var poller = pollfd(fd: fd, events: Int16(POLLOUT), revents: 0)
            guard poll(&poller, 1, timeoutMilliseconds) == 1 else { throw fail("timed out after \(timeoutMilliseconds) ms") }
            var socketError: Int32 = 0
            var size = socklen_t(MemoryLayout<Int32>.size)
            guard getsockopt(fd, SOL_SOCKET, SO_ERROR, &socketError, &size) == 0 else {
                throw fail(String(cString: strerror(errno)))
            }
            guard socketError == 0 else { throw fail(String(cString: strerror(socketError))) }
        }
        let flags = fcntl(fd, F_GETFL)
        _ = fcntl(fd, F_SETFL, flags & ~O_NONBLOCK)
        return fd
    }
}

/// Builds a ``TestNetwork``, runs `body` with it, and destroys it afterwards, also when `body` throws.
/// - Parameters:
///   - nodes: How many nodes.
///   - label: A readable tag for the namespace names.
///   - body: The test.
/// - Returns: What `body` returns.
/// - Throws: What ``TestNetwork/create(nodes:label:)`` or `body` throws.
public func withTestNetwork<T>(
    nodes: Int, label: String, _ body: (TestNetwork) async throws -> T
) async throws -> T {
    let network = try await TestNetwork.create(nodes: nodes, label: label)
    do {
        let result = try await body(network)
        await network.destroy()
        return result
    } catch {
        await network.destroy()
        throw error
    }
}
