import CertProxy
import Logging

/// The setup every hot-swap test shares: a running ``CertificateReloader`` filling `certificates`, one echo
/// backend, and a proxy in front of it serving those certificates.
struct WatchedProxy {
    /// What the proxy serves (the reloader keeps it current).
    let certificates: CertificateSet
    /// The proxy under test.
    let proxy: RunningProxy
    /// The echo backend behind it.
    let backend: TestBackend

    /// Starts the reloader's watch, the backend and the proxy, runs `body`, then stops all three (also when `body`
    /// throws), waiting for the watch to end so nothing outlives the test.
    static func run<T>(
        reloader: CertificateReloader, certificates: CertificateSet, logger: Logger,
        _ body: (WatchedProxy) async throws -> T
    ) async throws -> T {
        let watching = Task { try await reloader.run() }
        func stopWatching() async {
            watching.cancel()
            _ = await watching.result
        }
        do {
            let backend = try await TestBackend.start()
            let proxy: RunningProxy
            do {
                proxy = try await RunningProxy.start(certificates: certificates, backends: [backend.port], logger: logger)
            } catch {
                await backend.stop()
                throw error
            }
            let result = try await stopping(proxy, backend) {
                try await body(WatchedProxy(certificates: certificates, proxy: proxy, backend: backend))
            }
            await stopWatching()
            return result
        } catch {
            await stopWatching()
            throw error
        }
    }
}

extension TestClient: Stoppable {
    func stop() async { await close() }
}
