import Foundation
import Logging
import NIOConcurrencyHelpers
import NIOCore
import ServiceLifecycle

/// The proxy as a long-running `Service`: loads the certificates, binds the frontends, runs the servers' health
/// checks, keeps reloading certificates as they change, and on graceful shutdown (SIGTERM) stops accepting and drains open connections for `grace`.
///
/// While it runs, ``reconfigure(frontends:)`` changes the frontends without closing open connections (SIGHUP).
/// Copies of the value share the running server.
public struct ProxyService: Service {
    /// The frontends bound when the service starts.
    public let frontends: [ProxyFrontend]
    /// The certificates served.
    public let certificates: CertificateSet
    /// Keeps `certificates` in step with the files.
    public let reloader: CertificateReloader
    /// Event loops (one per core by default).
    public let threads: Int
    /// How long open connections may continue after graceful shutdown begins.
    public let grace: Duration
    let logger: Logger
    private let running = NIOLockedValueBox<ProxyServer?>(nil)

    /// Creates the service; nothing is bound until ``run()``.
    /// - Parameters:
    ///   - frontends: The frontends to bind at start.
    ///   - certificates: The certificates to serve.
    ///   - reloader: Fills `certificates`; its `loadAll()` should have been called (and its errors reported) first.
    ///   - threads: Event loops, one per core by default.
    ///   - grace: How long open connections may keep going after shutdown begins.
    ///   - logger: Where the proxy logs.
    public init(
        frontends: [ProxyFrontend], certificates: CertificateSet, reloader: CertificateReloader, threads: Int,
        grace: Duration, logger: Logger
    ) {
        self.frontends = frontends
        self.certificates = certificates
        self.reloader = reloader
        self.threads = threads
        self.grace = grace
        self.logger = logger
    }

    /// Every frontend with its servers' states and counters (for the stats page); empty when not running.
    public func snapshot() -> [ProxyFrontendSnapshot] {
        running.withLockedValue { $0 }?.snapshot() ?? []
    }

    /// The port each frontend listens on, by frontend name; empty before the frontends are bound and after
    /// shutdown began.
    public var boundPorts: [String: Int] {
        running.withLockedValue { $0?.boundPorts } ?? [:]
    }

    /// Changes the running proxy's frontends without closing open connections; see
    /// ``ProxyServer/reconfigure(frontends:)`` for how frontends are matched and what happens on failure.
    /// - Parameter frontends: The complete new list of frontends.
    /// - Throws: ``ProxyError/notRunning`` before ``run()`` has bound the frontends or after shutdown began;
    ///   otherwise what ``ProxyServer/reconfigure(frontends:)`` throws (the old configuration keeps serving).
    public func reconfigure(frontends: [ProxyFrontend]) async throws(ProxyError) {
        guard let server = running.withLockedValue({ $0 }) else { throw .notRunning }
        try await server.reconfigure(frontends: frontends)
    }

    /// Binds the frontends, watches the certificates and serves until graceful shutdown, then drains.
    /// - Throws: ``ProxyError`` when the frontends cannot be started.
    public func run() async throws {
        let server = try await ProxyServer.start(frontends: frontends, certificates: certificates, threads: threads, logger: logger)
        running.withLockedValue { $0 = server }
        await withTaskGroup(of: Void.self) { group in
            group.addTask { await server.runHealthChecks() }
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
            running.withLockedValue { $0 = nil }
            await server.shutdown(grace: grace)
            group.cancelAll()
        }
    }
}

extension ProxyService: CustomStringConvertible {
    /// `ProxyService(frontends: https,mqtts)`: what ServiceLifecycle logs for the service. Without it ServiceGroup
    /// renders the whole value by reflection when the group is built (measured: ~40 M instructions, about 15 ms of
    /// start-up, and the reflection metadata and code that touches stay resident).
    public var description: String { "ProxyService(frontends: \(frontends.map(\.name).joined(separator: ",")))" }
}
