import ACMEProtocol
import CertkeeperTestSupport
import Crypto
import Foundation
import Logging
import X509
import _CryptoExtras

@testable import CertbotImport

/// A certbot configuration directory written by the test, laid out as certbot 2.1 writes it:
/// `renewal/<name>.conf`, `archive/<name>/{cert,chain,fullchain,privkey}N.pem`, `live/<name>/*.pem` symlinks into the
/// archive, `accounts/<host:port/path>/<id>/{private_key.json,regr.json,meta.json}`.
struct CertbotTree {
    static let server = "https://127.0.0.1:14000/dir"

    let directory: TemporaryDirectory
    /// The directory the renewal configurations name (``root`` unless the tree imitates a copy).
    let namedRoot: String
    var root: String { directory.path }

    /// - Parameter namedRoot: The directory the renewal configurations' paths start with; give another one to imitate
    ///   a copy of `/etc/letsencrypt` made elsewhere.
    init(namedRoot: String? = nil) throws {
        directory = try TemporaryDirectory(name: "certbot")
        self.namedRoot = namedRoot ?? directory.path
        for sub in ["renewal", "live", "archive", "accounts"] {
            try FileManager.default.createDirectory(atPath: "\(root)/\(sub)", withIntermediateDirectories: true)
        }
    }

    /// Writes version `version` of a lineage's files and points `live/` at it.
    func writeVersion(_ name: String, version: Int, certificatePEM: String, chainPEM: String, keyPEM: String) throws {
        let archive = "\(root)/archive/\(name)"
        let live = "\(root)/live/\(name)"
        try FileManager.default.createDirectory(atPath: archive, withIntermediateDirectories: true)
        try FileManager.default.createDirectory(atPath: live, withIntermediateDirectories: true)
        let files = ["cert": certificatePEM, "chain": chainPEM, "fullchain": certificatePEM + chainPEM, "privkey": keyPEM]
        for (kind, text) in files {
            try text.write(toFile: "\(archive)/\(kind)\(version).pem", atomically: true, encoding: .utf8)
            try? FileManager.default.removeItem(atPath: "\(live)/\(kind).pem")
            try FileManager.default.createSymbolicLink(atPath: "\(live)/\(kind).pem", withDestinationPath: "../../archive/\(name)/\(kind)\(version).pem")
        }
    }

    /// Writes a lineage for `leaf` (version 1 unless told) and its renewal configuration.
    func addLineage(_ name: String, leaf: TestCertificate, version: Int = 1, account: String? = "acct1", server: String = Self.server, extra: String = "authenticator = standalone\nkey_type = ecdsa") throws {
        try writeVersion(name, version: version, certificatePEM: leaf.certificatePEM, chainPEM: leaf.chainPEM, keyPEM: leaf.privateKeyPEM)
        try writeConf(name, account: account, server: server, extra: extra)
    }

    func writeConf(_ name: String, account: String? = "acct1", server: String = Self.server, extra: String = "") throws {
        let conf = """
        # renew_before_expiry = 30 days
        version = 2.1.0
        archive_dir = \(namedRoot)/archive/\(name)
        cert = \(namedRoot)/live/\(name)/cert.pem
        privkey = \(namedRoot)/live/\(name)/privkey.pem
        chain = \(namedRoot)/live/\(name)/chain.pem
        fullchain = \(namedRoot)/live/\(name)/fullchain.pem

        # Options used in the renewal process
        [renewalparams]
        \(account.map { "account = \($0)" } ?? "")
        config_dir = \(namedRoot)
        server = \(server)
        \(extra)
        """
        try conf.write(toFile: "\(root)/renewal/\(name).conf", atomically: true, encoding: .utf8)
    }

    /// Writes a certbot account with a fresh RSA key; returns the key.
    @discardableResult
    func addAccount(id: String = "acct1", server: String = Self.server, accountURL: String = "https://127.0.0.1:14000/my-account/1") throws -> _RSA.Signing.PrivateKey {
        let key = try _RSA.Signing.PrivateKey(keySize: .bits2048)
        let directory = "\(root)/accounts/\(CertbotDirectory.serverPath(server))/\(id)"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        try Data(try JWKFixtures.json(try JWKFixtures.rsaMembers(key))).write(to: URL(fileURLWithPath: "\(directory)/private_key.json"))
        try #"{"body": {}, "uri": "\#(accountURL)"}"#.write(toFile: "\(directory)/regr.json", atomically: true, encoding: .utf8)
        try #"{"creation_dt": "2026-01-02T03:04:05Z", "creation_host": "node1"}"#.write(toFile: "\(directory)/meta.json", atomically: true, encoding: .utf8)
        return key
    }

    func remove() { directory.remove() }
}

/// A logger that drops everything (tests look at results, not log lines).
let quietLogger = Logger(label: "test") { _ in SwiftLogNoOpLogHandler() }
