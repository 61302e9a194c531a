import CertkeeperTestSupport
import Foundation
import Testing

/// `certkeeper force-renew` killed with SIGKILL at every `fsync` and `rename` it makes (strace's fault injection), then
/// `certkeeper renew`: whatever the kill point, the next run leaves the live certificate deployed — its hooks have run
/// for the serial that is live — and `status` agrees. Among the kill points is the one between the `live/` swap and
/// the hooks, where a record written only after the swap lost the deploy for good.
@Suite("A renewal killed at any write still deploys", .serialized)
struct CrashRecoveryTests {
    static let strace = "/usr/bin/strace"

    @Test("SIGKILL at each fsync and rename of force-renew; the next renew runs the owed deploy hooks")
    func killedRenewalDeploysOnNextRun() async throws {
        try #require(FileManager.default.isExecutableFile(atPath: Self.strace), "strace is needed (Debian package strace; .ci/run installs it)")
        let probe = try await OneShotProcess.run(executable: Self.strace, arguments: ["-f", "-qq", "-o", "/dev/null", "/bin/true"], timeout: 30)
        try #require(probe.exitCode == 0, "strace cannot trace here (ptrace refused?): \(probe.stderr)")
        let directory = try TemporaryDirectory(name: "crash-renew")
        defer { directory.remove() }
        let state = directory.appending("state")
        let hookLog = directory.appending("hooks.log")
        // The hook records which serial it deployed, read from the lineage it was given.
        let config = try directory.write("""
            state_dir: \(state)
            node_name: n1
            certificates:
              - name: web
                issuer: internal
                domains: [localhost]
            hooks:
              deploy:
                - "grep -o '\\"serial\\" : \\"[0-9a-f]*\\"' \\"$RENEWED_LINEAGE/meta.json\\" | cut -d'\\"' -f4 >> \(hookLog)"
            """, to: "certkeeper.yaml")
        let binary = try CLI.executablePath()
        func certkeeper(_ args: [String]) async throws -> (exitCode: Int32, stdout: String, stderr: String) {
            try await CLI.run(args + ["--config", config], environment: ["CERTKEEPER_CONFIG": ""], timeout: 60)
        }
        func liveSerial() throws -> String {
            let data = try Data(contentsOf: URL(fileURLWithPath: "\(state)/live/web/meta.json"))
            let object = try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
            return try #require(object["serial"] as? String)
        }
        func deployedSerials() -> [String] {
            ((try? String(contentsOfFile: hookLog, encoding: .utf8)) ?? "").split(separator: "\n").map(String.init)
        }

        // A temporary left by a writer killed long ago is removed when renew starts.
        try FileManager.default.createDirectory(atPath: "\(state)/state", withIntermediateDirectories: true)
        let leftover = "\(state)/state/.renewal-web.json.tmp-0123456789ab"
        #expect(FileManager.default.createFile(atPath: leftover, contents: Data("{\"partial".utf8)))
        try FileManager.default.setAttributes([.modificationDate: Date().addingTimeInterval(-3600)], ofItemAtPath: leftover)

        let first = try await certkeeper(["renew", "--no-random-sleep"])
        try #require(first.exitCode == 0, "\(first.stderr)")
        #expect(!FileManager.default.fileExists(atPath: leftover), "the leftover temporary is still there")
        #expect(first.stderr.contains("removed a leftover temporary file"), "\(first.stderr)")
        #expect(deployedSerials() == [try liveSerial()])

        func markLiveRevoked() throws -> String {
            // A revocation mark for the live serial: every run until a new certificate is live must see it.
            let path = "\(state)/state/renewal-web.json"
            var object = (try? JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: path)))) as? [String: Any] ?? [:]
            let serial = try liveSerial()
            object["revokedSerial"] = serial
            try JSONSerialization.data(withJSONObject: object).write(to: URL(fileURLWithPath: path))
            return serial
        }

        // The kill point that matters, made exact: the first fsync of live/ comes right after the swap.
        let beforeExact = try liveSerial()
        let exact = try await OneShotProcess.run(
            executable: Self.strace,
            arguments: ["-f", "-qq", "-o", "/dev/null", "-P", "\(state)/live", "-e", "trace=fsync", "-e", "inject=fsync:signal=SIGKILL:when=1",
                        binary, "force-renew", "web", "--config", config],
            environment: ["CERTKEEPER_CONFIG": ""], timeout: 60)
        #expect(exact.exitCode != 0, "force-renew was not killed at the fsync of live/")
        #expect(try liveSerial() != beforeExact, "killed before the swap")
        #expect(deployedSerials().last == beforeExact, "the hooks ran before the kill")
        let interrupted = try await certkeeper(["status"])
        #expect(interrupted.exitCode == 1 && interrupted.stdout.contains("deploy hooks interrupted"), "\(interrupted.stdout)")
        let recovered = try await certkeeper(["renew", "--no-random-sleep"])
        #expect(recovered.exitCode == 0, "\(recovered.stderr)")
        #expect(deployedSerials().last == (try liveSerial()), "the next renew did not run the owed hooks")
        #expect(try await certkeeper(["status"]).exitCode == 0)

        // Then every kill point in turn, with the live certificate marked revoked each time: whatever the point,
        // the next renew leaves a certificate live that is not the revoked one, and deployed.
        var killedBetweenSwapAndHooks = 0
        var trials = 0
        for syscall in ["fsync", "rename,renameat,renameat2"] {
            // Each kill point in turn, until the command runs to completion (fewer calls than the count).
            for point in 1...60 {
                let revoked = try markLiveRevoked()
                let before = try liveSerial()
                let deployedBefore = deployedSerials().count
                let killed = try await OneShotProcess.run(
                    executable: Self.strace,
                    arguments: ["-f", "-qq", "-o", "/dev/null", "-e", "trace=\(syscall)", "-e", "inject=\(syscall):signal=SIGKILL:when=\(point)",
                                binary, "force-renew", "web", "--config", config],
                    environment: ["CERTKEEPER_CONFIG": ""], timeout: 60)
                if killed.exitCode == 0 {
                    // Ran to completion: fewer calls than `point`. The revocation it found was renewed away.
                    #expect(try liveSerial() != revoked)
                    break
                }
                trials += 1
                let swapped = try liveSerial() != before
                if swapped && deployedSerials().count == deployedBefore {
                    // The crash the write-ahead record is for: the new certificate is live and its hooks never ran.
                    killedBetweenSwapAndHooks += 1
                    let status = try await certkeeper(["status"])
                    #expect(status.exitCode == 1, "\(syscall) #\(point): status must show the owed deploy: \(status.stdout)")
                    #expect(status.stdout.contains("deploy hooks interrupted"), "\(status.stdout)")
                }
                let renew = try await certkeeper(["renew", "--no-random-sleep"])
                #expect(renew.exitCode == 0, "\(syscall) #\(point): \(renew.stderr.suffix(600))")
                let live = try liveSerial()
                #expect(live != revoked, "\(syscall) #\(point): the revoked certificate \(revoked) is still live after renew")
                #expect(deployedSerials().last == live, "\(syscall) #\(point): the live serial \(live) was never deployed; hooks ran for \(deployedSerials())")
                let status = try await certkeeper(["status"])
                #expect(status.exitCode == 0, "\(syscall) #\(point): \(status.stdout)")
            }
        }
        #expect(trials >= 5, "strace killed force-renew only \(trials) times")
        #expect(killedBetweenSwapAndHooks >= 1, "no kill point fell between the live swap and the deploy hooks")
    }
}
