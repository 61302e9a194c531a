import Foundation
import Glibc
import Logging
import Testing
@testable import CertHooks

private let sampleEvent = DeployEvent(
    name: "mqtt.example.org",
    liveDirectory: "/var/lib/certkeeper/live/mqtt.example.org",
    domains: ["mqtt.example.org", "broker.example.org"],
    serial: "04a1b2c3d4",
    notAfter: Date(timeIntervalSince1970: 1_790_000_000),
    issuedBy: "node-a"
)

@Suite("DeployEvent")
struct DeployEventTests {
    @Test("environment carries certbot's and certkeeper's variables")
    func environment() {
        let variables = sampleEvent.environment
        let live = "/var/lib/certkeeper/live/mqtt.example.org"
        #expect(variables == [
            "RENEWED_LINEAGE": live,
            "RENEWED_DOMAINS": "mqtt.example.org broker.example.org",
            "CERTKEEPER_EVENT": "deploy",
            "CERTKEEPER_CERT_NAME": "mqtt.example.org",
            "CERTKEEPER_LIVE_DIR": live,
            "CERTKEEPER_DOMAINS": "mqtt.example.org broker.example.org",
            "CERTKEEPER_SERIAL": "04a1b2c3d4",
            "CERTKEEPER_NOT_AFTER": "2026-09-21T14:13:20Z",
            "CERTKEEPER_ISSUED_BY": "node-a",
            "CERTKEEPER_CERT": live + "/cert.pem",
            "CERTKEEPER_CHAIN": live + "/chain.pem",
            "CERTKEEPER_FULLCHAIN": live + "/fullchain.pem",
            "CERTKEEPER_PRIVKEY": live + "/privkey.pem",
            "CERTKEEPER_BUNDLE": live + "/bundle.pem",
        ])
    }

    @Test("a trailing slash on the live directory does not double up")
    func trailingSlash() {
        var event = sampleEvent
        event.liveDirectory = "/live/x/"
        #expect(event.environment["CERTKEEPER_CERT"] == "/live/x/cert.pem")
    }

    @Test("dns-01 hook variables follow certbot's manual hooks")
    func dnsEnvironment() {
        let present = DNSChallengeEvent(phase: .present, domain: "*.example.org", validation: "abc", allDomains: ["*.example.org", "example.org"], remainingChallenges: 1)
        #expect(present.domain == "example.org")
        #expect(present.recordName == "_acme-challenge.example.org")
        #expect(present.environment == [
            "CERTBOT_DOMAIN": "example.org",
            "CERTBOT_VALIDATION": "abc",
            "CERTBOT_ALL_DOMAINS": "*.example.org,example.org",
            "CERTBOT_REMAINING_CHALLENGES": "1",
            "CERTKEEPER_EVENT": "dns-present",
            "CERTKEEPER_DNS_RECORD": "_acme-challenge.example.org",
            "CERTKEEPER_DNS_VALUE": "abc",
        ])
        let cleanup = DNSChallengeEvent(phase: .cleanup, domain: "example.org", validation: "abc", allDomains: ["example.org"], remainingChallenges: 0, authOutput: "id=7")
        #expect(cleanup.environment["CERTBOT_AUTH_OUTPUT"] == "id=7")
        #expect(cleanup.environment["CERTKEEPER_EVENT"] == "dns-cleanup")
    }

    @Test("hooks describe themselves and pick sensible labels")
    func hookLabels() {
        let shell = DeployHook(kind: .shell("systemctl reload haproxy"), timeout: 30)
        #expect(shell.label == "systemctl reload haproxy")
        #expect(shell.commandLine.executable == "/bin/sh")
        #expect(shell.commandLine.arguments == ["-c", "systemctl reload haproxy"])
        let file = DeployHook(kind: .executable(path: "/etc/certkeeper/deploy.d/10-haproxy"), timeout: 30)
        #expect(file.label == "/etc/certkeeper/deploy.d/10-haproxy")
        #expect(file.commandLine.arguments.isEmpty)
        let long = DeployHook(kind: .shell(String(repeating: "x", count: 100)), timeout: 1)
        #expect(long.label.count == 60)
        let named = DeployHook(kind: .shell("true"), timeout: 1, label: "noop")
        #expect(named.description == "noop (sh -c 'true')")
    }
}

