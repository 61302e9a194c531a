import CertkeeperTestSupport
import Foundation
import Testing

/// The README's first command, `bash scripts/quickstart.sh`, run as a user would (with `--once` so it stops by
/// itself, and with the already built binary so it does not start a second build inside the test run).
@Suite("Quickstart script")
struct QuickstartScriptTests {
    static let repository = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().path

    @Test("quickstart.sh --once: the daemon issues localhost from its own CA and curl gets the backend's page over https")
    func quickstartOnce() async throws {
        let work = try TemporaryDirectory(name: "quickstart")
        defer { work.remove() }
        let ports = try PortAllocator.shared.allocate(count: 2)
        let result = try await OneShotProcess.run(
            executable: "/bin/bash", arguments: [Self.repository + "/scripts/quickstart.sh", "--once"],
            environment: [
                "CERTKEEPER_BIN": try CLI.executablePath(),
                "CERTKEEPER_QUICKSTART_DIR": work.path,
                "CERTKEEPER_QUICKSTART_PORT": "\(ports[0])",
                "CERTKEEPER_QUICKSTART_BACKEND_PORT": "\(ports[1])",
            ],
            timeout: 120)
        let output = result.stdout + result.stderr
        #expect(result.exitCode == 0, "quickstart failed:\n\(output)")
        #expect(result.stdout.contains("hello through certkeeper's proxy"), "the page did not come through the proxy:\n\(output)")
        #expect(result.stdout.contains("localhost"), "status should list the localhost certificate:\n\(output)")
        #expect(output.contains("created the internal CA root"))
        // The root really is a CA the served certificate chains to: checked independently with openssl.
        let verify = try await OneShotProcess.run(
            executable: "/usr/bin/openssl",
            arguments: ["verify", "-CAfile", work.appending("root.pem"), work.appending("state/live/localhost/cert.pem")])
        #expect(verify.exitCode == 0, "openssl verify: \(verify.stdout)\(verify.stderr)")
        // Nothing is left running: the daemon and the backend were stopped, so nothing accepts on their ports.
        for port in ports {
            let probe = try await OneShotProcess.run(executable: "/bin/bash", arguments: ["-c", "exec 3<>/dev/tcp/127.0.0.1/\(port)"], timeout: 10)
            #expect(probe.exitCode != 0, "quickstart left a process listening on \(port)")
        }
    }
}
