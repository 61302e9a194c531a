import Logging
import NIOCore
import NIOSSL

/// Everything a new connection of one frontend needs, built once per (re)configuration, off the event loop.
/// Immutable: a reconfiguration replaces the whole value, so a connection sees either the old or the new one.
final class FrontendSettings: Sendable {
    let frontend: ProxyFrontend
    let sslContext: NIOSSLContext?
    let rotation: BackendRotation
    let logger: Logger

    private init(frontend: ProxyFrontend, sslContext: NIOSSLContext?, logger: Logger) {
        self.frontend = frontend
        self.sslContext = sslContext
        self.rotation = BackendRotation(frontend.backends)
        var logger = logger
        logger[metadataKey: "frontend"] = "\(frontend.name)"
        self.logger = logger
    }

    /// Checks and prepares a whole configuration.
    /// - Throws: ``ProxyError`` for an empty backend list, a duplicate name or a TLS context that cannot be built.
    static func prepare(
        _ frontends: [ProxyFrontend], certificates: CertificateSet, logger: Logger
    ) throws(ProxyError) -> [FrontendSettings] {
        var names: Set<String> = []
        var prepared: [FrontendSettings] = []
        for frontend in frontends {
            guard names.insert(frontend.name).inserted else { throw .duplicateFrontend(name: frontend.name) }
            guard !frontend.backends.isEmpty else { throw .noBackends(frontend: frontend.name) }
            var sslContext: NIOSSLContext?
            if let tls = frontend.tls {
                do {
                    sslContext = try NIOSSLContext(configuration: tls.makeTLSConfiguration(certificates: certificates))
                } catch {
                    throw .tlsContext(frontend: frontend.name, reason: "\(error)")
                }
            }
            prepared.append(FrontendSettings(frontend: frontend, sslContext: sslContext, logger: logger))
        }
        return prepared
    }

    /// Installs the connection's handlers (called on its event loop while it is being initialised).
    func configure(channel: any Channel, counters: ProxyCounters) throws {
        let timeouts = frontend.timeouts
        var logger = self.logger
        logger[metadataKey: "client"] = "\(channel.remoteAddress?.description ?? "?")"
        let sync = channel.pipeline.syncOperations
        if let sslContext {
            let closing = TLSClosingState()
            try sync.addHandler(RawEOFCloser(state: closing))
            try sync.addHandler(NIOSSLServerHandler(context: sslContext))
            try sync.addHandler(CloseRequestObserver(state: closing))
            try sync.addHandler(HandshakeTimeoutHandler(timeout: timeouts.handshake, counters: counters, logger: logger))
        }
        try sync.addHandler(IdleStateHandler(allTimeout: timeouts.idle))
        try sync.addHandler(IdleCloseHandler(counters: counters))
        try sync.addHandler(
            BackendConnectHandler(
                waitForHandshake: sslContext != nil, rotation: rotation, connectTimeout: timeouts.backendConnect,
                counters: counters, logger: logger))
    }
}
