import Foundation
import LogThrottle
import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import NIOSSL

/// One server at run time: its settings, health, connections and counters. Shared by the pools of successive
/// configurations while the server keeps its name, address and `local` flag, so a reconfiguration (SIGHUP) neither
/// resets its health nor loses count of its open connections; its other settings (weight, backup, maxconn,
/// proxy_protocol, check) are replaced by the new configuration's (``adopt(_:)``).
final class ServerRuntime: Sendable {
    private struct State {
        var settings: ProxyBackendServer
        var health: HealthStateMachine?
        var active = 0
        var total = 0
        var connectFailures = 0
        var bytesToServer = 0
        var bytesFromServer = 0
        var lastCheck: ProxyCheckResult?
        /// Backend channels of the open connections, closed by `shutdown_sessions`.
        var sessions: [ObjectIdentifier: any Channel] = [:]
    }

    /// The server's current settings.
    var settings: ProxyBackendServer { state.withLockedValue { $0.settings } }
    /// The address as a socket address when it is an IP literal (no name resolution per connection).
    let resolved: SocketAddress?
    /// Whether it counts as local for `prefer_local`.
    let isLocal: Bool
    private let state: NIOLockedValueBox<State>

    init(settings: ProxyBackendServer, localAddresses: Set<String>) {
        self.resolved = try? SocketAddress(ipAddress: settings.address.host, port: settings.address.port)
        self.isLocal = settings.local ?? Self.looksLocal(settings.address.host, resolved: resolved, localAddresses: localAddresses)
        self.state = NIOLockedValueBox(State(settings: settings, health: settings.check.map { HealthStateMachine(fall: $0.fall, rise: $0.rise) }))
    }

    private static func looksLocal(_ host: String, resolved: SocketAddress?, localAddresses: Set<String>) -> Bool {
        if host == "localhost" { return true }
        guard let ip = resolved?.ipAddress else { return false }
        return ip.hasPrefix("127.") || ip == "::1" || localAddresses.contains(ip)
    }

    /// Whether `other` describes the same server for the purpose of keeping its state across a reconfiguration.
    func canBeReused(for other: ProxyBackendServer) -> Bool {
        let settings = self.settings
        return settings.name == other.name && settings.address == other.address && settings.local == other.local
    }

    /// Takes a new configuration's settings for this server: weight, backup, maxconn and proxy_protocol apply to
    /// the next connection; a changed check starts the server's health afresh (up until the new check decides).
    /// Open connections and counters are kept.
    func adopt(_ new: ProxyBackendServer) {
        state.withLockedValue { state in
            if state.settings.check != new.check {
                state.health = new.check.map { HealthStateMachine(fall: $0.fall, rise: $0.rise) }
                state.lastCheck = nil
            }
            state.settings = new
        }
    }

    var isUp: Bool { state.withLockedValue { ($0.health?.state ?? .up) == .up } }

    var candidate: SelectionCandidate {
        state.withLockedValue { state in
            SelectionCandidate(
                up: (state.health?.state ?? .up) == .up, backup: state.settings.backup, local: isLocal,
                weight: state.settings.weight, active: state.active, maxConnections: state.settings.maxConnections)
        }
    }

    /// Takes a connection slot unless the server is down or full (checked again under the lock).
    func tryAcquire() -> Bool {
        state.withLockedValue { state in
            guard (state.health?.state ?? .up) == .up else { return false }
            if let limit = state.settings.maxConnections, state.active >= limit { return false }
            state.active += 1
            state.total += 1
            return true
        }
    }

    /// Gives back a slot whose connect attempt failed.
    func connectFailed() {
        state.withLockedValue {
            $0.active -= 1
            $0.total -= 1
            $0.connectFailures += 1
        }
    }

    /// Registers the backend channel of a relayed connection (for `shutdown_sessions`).
    func sessionStarted(_ channel: any Channel) {
        state.withLockedValue { $0.sessions[ObjectIdentifier(channel)] = channel }
    }

    /// A relayed connection ended: its slot is freed and its bytes counted.
    func sessionEnded(_ channel: any Channel, bytesToServer: Int, bytesFromServer: Int) {
        state.withLockedValue {
            $0.sessions.removeValue(forKey: ObjectIdentifier(channel))
            $0.active -= 1
            $0.bytesToServer += bytesToServer
            $0.bytesFromServer += bytesFromServer
        }
    }

    /// Records a check result.
    /// - Returns: The transition and, when the server was marked down, its open sessions' backend channels.
    func recordCheck(_ result: ProxyCheckResult) -> (transition: HealthStateMachine.Transition?, sessions: [any Channel]) {
        state.withLockedValue { state in
            state.lastCheck = result
            guard var health = state.health else { return (nil, []) }
            let transition = health.record(success: result.passed)
            state.health = health
            return (transition, transition == .markedDown ? Array(state.sessions.values) : [])
        }
    }

