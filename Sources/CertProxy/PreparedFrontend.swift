import LogThrottle
import Logging
import NIOCore
import NIOSSL
import NIOTLS

/// Everything a new connection of one frontend needs, built once per (re)configuration, off the event loop.
/// Immutable: a reconfiguration replaces the whole value, so a connection sees either the old or the new one.
final class PreparedFrontend: Sendable {
    let frontend: ProxyFrontend
    let certificates: CertificateSet
    let pool: BackendPool
    /// The client-id table when the frontend sticks MQTT clients to servers.
    let stickyClients: StickyClients?
    /// The log lines about refused MQTT clients, throttled per reason for the whole frontend.
    let mqttRefusals = WarningThrottle(interval: .seconds(10), burst: 5)
    let logger: Logger

    private init(frontend: ProxyFrontend, certificates: CertificateSet, pool: BackendPool, logger: Logger) {
        self.frontend = frontend
        self.certificates = certificates
        self.pool = pool
        self.stickyClients = frontend.mqtt.stickByClientID ? StickyClients(settings: frontend.mqtt) : nil
        var logger = logger
        logger[metadataKey: "frontend"] = "\(frontend.name)"
        self.logger = logger
    }

    /// Checks and prepares a whole configuration.
    /// - Parameter previous: The running pools by frontend name: servers that did not change keep their health
    ///   and connection counts.
    /// - Throws: ``ProxyError`` for an empty backend list, a duplicate name or a TLS context that cannot be built.
    static func prepare(
        _ frontends: [ProxyFrontend], certificates: CertificateSet, previous: [String: BackendPool] = [:], logger: Logger
    ) throws(ProxyError) -> [PreparedFrontend] {
        var names: Set<String> = []
        var prepared: [PreparedFrontend] = []
        let localAddresses = frontends.contains { $0.pool.preferLocal } ? BackendPool.hostAddresses() : []
        for frontend in frontends {
            guard names.insert(frontend.name).inserted else { throw .duplicateFrontend(name: frontend.name) }
            guard !frontend.pool.servers.isEmpty || frontend.http != nil else { throw .noBackends(frontend: frontend.name) }
            var serverNames: Set<String> = []
            for server in frontend.pool.servers where !serverNames.insert(server.name).inserted {
                throw .duplicateServer(frontend: frontend.name, server: server.name)
            }
            if let tls = frontend.tls {
                do {
                    try certificates.prepareContexts(for: tls)
                } catch {
                    throw .tlsContext(frontend: frontend.name, reason: "\(error)")
                }
            }
            let pool: BackendPool
            do {
                pool = try BackendPool(
                    frontendName: frontend.name, settings: frontend.pool, localAddresses: localAddresses,
                    previous: previous[frontend.name])
            } catch {
                throw .tlsContext(frontend: frontend.name, reason: "health check TLS context: \(error)")
            }
            prepared.append(PreparedFrontend(frontend: frontend, certificates: certificates, pool: pool, logger: logger))
        }
        return prepared
    }

    /// Installs the connection's handlers (called on its event loop while it is being initialised).
    func configure(channel: any Channel, counters: ProxyCounters, frontendCounters: FrontendCounters) throws {
        if let http = frontend.http {
            try ACMEHTTPHandler.configure(channel: channel, settings: http, idle: frontend.timeouts.idle, logger: logger)
            return
        }
        let sync = channel.pipeline.syncOperations
        if let tls = frontend.tls {
            let closing = TLSClosingState()
            let closeObserver = CloseRequestObserver(state: closing)
            try sync.addHandler(RawEOFCloser(state: closing))
            // The ClientHello's SNI picks the entry; its prebuilt context serves the handshake (no per-handshake
            // override: measured cheaper, see the README).
            let certificates = self.certificates
            let sni = ByteToMessageHandler(
                SNIHandler { [counters, frontendCounters] result in
                    let serverName: String?
                    if case .hostname(let name) = result { serverName = name } else { serverName = nil }
                    guard let context = certificates.serverContext(serverName: serverName, settings: tls) else {
                        counters.update { $0.handshakeFailures += 1 }
                        frontendCounters.handshakeFailed()
                        channel.close(promise: nil)
                        return channel.eventLoop.makeFailedFuture(ProxyError.noCertificate(serverName: serverName))
                    }
                    return channel.eventLoop.makeCompletedFuture {
                        try channel.pipeline.syncOperations.addHandler(
                            NIOSSLServerHandler(context: context), position: .before(closeObserver))
                    }
                })
            try sync.addHandler(sni)
            try sync.addHandler(closeObserver)
        }
        if frontend.mqtt.needsConnectGate {
            // After TLS, before the backend connection: the CONNECT decides whether (and, sticking, where) to connect.
            try sync.addHandler(MQTTConnectGate(settings: frontend.mqtt, afterTLSHandshake: frontend.tls != nil, logger: logger, refusals: mqttRefusals))
        }
        try sync.addHandler(
            ClientConnectionHandler(
                tls: frontend.tls != nil, pool: pool, timeouts: frontend.timeouts, counters: counters,
                frontendCounters: frontendCounters, waitsForMQTTConnect: frontend.mqtt.needsConnectGate,
                stickyClients: stickyClients, logger: logger))
    }
}
