import Foundation
import Glibc
import Testing
@testable import CertHooks

/// The operator scripts shipped in Hooks/: syntax, conventions, and their behaviour against fake tools.
@Suite("Shipped hook scripts")
struct HookScriptsTests {
    static let hooksDirectory = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Hooks").path
    static let scripts = ["haproxy-reload.sh", "haproxy-hot-update.sh", "nginx-reload.sh", "mosquitto-reload.sh"]

    static func path(_ script: String) -> String { hooksDirectory + "/" + script }

    @Test("every script is there, executable, POSIX sh with set -eu, and passes sh -n", arguments: scripts)
    func syntax(script: String) async throws {
        let path = Self.path(script)
        var info = stat()
        #expect(stat(path, &info) == 0, "\(path) is missing")
        #expect(info.st_mode & 0o111 == 0o111, "\(script) is not executable")
        let text = try String(contentsOfFile: path, encoding: .utf8)
        #expect(text.hasPrefix("#!/bin/sh\n"))
        #expect(text.contains("\nset -eu\n"))
        let check = await ProcessRunner.run(executable: "/bin/sh", arguments: ["-n", path], environment: shortPath, timeout: 10)
        #expect(check.outcome == .exited(code: 0), "sh -n \(script): \(check.output)")
    }

    @Test("every variable a script reads is documented in its header", arguments: scripts)
    func variablesDocumented(script: String) throws {
        let text = try String(contentsOfFile: Self.path(script), encoding: .utf8)
        let lines = text.split(separator: "\n", omittingEmptySubsequences: false)
        let header = lines.prefix { $0.hasPrefix("#") }.joined(separator: "\n")
        let body = lines.drop { $0.hasPrefix("#") }.filter { !$0.trimmingCharacters(in: .whitespaces).hasPrefix("#") }.joined(separator: "\n")
        let pattern = try Regex(#"\$\{?([A-Z][A-Z0-9_]+)"#)
        var read = Set<String>()
        for match in body.matches(of: pattern) {
            if let name = match.output[1].substring { read.insert(String(name)) }
        }
        #expect(!read.isEmpty)
        for name in read.sorted() {
            #expect(header.contains(name), "\(script) reads \(name) but its header does not document it")
        }
        let readme = try String(contentsOfFile: Self.hooksDirectory + "/README.md", encoding: .utf8)
        #expect(readme.contains("`\(script)`"))
        for name in read where !["PATH"].contains(name) {
            #expect(readme.contains(name), "README does not mention \(name) (read by \(script))")
        }
    }

    // MARK: - behaviour against fakes

    static let bundle = """
        -----BEGIN CERTIFICATE-----
        AAAA
        -----END CERTIFICATE-----

        -----BEGIN CERTIFICATE-----\r
        BBBB
        -----END CERTIFICATE-----
          \t
        -----BEGIN PRIVATE KEY-----
        KKKK
        -----END PRIVATE KEY-----

        """

    /// A `socat` that records each request into $FAKE_SOCAT_DIR/request.N and answers like HAProxy.
    static let fakeSocat = """
        n=$(ls "$FAKE_SOCAT_DIR" | wc -l)
        cat > "$FAKE_SOCAT_DIR/request.$n"
        case $(head -n 1 "$FAKE_SOCAT_DIR/request.$n") in
        "set ssl cert"*) printf '%s\\n' "${FAKE_SET_REPLY:-Transaction created for certificate /x!}" ;;
        "commit ssl cert"*) printf '%s\\n' "${FAKE_COMMIT_REPLY:-Committing /x. Success!}" ;;
        "abort ssl cert"*) printf 'Transaction aborted for certificate /x!\\n' ;;
        *) printf 'Unknown command\\n' ;;
        esac
        """

    /// An `openssl` that reports the certificate's public key as "KEY-A" and the private key's as $FAKE_KEY
    /// (default "KEY-A": a matching pair).
    static let fakeOpenSSL = """
        case $1 in
        x509) printf 'KEY-A\\n' ;;
        pkey) printf '%s\\n' "${FAKE_KEY:-KEY-A}" ;;
        *) exit 1 ;;
        esac
        """

    struct HotUpdateSetup {
        let work: TemporaryDirectory
        let environment: [String: String]
        let certPath: String
        let requests: String
    }

    static func hotUpdateSetup(setReply: String? = nil, commitReply: String? = nil) throws -> HotUpdateSetup {
        let work = try TemporaryDirectory()
        #expect(mkdir(work.file("bin"), 0o755) == 0)
        #expect(mkdir(work.file("requests"), 0o755) == 0)
        #expect(mkdir(work.file("certs"), 0o755) == 0)
        try work.script("bin/socat", fakeSocat)
        try work.script("bin/openssl", fakeOpenSSL)
        let bundle = try work.write("bundle.pem", Self.bundle, mode: 0o600)
        var environment = [
            "PATH": work.file("bin") + ":/usr/bin:/bin",
            "CERTKEEPER_CERT_NAME": "mqtt.example.org",
            "CERTKEEPER_BUNDLE": bundle,
            "HAPROXY_CERT_DIR": work.file("certs"),
            "HAPROXY_SOCKET": "127.0.0.1:9999",
            "FAKE_SOCAT_DIR": work.file("requests"),
        ]
        if let setReply { environment["FAKE_SET_REPLY"] = setReply }
        if let commitReply { environment["FAKE_COMMIT_REPLY"] = commitReply }
        return HotUpdateSetup(work: work, environment: environment, certPath: work.file("certs/mqtt.example.org.pem"), requests: work.file("requests"))
    }

    @Test("haproxy-hot-update sends set + commit with blank lines stripped and rewrites the file")
    func hotUpdateSuccess() async throws {
        let setup = try Self.hotUpdateSetup()
        let result = await ProcessRunner.run(executable: Self.path("haproxy-hot-update.sh"), arguments: [], environment: setup.environment, timeout: 60)
        #expect(result.outcome == .exited(code: 0), "\(result.output)")
        #expect(result.output == "haproxy-hot-update: updated \(setup.certPath) in HAProxy at 127.0.0.1:9999 (no reload)\n")

        let set = try String(contentsOfFile: setup.requests + "/request.0", encoding: .utf8)
        #expect(set == """
            set ssl cert \(setup.certPath) <<
            -----BEGIN CERTIFICATE-----
            AAAA
            -----END CERTIFICATE-----
            -----BEGIN CERTIFICATE-----
            BBBB
            -----END CERTIFICATE-----
            -----BEGIN PRIVATE KEY-----
            KKKK
            -----END PRIVATE KEY-----


            """)
        let commit = try String(contentsOfFile: setup.requests + "/request.1", encoding: .utf8)
        #expect(commit == "commit ssl cert \(setup.certPath)\n")
        #expect(!FileManager.default.fileExists(atPath: setup.requests + "/request.2"))

        #expect(try String(contentsOfFile: setup.certPath, encoding: .utf8) == Self.bundle)
        var info = stat()
        #expect(stat(setup.certPath, &info) == 0)
        #expect(info.st_mode & 0o777 == 0o600)
        let leftovers = try FileManager.default.contentsOfDirectory(atPath: setup.work.file("certs"))
        #expect(leftovers == ["mqtt.example.org.pem"])
    }

    @Test("haproxy-hot-update aborts and fails with one line when HAProxy refuses")
    func hotUpdateRefused() async throws {
        let setup = try Self.hotUpdateSetup(setReply: "Can't replace a certificate which is not referenced by the configuration!")
        let result = await ProcessRunner.run(executable: Self.path("haproxy-hot-update.sh"), arguments: [], environment: setup.environment, timeout: 60)
        #expect(result.outcome == .exited(code: 1))
        #expect(result.output == "haproxy-hot-update: HAProxy refused set ssl cert \(setup.certPath): Can't replace a certificate which is not referenced by the configuration! (left \(setup.certPath) as it was)\n")
        let abort = try String(contentsOfFile: setup.requests + "/request.1", encoding: .utf8)
        #expect(abort == "abort ssl cert \(setup.certPath)\n")
        // There was no file before, so there is none after.
        #expect(try FileManager.default.contentsOfDirectory(atPath: setup.work.file("certs")) == [])
    }

    @Test("haproxy-hot-update puts the previous file back when HAProxy refuses the commit, and removes its backup on success")
    func hotUpdateCommitRefused() async throws {
        let setup = try Self.hotUpdateSetup(commitReply: "inconsistencies between private key and certificate loaded '/x'. Can't commit /x!")
        let previous = "previous bundle\n"
        try setup.work.write("certs/mqtt.example.org.pem", previous, mode: 0o640)
        let refused = await ProcessRunner.run(executable: Self.path("haproxy-hot-update.sh"), arguments: [], environment: setup.environment, timeout: 60)
        #expect(refused.outcome == .exited(code: 1))
        #expect(refused.output == "haproxy-hot-update: HAProxy could not commit ssl cert \(setup.certPath): inconsistencies between private key and certificate loaded '/x'. Can't commit /x! (left \(setup.certPath) as it was)\n")
        #expect(try String(contentsOfFile: setup.requests + "/request.2", encoding: .utf8) == "abort ssl cert \(setup.certPath)\n")
        #expect(try String(contentsOfFile: setup.certPath, encoding: .utf8) == previous)
        var info = stat()
        #expect(stat(setup.certPath, &info) == 0)
        #expect(info.st_mode & 0o777 == 0o640, "the previous file came back with other permissions")
        #expect(try FileManager.default.contentsOfDirectory(atPath: setup.work.file("certs")) == ["mqtt.example.org.pem"])

        var environment = setup.environment
        environment["FAKE_COMMIT_REPLY"] = nil
        let accepted = await ProcessRunner.run(executable: Self.path("haproxy-hot-update.sh"), arguments: [], environment: environment, timeout: 60)
        #expect(accepted.outcome == .exited(code: 0), "\(accepted.output)")
        #expect(try String(contentsOfFile: setup.certPath, encoding: .utf8) == Self.bundle)
        #expect(try FileManager.default.contentsOfDirectory(atPath: setup.work.file("certs")) == ["mqtt.example.org.pem"])
    }

    @Test("haproxy-hot-update installs the file but fails when HAProxy's socket is missing")
    func hotUpdateUnreachable() async throws {
        let setup = try Self.hotUpdateSetup()
        var environment = setup.environment
        let socket = setup.work.file("no-such.sock")
        environment["HAPROXY_SOCKET"] = socket
        let result = await ProcessRunner.run(executable: Self.path("haproxy-hot-update.sh"), arguments: [], environment: environment, timeout: 60)
        #expect(result.outcome == .exited(code: 1))
        #expect(result.output == "haproxy-hot-update: installed \(setup.certPath), but could not reach HAProxy at \(socket) (no socket there; set HAPROXY_SOCKET); it loads the file at its next start or reload\n")
        #expect(try String(contentsOfFile: setup.certPath, encoding: .utf8) == Self.bundle)
        #expect(!FileManager.default.fileExists(atPath: setup.requests + "/request.0"))
    }

    @Test("haproxy-hot-update refuses a bundle whose key does not match before writing or sending anything")
    func hotUpdateKeyMismatch() async throws {
        let setup = try Self.hotUpdateSetup()
        try setup.work.write("certs/mqtt.example.org.pem", "previous bundle\n", mode: 0o600)
        var environment = setup.environment
        environment["FAKE_KEY"] = "KEY-B"
        let result = await ProcessRunner.run(executable: Self.path("haproxy-hot-update.sh"), arguments: [], environment: environment, timeout: 60)
        #expect(result.outcome == .exited(code: 1))
        #expect(result.output == "haproxy-hot-update: the private key in bundle \(setup.work.file("bundle.pem")) does not match its first certificate\n")
        #expect(!FileManager.default.fileExists(atPath: setup.requests + "/request.0"))
        #expect(try String(contentsOfFile: setup.certPath, encoding: .utf8) == "previous bundle\n")
        #expect(try FileManager.default.contentsOfDirectory(atPath: setup.work.file("certs")) == ["mqtt.example.org.pem"])
    }

    @Test("haproxy-hot-update refuses a bundle without a key, and needs a path")
    func hotUpdateBadInput() async throws {
        let setup = try Self.hotUpdateSetup()
        try setup.work.write("bundle.pem", "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n")
        let noKey = await ProcessRunner.run(executable: Self.path("haproxy-hot-update.sh"), arguments: [], environment: setup.environment, timeout: 60)
        #expect(noKey.outcome == .exited(code: 1))
        #expect(noKey.output.hasSuffix("does not hold both a certificate and a private key\n"))
        #expect(!FileManager.default.fileExists(atPath: setup.requests + "/request.0"))

        var environment = setup.environment
        environment["HAPROXY_CERT_DIR"] = nil
        let noPath = await ProcessRunner.run(executable: Self.path("haproxy-hot-update.sh"), arguments: [], environment: environment, timeout: 60)
        #expect(noPath.outcome == .exited(code: 1))
        #expect(noPath.output == "haproxy-hot-update: set HAPROXY_CERT_PATH (the crt path HAProxy knows) or HAPROXY_CERT_DIR\n")
    }

    @Test("haproxy-reload copies the bundle atomically and sends SIGUSR2 to the master from the pid file")
    func haproxyReloadPidFile() async throws {
        let work = try TemporaryDirectory()
        #expect(mkdir(work.file("certs"), 0o755) == 0)
        let bundle = try work.write("bundle.pem", Self.bundle, mode: 0o600)
        let pidFile = work.file("haproxy.pid")
        // A stand-in master that reports SIGUSR2 and exits.
        let master = Task {
            await ProcessRunner.run(
                executable: "/bin/sh",
                arguments: ["-c", "trap 'echo got USR2; exit 0' USR2; echo $$ > '\(pidFile).tmp'; mv '\(pidFile).tmp' '\(pidFile)'; while :; do sleep 0.05; done"],
                environment: shortPath, timeout: 60
            )
        }
        #expect(await eventually(within: 30) { FileManager.default.fileExists(atPath: pidFile) })
        let result = await ProcessRunner.run(
            executable: Self.path("haproxy-reload.sh"), arguments: [],
            environment: [
                "PATH": "/usr/bin:/bin", "CERTKEEPER_CERT_NAME": "site", "CERTKEEPER_BUNDLE": bundle,
                "HAPROXY_CERT_DIR": work.file("certs"), "HAPROXY_RELOAD_METHOD": "pidfile", "HAPROXY_PIDFILE": pidFile,
            ],
            timeout: 60
        )
        let masterPid = readPids(pidFile).first ?? 0
        #expect(result.outcome == .exited(code: 0), "\(result.output)")
        #expect(result.output == "haproxy-reload: sent SIGUSR2 to HAProxy master \(masterPid) after installing \(work.file("certs"))/site.pem\n")
        let masterResult = await master.value
        #expect(masterResult.outcome == .exited(code: 0))
        #expect(masterResult.output == "got USR2\n")
        #expect(try String(contentsOfFile: work.file("certs/site.pem"), encoding: .utf8) == Self.bundle)
        #expect(try FileManager.default.contentsOfDirectory(atPath: work.file("certs")) == ["site.pem"])
    }

    @Test("haproxy-reload fails with one line when the pid file is missing")
    func haproxyReloadNoPidFile() async throws {
        let result = await ProcessRunner.run(
            executable: Self.path("haproxy-reload.sh"), arguments: [],
            environment: ["PATH": "/usr/bin:/bin", "HAPROXY_RELOAD_METHOD": "pidfile", "HAPROXY_PIDFILE": "/nonexistent/haproxy.pid"],
            timeout: 60
        )
        #expect(result.outcome == .exited(code: 1))
        #expect(result.output == "haproxy-reload: cannot read HAProxy pid file /nonexistent/haproxy.pid (set HAPROXY_PIDFILE)\n")
    }

    @Test("nginx-reload tests the configuration first and does not reload a broken one")
    func nginxReload() async throws {
        let work = try TemporaryDirectory()
        let calls = work.file("calls")
        let nginx = try work.script("nginx", """
            echo "$*" >> '\(calls)'
            if [ "$1" = -t ] && [ -n "${FAKE_NGINX_BROKEN:-}" ]; then echo 'nginx: [emerg] unexpected "}" in /etc/nginx/nginx.conf:12' >&2; exit 1; fi
            exit 0
            """)
        var environment = ["PATH": "/usr/bin:/bin", "NGINX_BIN": nginx, "NGINX_RELOAD_METHOD": "signal", "CERTKEEPER_CERT_NAME": "www"]
        let good = await ProcessRunner.run(executable: Self.path("nginx-reload.sh"), arguments: [], environment: environment, timeout: 60)
        #expect(good.outcome == .exited(code: 0), "\(good.output)")
        #expect(good.output == "nginx-reload: sent reload to nginx for www\n")
        #expect(work.read("calls") == "-t -q\n-s reload\n")

        environment["FAKE_NGINX_BROKEN"] = "1"
        environment["NGINX_CONF"] = "/etc/nginx/other.conf"
        let broken = await ProcessRunner.run(executable: Self.path("nginx-reload.sh"), arguments: [], environment: environment, timeout: 60)
        #expect(broken.outcome == .exited(code: 1))
        #expect(broken.lastOutputLines(1) == ["nginx-reload: nginx -t failed, not reloading for www"])
        #expect(broken.output.contains("[emerg] unexpected"))
        #expect(work.read("calls") == "-t -q\n-s reload\n-t -q -c /etc/nginx/other.conf\n")
    }

    @Test("mosquitto-reload sends SIGHUP to the pid in the pid file")
    func mosquittoReload() async throws {
        let work = try TemporaryDirectory()
        let pidFile = work.file("mosquitto.pid")
        let broker = Task {
            await ProcessRunner.run(
                executable: "/bin/sh",
                arguments: ["-c", "trap 'echo got HUP; exit 0' HUP; echo $$ > '\(pidFile).tmp'; mv '\(pidFile).tmp' '\(pidFile)'; while :; do sleep 0.05; done"],
                environment: shortPath, timeout: 60
            )
        }
        #expect(await eventually(within: 30) { FileManager.default.fileExists(atPath: pidFile) })
        let result = await ProcessRunner.run(
            executable: Self.path("mosquitto-reload.sh"), arguments: [],
            environment: ["PATH": "/usr/bin:/bin", "MOSQUITTO_RELOAD_METHOD": "pidfile", "MOSQUITTO_PIDFILE": pidFile],
            timeout: 60
        )
        #expect(result.outcome == .exited(code: 0), "\(result.output)")
        #expect(await broker.value.output == "got HUP\n")
    }
}
