import CertkeeperTestSupport
import Foundation
import Testing

/// `issuer: internal` end to end with the real binary and Config/internal.yaml: renew with no network, `trust`,
/// `openssl verify` and `curl` as independent clients, and `certkeeper daemon` issuing at start and serving https.
@Suite("issuer: internal end to end", .serialized)
struct InternalIssuerTests {
    static let embeddedDefault = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Config/internal.yaml").path

    /// Config/internal.yaml with the state directory and, when given, the two ports replaced.
    static func configuration(in directory: TemporaryDirectory, listenPort: Int? = nil, backendPort: Int? = nil) throws -> String {
        var text = try String(contentsOfFile: embeddedDefault, encoding: .utf8)
            .replacingOccurrences(of: "@STATE@", with: directory.appending("state"))
        if let listenPort { text = text.replacingOccurrences(of: "127.0.0.1:8443", with: "127.0.0.1:\(listenPort)") }
        if let backendPort { text = text.replacingOccurrences(of: "127.0.0.1:8080", with: "127.0.0.1:\(backendPort)") }
        return try directory.write(text, to: "certkeeper.yaml")
    }

    @Test("renew issues localhost from a new root with no acme section; trust prints that root; openssl verifies the leaf; revoke refuses; trust --install writes the root and runs the update command")
    func renewTrustVerify() async throws {
        let directory = try TemporaryDirectory(name: "internal-renew")
        defer { directory.remove() }
        let config = try Self.configuration(in: directory)
        func certkeeper(_ args: [String]) async throws -> (exitCode: Int32, stdout: String, stderr: String) {
            try await CLI.run(args + ["--config", config], environment: ["CERTKEEPER_CONFIG": ""], timeout: 60)
        }

        let early = try await certkeeper(["trust"])
        #expect(early.exitCode == 1)
        #expect(early.stdout.isEmpty)
        #expect(early.stderr.contains("no internal CA in") && early.stderr.contains("certkeeper renew"), "\(early.stderr)")
        #expect(early.stderr.split(separator: "\n").count == 1, "\(early.stderr)")

        let renew = try await certkeeper(["renew", "--no-random-sleep"])
        #expect(renew.exitCode == 0, "\(renew.stderr)")
        #expect(renew.stdout.hasPrefix("localhost: renewed (missing), serial "), "\(renew.stdout)")
        #expect(renew.stderr.contains("created the internal CA root"), "\(renew.stderr)")

        let live = directory.appending("state/live/localhost")
        let rootFile = directory.appending("state/internal-ca/root.pem")
        let trust = try await certkeeper(["trust"])
        #expect(trust.exitCode == 0, "\(trust.stderr)")
        #expect(trust.stdout == (try String(contentsOfFile: rootFile, encoding: .utf8)))
        #expect(trust.stdout.hasPrefix("-----BEGIN CERTIFICATE-----\n"))
        #expect(try mode(directory.appending("state/internal-ca/root.key")) == 0o600)
        let rootPath = try directory.write(trust.stdout, to: "root.pem")

        let verify = try tool("/usr/bin/openssl", ["verify", "-CAfile", rootPath, "\(live)/cert.pem"])
        #expect(verify.status == 0 && verify.output.contains(": OK"), "\(verify.output)")
        let text = try tool("/usr/bin/openssl", ["x509", "-noout", "-ext", "subjectAltName,extendedKeyUsage,basicConstraints", "-in", "\(live)/cert.pem"])
        #expect(text.output.contains("DNS:localhost, IP Address:127.0.0.1"), "\(text.output)")
        #expect(text.output.contains("TLS Web Server Authentication"), "\(text.output)")
        #expect(text.output.contains("CA:FALSE"), "\(text.output)")
        // fullchain = leaf + root; bundle.pem adds the key (0600), as for ACME certificates.
        let fullchain = try String(contentsOfFile: "\(live)/fullchain.pem", encoding: .utf8)
        #expect(fullchain.components(separatedBy: "-----BEGIN CERTIFICATE-----").count == 3)
        #expect(fullchain.hasSuffix(trust.stdout))
        #expect(try mode("\(live)/privkey.pem") == 0o600)

        let status = try await certkeeper(["status", "--json"])
        #expect(status.exitCode == 0)
        #expect(status.stdout.contains("\"reason\" : \"lifetimeFraction\""), "\(status.stdout)")

        let revoke = try await certkeeper(["revoke", "localhost"])
        #expect(revoke.exitCode == 1)
        #expect(revoke.stderr.contains("force-renew localhost"), "\(revoke.stderr)")

        let firstSerial = try opensslSerial("\(live)/cert.pem")
        let forced = try await certkeeper(["force-renew", "localhost"])
        #expect(forced.exitCode == 0, "\(forced.stderr)")
        #expect(try opensslSerial("\(live)/cert.pem") != firstSerial)
        #expect(try await certkeeper(["trust"]).stdout == trust.stdout, "a renewal must reuse the root")
        #expect(try tool("/usr/bin/openssl", ["verify", "-CAfile", rootPath, "\(live)/cert.pem"]).status == 0)

        // --install into a scratch directory with a stand-in for update-ca-certificates.
        let marker = directory.appending("update-ran")
        let update = try directory.write("#!/bin/sh\necho ran > \(marker)\n", to: "fake-update.sh")
        chmod(update, 0o755)
        let failing = try directory.write("#!/bin/sh\necho 'cannot do it' >&2\nexit 3\n", to: "failing-update.sh")
        chmod(failing, 0o755)
        let cas = directory.appending("ca-certificates")
        let install = try await certkeeper(["trust", "--install", "--ca-certificates-dir", cas, "--update-command", update])
        if geteuid() == 0 {
            #expect(install.exitCode == 0, "\(install.stderr)")
            let installed = try FileManager.default.contentsOfDirectory(atPath: cas)
            #expect(installed.count == 1 && installed[0].hasPrefix("certkeeper-") && installed[0].hasSuffix(".crt"), "\(installed)")
            #expect(try String(contentsOfFile: "\(cas)/\(installed[0])", encoding: .utf8) == trust.stdout)
            #expect(try mode("\(cas)/\(installed[0])") == 0o644)
            #expect(FileManager.default.fileExists(atPath: marker))
            #expect(install.stdout.contains("installed \(cas)/certkeeper-"), "\(install.stdout)")

            let broken = try await certkeeper(["trust", "--install", "--ca-certificates-dir", cas, "--update-command", failing])
            #expect(broken.exitCode == 1)
            #expect(broken.stderr.contains("exited with status 3: cannot do it"), "\(broken.stderr)")
        } else {
            #expect(install.exitCode == 1)
            #expect(install.stderr.contains("--install needs root"), "\(install.stderr)")
        }
    }

