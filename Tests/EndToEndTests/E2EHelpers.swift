import CertkeeperTestSupport
import Foundation
import X509
import Testing

/// A certkeeper installation for one test: a state directory and a config file pointing at some ACME server.
struct Installation {
    let directory: TemporaryDirectory
    let configPath: String
    let stateDirectory: String

    /// Writes a config with `certificatesYAML` (the list items under `certificates:`) and `extra` top-level YAML.
    init(name: String, directoryURL: String, caBundle: String, http01Port: Int, certificatesYAML: String, extra: String = "", stateDirectory: String? = nil) throws {
        directory = try TemporaryDirectory(name: name)
        let state = stateDirectory ?? directory.appending("state")
        self.stateDirectory = state
        let yaml = """
        state_dir: \(state)
        node_name: test-node
        acme:
          directory: \(directoryURL)
          email: ops@example.org
          ca_bundle: \(caBundle)
          request_timeout: 10s
          order_timeout: 60s
        renew:
          http01_listen: 127.0.0.1:\(http01Port)
          random_sleep: 0
          lock_timeout: 60s
        \(extra)
        certificates:
        \(certificatesYAML)
        """
        configPath = try directory.write(yaml, to: "certkeeper.yaml")
    }

    /// Runs `certkeeper <args> --config <this config>`.
    func run(_ args: [String], timeout: Double = 120) async throws -> (exitCode: Int32, stdout: String, stderr: String) {
        try await CLI.run(args + ["--config", configPath], environment: ["CERTKEEPER_CONFIG": ""], timeout: timeout)
    }

    func live(_ name: String, _ file: String) throws -> String {
        try String(contentsOfFile: "\(stateDirectory)/live/\(name)/\(file)", encoding: .utf8)
    }

    func liveBytes(_ name: String) -> [String: Data] {
        var files: [String: Data] = [:]
        for file in ["cert.pem", "chain.pem", "fullchain.pem", "privkey.pem", "bundle.pem", "meta.json"] {
            files[file] = FileManager.default.contents(atPath: "\(stateDirectory)/live/\(name)/\(file)")
        }
        return files
    }

    func meta(_ name: String) throws -> [String: Any] {
        let data = try Data(contentsOf: URL(fileURLWithPath: "\(stateDirectory)/live/\(name)/meta.json"))
        return try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
    }

    func serial(_ name: String) throws -> String {
        try #require(try meta(name)["serial"] as? String)
    }
}

/// Runs a command-line tool (openssl, curl) as an independent client; returns status and combined output.
func tool(_ executable: String, _ arguments: [String], input: String? = nil) throws -> (status: Int32, output: String) {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: executable)
    process.arguments = arguments
    let pipe = Pipe()
    process.standardOutput = pipe
    process.standardError = pipe
    try process.run()
    let data = pipe.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    return (process.terminationStatus, String(decoding: data, as: UTF8.self))
}

/// Verifies `cert` with its intermediates against `rootPEM` using `openssl verify`.
func opensslVerify(certPath: String, chainPath: String, rootPEM: String, in directory: TemporaryDirectory) throws -> (Bool, String) {
    let rootPath = try directory.write(rootPEM, to: "pebble-root-\(UUID().uuidString).pem")
    let result = try tool("/usr/bin/openssl", ["verify", "-CAfile", rootPath, "-untrusted", chainPath, certPath])
    return (result.status == 0 && result.output.contains(": OK"), result.output)
}

/// The serial of the first certificate in a PEM file, as openssl prints it (upper-case hex).
func opensslSerial(_ path: String) throws -> String {
    let result = try tool("/usr/bin/openssl", ["x509", "-noout", "-serial", "-in", path])
    return result.output.replacingOccurrences(of: "serial=", with: "").trimmingCharacters(in: .whitespacesAndNewlines)
}

/// The file's permission bits.
func mode(_ path: String) throws -> Int {
    let attributes = try FileManager.default.attributesOfItem(atPath: path)
    return (attributes[.posixPermissions] as? NSNumber)?.intValue ?? -1
}

/// Runs `body` with a fresh Pebble and always stops it (and its challtestsrv) before returning, even on failure.
func withPebble<T>(_ options: PebbleServer.Options = .init(), _ body: (PebbleServer) async throws -> T) async throws -> T {
    let pebble = try await PebbleServer.start(options: options)
    do {
        let result = try await body(pebble)
        await pebble.stop()
        return result
    } catch {
        await pebble.stop()
        throw error
    }
}

/// The serial a TLS server on 127.0.0.1 serves for `serverName`, asked with `openssl s_client`, lower-cased without
/// leading zeros ("" when the handshake fails).
func servedSerial(port: Int, serverName: String) throws -> String {
    let script = "openssl s_client -connect 127.0.0.1:\(port) -servername \(serverName) </dev/null 2>/dev/null | openssl x509 -noout -serial"
    let result = try tool("/bin/sh", ["-c", script])
    return normalised(result.output.replacingOccurrences(of: "serial=", with: ""))
}

/// A certificate's serial in the same form as ``servedSerial(port:serverName:)``.
func hexSerial(_ certificate: Certificate) -> String {
    normalised(certificate.serialNumber.bytes.map { String(format: "%02x", $0) }.joined())
}

/// Lower-case hex without leading zeros or surrounding space.
func normalised(_ hex: String) -> String {
    let trimmed = hex.trimmingCharacters(in: .whitespacesAndNewlines).lowercased()
    return String(trimmed.drop(while: { $0 == "0" }))
}

/// Polls `condition` every 100 ms for at most `seconds`.
func eventually(seconds: Double = 5, _ condition: () throws -> Bool) async throws -> Bool {
    let deadline = Date().addingTimeInterval(seconds)
    while Date() < deadline {
        if try condition() { return true }
        try await Task.sleep(for: .milliseconds(100))
    }
    return try condition()
}

/// Runs `body` against a started `certkeeper daemon`, then stops it with SIGTERM and expects exit 0 (a clean
/// drain); the process is stopped whatever happens.
func withDaemon(
    _ daemon: ManagedProcess, sourceLocation: SourceLocation = #_sourceLocation, _ body: () async throws -> Void
) async throws {
    do {
        try await body()
        daemon.send(signal: SIGTERM)
        #expect(await daemon.waitForExit(timeout: 30) == 0, "\(daemon.logTail())", sourceLocation: sourceLocation)
    } catch {
        await daemon.stop()
        throw error
    }
    await daemon.stop()
}
