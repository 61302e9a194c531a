import CertkeeperTestSupport
import Foundation
import Testing

/// Config/lorawan and Config/mqtt-broker: the issue's two reference deployments, each as the HAProxy configuration
/// operators run today beside the certkeeper configuration that replaces it. Both halves must be real: certkeeper
/// accepts its file, Debian's HAProxy accepts its file, and every port HAProxy binds is served by certkeeper too.
@Suite("Reference deployments in Config/")
struct ReferenceDeploymentTests {
    static let configDirectory = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Config").path

    @Test("certkeeper check-config accepts the certkeeper file, haproxy -c the HAProxy file, and both listen on the same ports", arguments: ["lorawan", "mqtt-broker"])
    func deployment(name: String) async throws {
        let directory = "\(Self.configDirectory)/\(name)"
        let certkeeperFile = "\(directory)/certkeeper.yaml"
        let check = try await CLI.run(["check-config", "--config", certkeeperFile])
        #expect(check.exitCode == 0, "\(check.stdout)\(check.stderr)")

        let haproxyText = try String(contentsOfFile: "\(directory)/haproxy.cfg", encoding: .utf8)
        let haproxy = "/usr/sbin/haproxy"
        try #require(FileManager.default.isExecutableFile(atPath: haproxy), "haproxy missing: apt-get install haproxy")
        let work = try TemporaryDirectory(name: "reference-\(name)")
        defer { work.remove() }
        let leaf = try TestCA.make().issueLeaf(dnsNames: ["example.com"])
        let bundle = try work.write(leaf.fullChainPEM + leaf.privateKeyPEM, to: "bundle.pem")
        let checkable = try work.write(
            haproxyText.replacing(#/crt /etc/haproxy/certs/[^ \n]+/#) { _ in "crt \(bundle)" }, to: "haproxy.cfg")
        let valid = try await OneShotProcess.run(executable: haproxy, arguments: ["-c", "-f", checkable])
        #expect(valid.exitCode == 0, "haproxy -c: \(valid.stdout)\(valid.stderr)")

        // Every `bind` port of HAProxy is a certkeeper frontend's or the stats listener's port.
        let certkeeperText = try String(contentsOfFile: certkeeperFile, encoding: .utf8)
        let boundPorts = Set(haproxyText.matches(of: #/\n\s*bind [^\n]*?:(\d+)/#).map { String($0.output.1) })
        let servedPorts = Set(certkeeperText.matches(of: #/listen: "[^"]*:(\d+)"/#).map { String($0.output.1) })
        #expect(!boundPorts.isEmpty)
        #expect(boundPorts.isSubset(of: servedPorts), "HAProxy binds \(boundPorts.sorted()), certkeeper listens on \(servedPorts.sorted())")
    }
}