@Suite("DeployHookRunner")
struct DeployHookRunnerTests {
    @Test("hooks see exactly the base environment plus the event's variables")
    func hookEnvironment() async throws {
        let directory = try TemporaryDirectory()
        let envFile = directory.file("env.txt")
        let base = ["PATH": "/usr/bin:/bin", "CK_FROM_BASE": "kept", "RENEWED_DOMAINS": "stale value"]
        let logs = CapturedLogs()
        let runner = DeployHookRunner(
            hooks: [DeployHook(kind: .shell("env > '\(envFile)'"), timeout: 10)],
            directory: nil, defaultTimeout: 10, baseEnvironment: base, logger: logs.logger()
        )
        let results = await runner.run(sampleEvent)
        #expect(results.count == 1)
        #expect(results.allSucceeded)

        let seen = parseEnvironment(try #require(directory.read("env.txt")))
        for (key, value) in sampleEvent.environment {
            #expect(seen[key] == value, "\(key)")
        }
        #expect(seen["RENEWED_DOMAINS"] == "mqtt.example.org broker.example.org")  // the event wins
        #expect(seen["CK_FROM_BASE"] == "kept")
        #expect(seen["PATH"] == "/usr/bin:/bin")
        // Nothing of the test process's own environment leaks in (dash adds PWD itself).
        let expectedKeys = Set(base.keys).union(sampleEvent.environment.keys)
        #expect(Set(seen.keys).subtracting(["PWD"]) == expectedKeys)
        let parentOnly = Set(ProcessInfo.processInfo.environment.keys).subtracting(expectedKeys).subtracting(["PWD"])
        #expect(!parentOnly.isEmpty)  // the check above means something
        #expect(parentOnly.isDisjoint(with: seen.keys))
    }

    @Test("a failing hook does not stop the next one, and is logged with its output")
    func failureDoesNotStop() async throws {
        let directory = try TemporaryDirectory()
        let logs = CapturedLogs()
        let runner = DeployHookRunner(
            hooks: [
                DeployHook(kind: .shell("echo first line; echo 'haproxy: cannot reload' >&2; exit 3"), timeout: 10, label: "haproxy"),
                DeployHook(kind: .executable(path: "/nonexistent/hook"), timeout: 10),
                DeployHook(kind: .shell("echo ran > '\(directory.file("second"))'"), timeout: 10, label: "second"),
            ],
            directory: nil, defaultTimeout: 10, baseEnvironment: shortPath, logger: logs.logger()
        )
        let results = await runner.run(sampleEvent)
        #expect(results.map(\.result.outcome) == [
            .exited(code: 3),
            .failedToStart(reason: "no such file: /nonexistent/hook"),
            .exited(code: 0),
        ])
        #expect(!results.allSucceeded)
        #expect(results.failures.map(\.hook.label) == ["haproxy", "/nonexistent/hook"])
        #expect(directory.read("second") == "ran\n")

