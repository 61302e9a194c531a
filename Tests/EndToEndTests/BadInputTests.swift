import CertkeeperTestSupport
import Foundation
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// Bad input of every kind: one clear error line, the documented exit code, the previous live certificate untouched.
@Suite("Bad input keeps the good certificate", .serialized)
struct BadInputTests {
    @Test("an invalid config exits 2 with the key paths, before touching the store")
    func invalidConfig() async throws {
        let directory = try TemporaryDirectory(name: "badconfig")
        defer { directory.remove() }
        let state = directory.appending("state")
        let config = try directory.write("""
        state_dir: \(state)
        acme:
          directory: https://127.0.0.1:1/dir
          emial: ops@example.org
        certificates:
          - name: web
            domains: ["exa mple.org"]
          - domains: [ok.example.org]
        """, to: "certkeeper.yaml")
        for command in [["renew", "--no-random-sleep"], ["force-renew", "--all"], ["status"], ["check-config"]] {
            let result = try await CLI.run(command + ["--config", config])
            #expect(result.exitCode == 2, "\(command): \(result.stderr)")
            #expect(result.stderr.contains("acme.emial"), "\(command): \(result.stderr)")
            #expect(result.stderr.contains("certificates[0].domains[0]"), "\(command): \(result.stderr)")
            #expect(result.stderr.contains("certificates[1].name"), "\(command): \(result.stderr)")
            // One line per problem, each naming the file.
            for line in result.stderr.split(separator: "\n") { #expect(line.contains(config), "\(line)") }
            #expect(!FileManager.default.fileExists(atPath: state), "state directory was created by \(command)")
        }
        // A missing file and the environment variable override.
        let missing = try await CLI.run(["check-config"], environment: ["CERTKEEPER_CONFIG": directory.appending("nope.yaml")])
        #expect(missing.exitCode == 2)
        #expect(missing.stderr.contains("nope.yaml"))
        // Usage errors are exit 2 too.
        let usage = try await CLI.run(["force-renew", "--config", config])
        #expect(usage.exitCode == 2)
        let unknown = try await CLI.run(["renew", "--bogus"])
        #expect(unknown.exitCode == 2)
    }

    @Test("a certificate name the store would refuse (a..b) is exit 2 at check-config and at renew, before the store is touched")
    func storeNameRuleAtCheckConfig() async throws {
        let directory = try TemporaryDirectory(name: "badname")
        defer { directory.remove() }
        let state = directory.appending("state")
        let config = try directory.write("""
            state_dir: \(state)
            acme:
              directory: https://127.0.0.1:1/dir
            certificates:
              - name: a..b
                domains: [example.org]
            """, to: "certkeeper.yaml")
        for command in [["check-config"], ["renew", "--no-random-sleep"]] {
            let result = try await CLI.run(command + ["--config", config])
            #expect(result.exitCode == 2, "\(command): \(result.stdout) \(result.stderr)")
            #expect(result.stderr.contains("certificates[0].name: 'a..b' is not a valid name: it contains '..'"), "\(result.stderr)")
            #expect(!FileManager.default.fileExists(atPath: state), "\(command) created the state directory")
        }
    }

    @Test("check-config: a dns-01 hook that does not exist or is not executable is exit 2 with its key path")
    func dnsHookMustBeExecutable() async throws {
        let directory = try TemporaryDirectory(name: "dnshook")
        defer { directory.remove() }
        let notExecutable = try directory.write("#!/bin/sh\nexit 0\n", to: "plain-hook")
        let executable = try directory.write("#!/bin/sh\nexit 0\n", to: "dns-hook")
        #expect(chmod(executable, 0o755) == 0)
        func config(_ hook: String) throws -> String {
            try directory.write("""
                state_dir: \(directory.appending("state"))
                acme:
                  directory: https://127.0.0.1:1/dir
                certificates:
                  - name: wild
                    domains: ["*.example.org"]
                    challenge: {type: dns-01, hook: \(hook)}
                """, to: "certkeeper.yaml")
        }
        for (hook, problem) in [(directory.appending("missing-hook"), "does not exist"), (notExecutable, "is not executable")] {
            let path = try config(hook)
            let result = try await CLI.run(["check-config", "--config", path])
            #expect(result.exitCode == 2, "\(hook): \(result.stdout) \(result.stderr)")
            #expect(result.stderr.contains("certificates[0].challenge.hook: \(hook) \(problem)"), "\(result.stderr)")
            #expect(result.stderr.split(separator: "\n").count == 1 && result.stderr.contains(path), "\(result.stderr)")
        }
        let good = try await CLI.run(["check-config", "--config", try config(executable)])
        #expect(good.exitCode == 0, "\(good.stderr)")
    }

    @Test("CA down, a failing hook, a hanging hook, a full and a read-only state directory")
    func failuresKeepTheLiveCertificate() async throws {
        try await withPebble(.init(nonceRejectPercent: 20, authzReusePercent: 50)) { pebble in
            let mount = try TemporaryDirectory(name: "tmpfs")
            // A small tmpfs we can fill up and remount read-only.
            let mounted = try tool("/bin/mount", ["-t", "tmpfs", "-o", "size=256k", "tmpfs", mount.path])
            try #require(mounted.status == 0, "mount: \(mounted.output)")
            defer {
                _ = try? tool("/bin/umount", ["-l", mount.path])
                mount.remove()
            }
            let state = mount.appending("state")
            let hookMarker = mount.appending("hook-mode")
            let hook = """
            hooks:
              timeout: 2s
              deploy:
                - command: "m=$(cat \(hookMarker) 2>/dev/null || echo ok); if [ $m = fail ]; then echo broken >&2; exit 3; elif [ $m = hang ]; then sleep 60; fi"
            """
            let good = try Installation(
                name: "badinput", directoryURL: pebble.directoryURL, caBundle: pebble.caBundlePath, http01Port: pebble.httpPort,
                certificatesYAML: "  - {name: web, domains: [bad.example.org]}", extra: hook, stateDirectory: state
            )
            defer { good.directory.remove() }
            let first = try await good.run(["renew", "--no-random-sleep"])
            try #require(first.exitCode == 0, "stderr: \(first.stderr)")
            var before = good.liveBytes("web")
            #expect(before.count == 6 && before.values.allSatisfy { !$0.isEmpty })

            // 1. The CA is down (nothing listens on the directory port).
            let closedPort = try PortAllocator.shared.allocate()
            let down = try Installation(
                name: "down", directoryURL: "https://127.0.0.1:\(closedPort)/dir", caBundle: pebble.caBundlePath, http01Port: pebble.httpPort,
                certificatesYAML: "  - {name: web, domains: [bad.example.org]}", extra: hook, stateDirectory: state
            )
            defer { down.directory.remove() }
            let unreachable = try await down.run(["force-renew", "web"])
            #expect(unreachable.exitCode == 1)
            let errorLines = unreachable.stderr.split(separator: "\n").filter { $0.hasPrefix("certkeeper:") || $0.contains(" error ") }
            #expect(errorLines.count == 1, "\(unreachable.stderr)")
            #expect(unreachable.stderr.contains("127.0.0.1:\(closedPort)"), "\(unreachable.stderr)")
            #expect(good.liveBytes("web") == before)

            // 2. A failing hook: the new certificate stays (it is good), the exit code says 1, the hook's error is logged.
            try "fail".write(toFile: hookMarker, atomically: true, encoding: .utf8)
            let failingHook = try await good.run(["force-renew", "web"])
            #expect(failingHook.exitCode == 1, "\(failingHook.stderr)")
            #expect(failingHook.stdout.contains("deploy hook(s) failed"))
            #expect(failingHook.stderr.contains("broken"))
            #expect(good.liveBytes("web") != before)
            before = good.liveBytes("web")

            // 3. A hanging hook is killed after its timeout.
            try "hang".write(toFile: hookMarker, atomically: true, encoding: .utf8)
            let started = Date()
            let hanging = try await good.run(["force-renew", "web"])
            #expect(hanging.exitCode == 1, "\(hanging.stderr)")
            #expect(Date().timeIntervalSince(started) < 50, "the hook was not stopped at its timeout")
            #expect(hanging.stderr.contains("timed out"), "\(hanging.stderr)")
            try "ok".write(toFile: hookMarker, atomically: true, encoding: .utf8)
            before = good.liveBytes("web")

            // 4. A full state directory: renewal fails, nothing is torn, live is byte-for-byte the same.
            let filler = mount.appending("filler")
            _ = try tool("/bin/dd", ["if=/dev/zero", "of=\(filler)", "bs=4k", "count=1000"])
            let full = try await good.run(["force-renew", "web"])
            #expect(full.exitCode == 1, "\(full.stderr)")
            #expect(full.stderr.lowercased().contains("no space"), "\(full.stderr)")
            #expect(good.liveBytes("web") == before)
            try FileManager.default.removeItem(atPath: filler)

            // 5. A read-only state directory.
            let remount = try tool("/bin/mount", ["-o", "remount,ro", mount.path])
            try #require(remount.status == 0, "remount: \(remount.output)")
            let readOnly = try await good.run(["force-renew", "web"])
            #expect(readOnly.exitCode == 1, "\(readOnly.stderr)")
            #expect(readOnly.stderr.lowercased().contains("read-only"), "\(readOnly.stderr)")
            #expect(good.liveBytes("web") == before)
            _ = try tool("/bin/mount", ["-o", "remount,rw", mount.path])

            // 6. A live directory certkeeper does not manage (left by certbot): refused before anything is ordered.
        let foreign = try Installation(
            name: "foreign", directoryURL: pebble.directoryURL, caBundle: pebble.caBundlePath, http01Port: pebble.httpPort,
            certificatesYAML: "  - {name: legacy, domains: [legacy.example.org]}"
        )
        defer { foreign.directory.remove() }
        try FileManager.default.createDirectory(atPath: "\(foreign.stateDirectory)/live/legacy", withIntermediateDirectories: true)
        try "not ours".write(toFile: "\(foreign.stateDirectory)/live/legacy/cert.pem", atomically: true, encoding: .utf8)
        let refused = try await foreign.run(["renew", "--no-random-sleep"])
        #expect(refused.exitCode == 1, "\(refused.stderr)")
        #expect(refused.stdout.contains("certbot"), "\(refused.stdout)")
        #expect(!refused.stderr.contains("account registered"), "an account was registered: \(refused.stderr)")
        #expect(try String(contentsOfFile: "\(foreign.stateDirectory)/live/legacy/cert.pem", encoding: .utf8) == "not ours")

        // Afterwards the store still works.
            let recovered = try await good.run(["force-renew", "web"])
            #expect(recovered.exitCode == 0, "\(recovered.stderr)")
        }
    }
}