    var snapshot: ProxyServerSnapshot {
        state.withLockedValue { state in
            ProxyServerSnapshot(
                name: state.settings.name, address: state.settings.address.description, state: state.health?.state ?? .up,
                checked: state.health != nil, backup: state.settings.backup, local: isLocal, weight: state.settings.weight,
                activeConnections: state.active, totalConnections: state.total, connectFailures: state.connectFailures,
                bytesToServer: state.bytesToServer, bytesFromServer: state.bytesFromServer, lastCheck: state.lastCheck)
        }
    }
}

/// The servers of one frontend (one configuration generation of it) and the choice among them.
///
/// Thread-safe: connections of every event loop call ``acquire(excluding:)`` concurrently. The selection state
/// has its own lock; each server's counters have theirs, and the slot is taken under the server's lock, so a
/// server's `maxconn` is never exceeded even when two loops pick it at once (the loser picks again).
final class BackendPool: Sendable {
    let frontendName: String
    let settings: ProxyBackendPool
    let servers: [ServerRuntime]
    /// One "server unreachable" warning per server per 10 s; the rest go to debug.
    let failureWarnings = WarningThrottle()
    /// The client context for `type: tls` checks (built once, off the event loops), or `nil` when none has one.
    let checkTLSContext: NIOSSLContext?
    private let selection: NIOLockedValueBox<ServerSelection>
    private let retiredFlag = NIOLockedValueBox(false)

    /// - Parameters:
    ///   - frontendName: For logs.
    ///   - settings: The servers and rules.
    ///   - localAddresses: This host's interface addresses (for `prefer_local` without an explicit `local`).
    ///   - previous: The pool this one replaces; servers that did not change keep their state.
    /// - Throws: When the TLS check context cannot be built.
    init(frontendName: String, settings: ProxyBackendPool, localAddresses: Set<String>, previous: BackendPool? = nil) throws {
        self.frontendName = frontendName
        self.settings = settings
        self.servers = settings.servers.map { server in
            guard let kept = previous?.servers.first(where: { $0.canBeReused(for: server) }) else {
                return ServerRuntime(settings: server, localAddresses: localAddresses)
            }
            kept.adopt(server)
            return kept
        }
        self.selection = NIOLockedValueBox(ServerSelection(balance: settings.balance, preferLocal: settings.preferLocal, count: settings.servers.count))
        if settings.servers.contains(where: { if case .tls = $0.check?.kind { true } else { false } }) {
            var configuration = TLSConfiguration.makeClientConfiguration()
            configuration.certificateVerification = .none
            self.checkTLSContext = try NIOSSLContext(configuration: configuration)
        } else {
            self.checkTLSContext = nil
        }
    }

    /// Whether a newer configuration (or shutdown) replaced this pool; its health checks stop.
    var retired: Bool { retiredFlag.withLockedValue { $0 } }

    func retire() { retiredFlag.withLockedValue { $0 = true } }

    /// Picks a server for a new connection and takes a slot on it.
    /// - Parameter excluded: Servers already tried for this client.
    /// - Returns: The server's index and runtime, or `nil` when no server can take the connection.
    func acquire(excluding excluded: Set<Int> = []) -> (index: Int, server: ServerRuntime)? {
        var excluded = excluded
        while true {
            let candidates = servers.map(\.candidate)
            guard let index = selection.withLockedValue({ $0.choose(candidates, excluding: excluded) }) else { return nil }
            if servers[index].tryAcquire() { return (index, servers[index]) }
            excluded.insert(index)
        }
    }

    /// Whether a connection to `server` starts with a PROXY v2 header.
    func sendsProxyProtocol(_ server: ServerRuntime) -> Bool {
        server.settings.proxyProtocol ?? settings.proxyProtocol
    }

    /// This host's interface addresses, as `SocketAddress.ipAddress` strings.
    static func hostAddresses() -> Set<String> {
        let devices = (try? System.enumerateDevices()) ?? []
        return Set(devices.compactMap { $0.address?.ipAddress })
    }
}

/// Counters of one frontend, kept across reconfigurations (they belong to the listener).
final class FrontendCounters: Sendable {
    private struct Counts {
        var active = 0
        var total = 0
        var refused = 0
        var noServer = 0
        var handshakeFailures = 0
    }

    private let counts = NIOLockedValueBox(Counts())

    /// Counts an accepted connection unless `limit` connections are already open.
    /// - Returns: `false` when the connection must be closed.
    func admit(limit: Int?) -> Bool {
        counts.withLockedValue { counts in
            if let limit, counts.active >= limit {
                counts.refused += 1
                return false
            }
            counts.active += 1
            counts.total += 1
            return true
        }
    }

    func closed() { counts.withLockedValue { $0.active -= 1 } }

    func noServer() { counts.withLockedValue { $0.noServer += 1 } }

    func handshakeFailed() { counts.withLockedValue { $0.handshakeFailures += 1 } }

    var values: (active: Int, total: Int, refused: Int, noServer: Int, handshakeFailures: Int) {
        counts.withLockedValue { ($0.active, $0.total, $0.refused, $0.noServer, $0.handshakeFailures) }
    }
}
