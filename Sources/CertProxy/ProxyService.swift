import Foundation
import Logging
import NIOCore
import ServiceLifecycle

/// The proxy as a long-running `Service`: loads the certificates, binds the frontends, keeps reloading certificates
/// as they change, and on graceful shutdown (SIGTERM) stops accepting and drains open connections for `grace`.
public struct ProxyService: Service {
    public let frontends: [ProxyFrontend]
    public let certificates: CertificateSet
    public let reloader: CertificateReloader
    public let threads: Int
    public let grace: Duration
    let logger: Logger

    /// - Parameters:
    ///   - reloader: fills `certificates`; its `loadAll()` should have been called (and its errors reported) first.
    ///   - threads: event loops, one per core by default.
    ///   - grace: how long open connections may keep going after shutdown begins.
    public init(frontends: [ProxyFrontend], certificates: CertificateSet, reloader: CertificateReloader, threads: Int, grace: Duration, logger: Logger) {
        self.frontends = frontends
        self.certificates = certificates
        self.reloader = reloader
        self.threads = threads
        self.grace = grace
        self.logger = logger
    }

    public func run() async throws {
        let server = try await ProxyServer.start(frontends: frontends, certificates: certificates, threads: threads, logger: logger)
        await withTaskGroup(of: Void.self) { group in
            group.addTask {
                do {
                    try await reloader.run()
                } catch {
                    logger.error("certificate watch stopped; certificates will not be reloaded: \(error)")
                }
            }
            // Returns when graceful shutdown begins (or the task is cancelled).
            try? await gracefulShutdown()
            logger.notice("shutting down: no new connections, draining open ones", metadata: ["proxy.grace_seconds": "\(grace.components.seconds)"])
            await server.shutdown(grace: grace)
            group.cancelAll()
        }
    }
}
