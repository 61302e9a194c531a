import NIOSSL

extension LocalhostServerIdentity {
    /// A NIOSSL server configuration presenting ``leaf`` (with its chain) and its key.
    /// - Throws: NIOSSL errors if the PEM cannot be loaded.
    public func makeServerTLSConfiguration() throws -> TLSConfiguration {
        try leaf.makeServerTLSConfiguration()
    }
}

extension TestCertificate {
    /// A NIOSSL server configuration presenting this certificate (followed by its intermediates) and key.
    /// - Throws: NIOSSL errors if the PEM cannot be loaded.
    public func makeServerTLSConfiguration() throws -> TLSConfiguration {
        let chain = try NIOSSLCertificate.fromPEMBytes(Array(fullChainPEM.utf8)).map { NIOSSLCertificateSource.certificate($0) }
        let key = try NIOSSLPrivateKey(bytes: Array(privateKeyPEM.utf8), format: .pem)
        return TLSConfiguration.makeServerConfiguration(certificateChain: chain, privateKey: .privateKey(key))
    }

    /// A NIOSSL client configuration that trusts only this certificate's root.
    /// - Throws: NIOSSL errors if the PEM cannot be loaded.
    public func makeClientTLSConfigurationTrustingRoot() throws -> TLSConfiguration {
        var configuration = TLSConfiguration.makeClientConfiguration()
        configuration.trustRoots = .certificates(try NIOSSLCertificate.fromPEMBytes(Array(rootPEM.utf8)))
        return configuration
    }
}
