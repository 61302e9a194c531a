import CertProxy
import CertStore
import CertkeeperConfig
import Logging

extension DaemonProxy {
    /// The proxy's frontends for `configuration`: those of ``frontends(_:)``, with every `mode: http` frontend
    /// answering ACME http-01 challenges from the ACME account stored for `acme.directory` (the one peer sync
    /// replicates) and redirecting the rest to https (`https_port`).
    /// - Parameters:
    ///   - configuration: The whole configuration (state directory, ACME directory, `proxy:`).
    ///   - logger: Where a missing account is reported when a challenge arrives.
    static func frontends(_ configuration: CertkeeperConfiguration, logger: Logger) -> [ProxyFrontend] {
        guard let settings = configuration.proxy else { return [] }
        let thumbprints = AccountThumbprintSource(
            store: CertificateStore(root: configuration.stateDirectory, keepVersions: configuration.keepVersions, logger: logger),
            directoryURL: configuration.acme.directoryURL, logger: logger)
        return zip(settings.frontends, frontends(settings)).map { configured, frontend in
            guard configured.mode == .http else { return frontend }
            var http = frontend
            http.http = ProxyHTTPSettings(thumbprints: thumbprints, httpsPort: configured.httpsPort)
            return http
        }
    }
}
