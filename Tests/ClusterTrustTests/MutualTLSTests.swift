import AsyncHTTPClient
import ClusterTrust
import CertkeeperTestSupport
import Foundation
import NIOSSL
import Testing

/// Real handshakes on loopback: a NIO server with the server configuration, async-http-client and
/// `openssl s_client` as clients.
@Suite("Mutual TLS between cluster nodes", .serialized)
struct MutualTLSTests {
    struct Cluster {
        let ca: ClusterCA
        let server: ClusterIdentity
        let client: ClusterIdentity
        let foreign: ClusterIdentity

        init() throws {
            let loopback = try NodeAddress(parsing: "127.0.0.1")
            ca = try ClusterCA.generate(clusterName: "prod")
            server = try ca.issueIdentity(nodeName: "node1", addresses: [loopback])
            client = try ca.issueIdentity(nodeName: "node2", addresses: [try NodeAddress(parsing: "10.0.0.2")])
            // Same cluster name, same node name, different CA: must still be refused.
            foreign = try ClusterCA.generate(clusterName: "prod").issueIdentity(nodeName: "node2", addresses: [loopback])
        }
    }

    @Test("async-http-client with the client configuration gets through, and the server sees its node name")
    func handshakeSucceeds() async throws {
        let cluster = try Cluster()
        let server = try await PeerTestServer.start(identity: cluster.server)
        do {
            let body = try await fetch("https://127.0.0.1:\(server.port)/v1/index", tls: cluster.client.makeClientTLSConfiguration())
            #expect(body == "hello node2\n")
            #expect(server.peerNames == ["node2"])
        } catch {
            await server.stop()
            throw error
        }
        await server.stop()
    }

    @Test("a client with no certificate, or one from another cluster CA, gets nothing")
    func clientsRefused() async throws {
        let cluster = try Cluster()
        let server = try await PeerTestServer.start(identity: cluster.server)
        do {
            var anonymous = TLSConfiguration.makeClientConfiguration()
            anonymous.trustRoots = .certificates([try NIOSSLCertificate(bytes: Array(cluster.ca.certificatePEM.utf8), format: .pem)])
            await #expect(throws: (any Error).self) {
                _ = try await fetch("https://127.0.0.1:\(server.port)/", tls: anonymous, retry: false)
            }
            // The foreign client trusts our CA (so it accepts the server) but presents its own CA's certificate.
            var foreign = cluster.foreign.makeClientTLSConfiguration()
            foreign.trustRoots = .certificates([try NIOSSLCertificate(bytes: Array(cluster.ca.certificatePEM.utf8), format: .pem)])
            await #expect(throws: (any Error).self) {
                _ = try await fetch("https://127.0.0.1:\(server.port)/", tls: foreign, retry: false)
            }
            #expect(server.peerNames.isEmpty, "a refused client reached the handler: \(server.peerNames)")
            #expect(server.errors.count >= 2, "\(server.errors)")
        } catch {
            await server.stop()
            throw error
        }
        await server.stop()
    }

    @Test("the client refuses a server from another CA, and a server certificate that does not name the address dialled")
    func serversRefused() async throws {
        let cluster = try Cluster()
        // A foreign server (its certificate names 127.0.0.1, but another CA signed it).
        let foreignServer = try await PeerTestServer.start(identity: cluster.foreign)
        // A server of our cluster whose certificate names 10.9.9.9 only.
        let elsewhere = try cluster.ca.issueIdentity(nodeName: "node3", addresses: [try NodeAddress(parsing: "10.9.9.9")])
        let wrongAddress = try await PeerTestServer.start(identity: elsewhere)
        // Nothing below throws, so both servers are always stopped at the end.
        await #expect(throws: (any Error).self) {
            _ = try await fetch("https://127.0.0.1:\(foreignServer.port)/", tls: cluster.client.makeClientTLSConfiguration(), retry: false)
        }
        do {
            _ = try await fetch("https://127.0.0.1:\(wrongAddress.port)/", tls: cluster.client.makeClientTLSConfiguration(), retry: false)
            Issue.record("a server certificate for 10.9.9.9 was accepted at 127.0.0.1")
        } catch {
            #expect(String(describing: error).contains("failedToValidateHostname"), "\(error)")
        }
        #expect(foreignServer.peerNames.isEmpty && wrongAddress.peerNames.isEmpty)
        await foreignServer.stop()
        await wrongAddress.stop()
    }

    @Test("openssl s_client: with the node's identity file it gets an answer; without a certificate or with a foreign one, nothing")
    func openSSLClient() async throws {
        let cluster = try Cluster()
        let directory = try TemporaryDirectory(name: "s-client")
        defer { directory.remove() }
        let caFile = try directory.write(cluster.ca.certificatePEM, to: "ca.pem")
        let identityFile = directory.appending("node2.pem")
        try cluster.client.write(to: identityFile, replacing: false)
        let foreignFile = directory.appending("foreign.pem")
        try cluster.foreign.write(to: foreignFile, replacing: false)
        let server = try await PeerTestServer.start(identity: cluster.server)
        do {
            // The identity file works as both -cert and -key: openssl skips the comments and takes the first
            // certificate and the key.
            let good = try await openSSLRequest(port: server.port, certificate: identityFile, key: identityFile, caFile: caFile)
            #expect(good.stdout.contains("hello node2"), "stdout: \(good.stdout) stderr: \(good.stderr)")

            let none = try await openSSLRequest(port: server.port, certificate: nil, key: nil, caFile: caFile)
            #expect(!none.stdout.contains("hello"), "stdout: \(none.stdout)")
            #expect(none.stderr.contains("alert") || none.exitCode != 0, "stderr: \(none.stderr)")

            let foreign = try await openSSLRequest(port: server.port, certificate: foreignFile, key: foreignFile, caFile: caFile)
            #expect(!foreign.stdout.contains("hello"), "stdout: \(foreign.stdout)")
            #expect(foreign.stderr.contains("alert") || foreign.exitCode != 0, "stderr: \(foreign.stderr)")

            #expect(server.peerNames == ["node2"])
        } catch {
            await server.stop()
            throw error
        }
        await server.stop()
    }

    @Test("peerNodeName reads the common name of a peer certificate")
    func peerNodeName() throws {
        let cluster = try Cluster()
        let certificate = try NIOSSLCertificate(bytes: Array(cluster.client.certificatePEM.utf8), format: .pem)
        #expect(ClusterIdentity.peerNodeName(certificate) == "node2")
    }
}