    @Test("certkeeper daemon with Config/internal.yaml issues localhost at start and serves it through the proxy: curl --cacert <root> https://localhost:PORT succeeds")
    func daemonServesInternalCertificate() async throws {
        let directory = try TemporaryDirectory(name: "internal-daemon")
        defer { directory.remove() }
        _ = try directory.write("hello over the internal CA\n", to: "site/index.html")
        let backend = try await StaticFileServer.start(rootDirectory: directory.appending("site"))
        defer { Task { await backend.stop() } }
        let port = try PortAllocator.shared.allocate()
        let config = try Self.configuration(in: directory, listenPort: port, backendPort: backend.port)

        let daemon = try CLI.start(["daemon", "--config", config], environment: ["CERTKEEPER_CONFIG": ""], logDirectory: directory.path)
        try await withDaemon(daemon) {
            try await daemon.waitForTCPPort(port: port)
            let rootPath = directory.appending("root.pem")
            var trusted = false
            #expect(try await eventually(seconds: 30) {
                guard FileManager.default.fileExists(atPath: directory.appending("state/live/localhost/meta.json")) else { return false }
                if !trusted {
                    let trust = try tool(try CLI.executablePath(), ["trust", "--config", config])
                    guard trust.status == 0 else { return false }
                    try trust.output.write(toFile: rootPath, atomically: true, encoding: .utf8)
                    trusted = true
                }
                return try tool("/usr/bin/curl", ["-sS", "--max-time", "10", "--cacert", rootPath, "https://localhost:\(port)/index.html"]).output == "hello over the internal CA\n"
            }, "no https through the daemon: \(daemon.logTail())")

            let byAddress = try tool("/usr/bin/curl", ["-sS", "--max-time", "10", "--cacert", rootPath, "https://127.0.0.1:\(port)/index.html"])
            #expect(byAddress.output == "hello over the internal CA\n", "the IP SAN: \(byAddress.output)")
            let untrusted = try tool("/usr/bin/curl", ["-sS", "--max-time", "10", "https://localhost:\(port)/index.html"])
            #expect(untrusted.status != 0, "curl without the root must refuse the certificate")
            let installed = try String(contentsOfFile: directory.appending("state/live/localhost/meta.json"), encoding: .utf8)
            #expect(installed.contains(try servedSerial(port: port, serverName: "localhost")), "the served certificate is the installed one")
            #expect(daemon.logTail(lines: 200).contains("created the internal CA root"))

        }
    }
}