        let errors = logs.messages(at: .error)
        #expect(errors == [
            "deploy hook haproxy for mqtt.example.org exited with status 3; last output: first line | haproxy: cannot reload",
            "deploy hook /nonexistent/hook for mqtt.example.org failed to start: no such file: /nonexistent/hook",
        ])
        let infos = logs.records.filter { $0.level == .info }
        #expect(infos.count == 1)
        #expect(infos.first?.message.hasPrefix("deploy hook second exited with status 0 after ") == true)
        #expect(infos.first?.metadata["cert.name"] == "mqtt.example.org")
        #expect(infos.first?.metadata["hook.outcome"] == "exited with status 0")
        #expect(!logs.records.contains { $0.message.contains("\n") })
    }

    @Test("a hanging hook times out and the rest still run")
    func hangingHook() async throws {
        let directory = try TemporaryDirectory()
        let logs = CapturedLogs()
        let runner = DeployHookRunner(
            hooks: [
                DeployHook(kind: .shell("echo waiting; sleep 100"), timeout: 0.4, label: "hangs"),
                DeployHook(kind: .shell("echo ok > '\(directory.file("after"))'"), timeout: 10, label: "after"),
            ],
            directory: nil, defaultTimeout: 10, baseEnvironment: shortPath, logger: logs.logger()
        )
        let started = ContinuousClock.now
        let results = await runner.run(sampleEvent)
        #expect(ContinuousClock.now - started < .seconds(60))  // the hook sleeps 100 s: it was killed
        #expect(results.map(\.result.outcome) == [.timedOut(after: 0.4), .exited(code: 0)])
        #expect(directory.read("after") == "ok\n")
        #expect(logs.messages(at: .error) == ["deploy hook hangs for mqtt.example.org timed out after 0.4 s; last output: waiting"])
    }

    @Test("directory hooks run after configured ones, in byte order of name, skipping the usual leftovers")
    func directoryOrderAndSkips() async throws {
        let hooks = try TemporaryDirectory()
        let work = try TemporaryDirectory()
        let order = work.file("order")
        let append = "echo \"$(basename \"$0\")\" >> '\(order)'"
        for name in ["20-c.sh", "10-b", "02-a", "B-upper", "a-lower", ".hidden", "backup~", "x.dpkg-old", "y.rpmnew", "z.swp", "w.dpkg-dist"] {
            try hooks.script(name, append)
        }
        try hooks.write("15-not-executable", "#!/bin/sh\n\(append)\n", mode: 0o644)
        #expect(mkdir(hooks.file("30-directory"), 0o755) == 0)
        try work.script("target", append)
        #expect(symlink(work.file("target"), hooks.file("40-link")) == 0)
        #expect(symlink("/nonexistent", hooks.file("50-dangling")) == 0)

        let logs = CapturedLogs()
        let runner = DeployHookRunner(
            hooks: [DeployHook(kind: .shell("echo configured >> '\(order)'"), timeout: 10)],
            directory: hooks.path, defaultTimeout: 7, baseEnvironment: shortPath, logger: logs.logger()
        )
        #expect(runner.resolvedHooks().map(\.label) == [
            "echo configured >> '\(order)'",
            hooks.file("02-a"), hooks.file("10-b"), hooks.file("20-c.sh"), hooks.file("40-link"),
            hooks.file("B-upper"), hooks.file("a-lower"),
        ])
        #expect(runner.resolvedHooks().dropFirst().allSatisfy { $0.timeout == 7 })

        let results = await runner.run(sampleEvent)
        #expect(results.allSucceeded)
        // The symlink runs its target, whose $0 is the link's name.
        #expect(work.read("order") == "configured\n02-a\n10-b\n20-c.sh\n40-link\nB-upper\na-lower\n")

        let debug = logs.messages(at: .debug).joined(separator: "\n")
        for (name, reason) in [
            (".hidden", "hidden file"), ("backup~", "backup file"), ("x.dpkg-old", "dpkg leftover"),
            ("w.dpkg-dist", "dpkg leftover"), ("y.rpmnew", "rpm leftover"), ("z.swp", "editor swap file"),
            ("15-not-executable", "not executable"), ("30-directory", "not a regular file"),
        ] {
            #expect(debug.contains("\(hooks.file(name)): \(reason)"), "\(name) should be skipped as \(reason)")
        }
        #expect(debug.contains(hooks.file("50-dangling") + ": cannot stat"))
    }

    @Test("a missing hook directory runs only the configured hooks")
    func missingDirectory() async throws {
        let logs = CapturedLogs()
        let runner = DeployHookRunner(
            hooks: [DeployHook(kind: .shell("true"), timeout: 10)],
            directory: "/nonexistent/deploy.d", defaultTimeout: 10, baseEnvironment: shortPath, logger: logs.logger()
        )
        let results = await runner.run(sampleEvent)
        #expect(results.count == 1)
        #expect(results.allSucceeded)
        #expect(logs.messages(at: .debug).contains("no deploy hook directory at /nonexistent/deploy.d"))
        #expect(logs.messages(at: .warning).isEmpty)
    }

    @Test("a hook directory that is a file is a warning, not a failure")
    func directoryIsAFile() async throws {
        let directory = try TemporaryDirectory()
        let file = try directory.write("not-a-dir", "")
        let logs = CapturedLogs()
        let runner = DeployHookRunner(hooks: [], directory: file, defaultTimeout: 10, baseEnvironment: shortPath, logger: logs.logger())
        #expect(await runner.run(sampleEvent).isEmpty)
        #expect(logs.messages(at: .warning) == ["cannot list hook directory \(file): Not a directory"])
    }

    @Test("skip rules by name")
    func skipNames() {
        #expect(HookDirectory.skipReason(forName: "10-haproxy") == nil)
        #expect(HookDirectory.skipReason(forName: "reload.sh") == nil)
        #expect(HookDirectory.skipReason(forName: "with.dots.in.name") == nil)
        #expect(HookDirectory.skipReason(forName: ".#lock") == "hidden file")
        #expect(HookDirectory.skipReason(forName: "hook.dpkg-new") == "dpkg leftover")
        #expect(HookDirectory.skipReason(forName: "hook.rpmsave") == "rpm leftover")
        #expect(HookDirectory.skipReason(forName: "hook.rpmorig") == "rpm leftover")
        #expect(HookDirectory.skipReason(forName: "hook.sh~") == "backup file")
        #expect(HookDirectory.skipReason(forName: ".hook.sh.swp") == "hidden file")
        #expect(HookDirectory.skipReason(forName: "hook.swp") == "editor swap file")
    }
}
