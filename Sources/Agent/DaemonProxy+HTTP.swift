import CertProxy
import CertStore
import CertkeeperConfig
import Logging

extension DaemonProxy {
    /// The proxy's frontends for `configuration`: those of ``frontends(_:)``, with every `mode: http` frontend
    /// answering ACME http-01 challenges from the ACME account stored for `acme.directory` (the one peer sync
    /// replicates) and redirecting the rest to https (`https_port`).
    /// - Parameters:
    ///   - configuration: The whole configuration (ACME directory, `proxy:`).
    ///   - store: The process's store (the account key is read through it).
    ///   - logger: Where a missing account is reported when a challenge arrives.
    public static func frontends(_ configuration: CertkeeperConfiguration, store: CertificateStore, logger: Logger) -> [ProxyFrontend] {
        guard let settings = configuration.proxy else { return [] }
        let thumbprints = AccountThumbprintSource(store: store, directoryURL: configuration.acme.directoryURL, logger: logger)
        return zip(settings.frontends, frontends(settings)).map { configured, frontend in
            guard configured.mode == .http else { return frontend }
            var http = frontend
            http.http = ProxyHTTPSettings(thumbprints: thumbprints, httpsPort: configured.httpsPort)
            return http
        }
    }
}
