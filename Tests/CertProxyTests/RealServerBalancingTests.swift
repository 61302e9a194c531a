import CertProxy
import CertkeeperTestSupport
import Foundation
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// The proxy in front of real Debian servers: nginx reading the PROXY v2 header, and PostgreSQL primary selection
/// through an HTTP check. Needs the packages `nginx-light` (or `nginx`) and `postgresql`; their system services are
/// not used — each test starts its own server on a loopback high port in a temporary directory.
@Suite("Real servers behind the balancing proxy: nginx with proxy_protocol, PostgreSQL primary selection")
struct RealServerBalancingTests {
    @Test("nginx with listen ... proxy_protocol sees the client's address and port and the frontend's address")
    func proxyProtocolSeenByNginx() async throws {
        let nginx = "/usr/sbin/nginx"
        try #require(FileManager.default.isExecutableFile(atPath: nginx), "nginx missing: apt-get install nginx-light")
        let directory = try TemporaryDirectory(name: "lb-nginx")
        defer { directory.remove() }
        let nginxPort = try PortAllocator.shared.allocate()
        try FileManager.default.createDirectory(atPath: directory.appending("tmp"), withIntermediateDirectories: true)
        let dir = directory.path
        let configuration = """
            daemon off;
            master_process off;
            pid \(dir)/nginx.pid;
            error_log \(dir)/error.log info;
            events { worker_connections 64; }
            http {
                access_log \(dir)/access.log;
                client_body_temp_path \(dir)/tmp/body;
                proxy_temp_path \(dir)/tmp/proxy;
                fastcgi_temp_path \(dir)/tmp/fastcgi;
                uwsgi_temp_path \(dir)/tmp/uwsgi;
                scgi_temp_path \(dir)/tmp/scgi;
                server {
                    listen 127.0.0.1:\(nginxPort) proxy_protocol;
                    location / {
                        default_type text/plain;
                        return 200 "client=$proxy_protocol_addr:$proxy_protocol_port server=$proxy_protocol_server_addr:$proxy_protocol_server_port\\n";
                    }
                }
            }
            """
        let configPath = try directory.write(configuration, to: "nginx.conf")
        let server = try ManagedProcess.start(
            name: "nginx", executable: nginx, arguments: ["-p", dir, "-e", "\(dir)/error.log", "-c", configPath], logDirectory: dir)
        let logs = CapturedLogs()
        let pool = ProxyBackendPool(servers: [loopbackServer("nginx", port: nginxPort)], proxyProtocol: true)
        try await stopping(server) {
            try await server.waitForTCPPort(port: nginxPort, timeout: 20)
            try await withBalancingProxy(pool, logger: logs.logger) { _, port in
                let result = try await OneShotProcess.run(
                    executable: "/usr/bin/curl",
                    arguments: ["-sS", "--max-time", "10", "-w", "local=%{local_port}\n", "http://127.0.0.1:\(port)/"], timeout: 20)
                #expect(result.exitCode == 0, "\(result.stderr) nginx: \(server.logTail())")
                let localPort = result.stdout.split(separator: "\n").last.map { $0.replacingOccurrences(of: "local=", with: "") } ?? "?"
                #expect(result.stdout.hasPrefix("client=127.0.0.1:\(localPort) server=127.0.0.1:\(port)\n"), "\(result.stdout)")
            }
        }
    }

    @Test("PostgreSQL: psql through the proxy reaches the primary the HTTP check names, then the other after the check flips")
    func postgresPrimarySelection() async throws {
        let binaries = try #require(PostgresBinaries.find(), "PostgreSQL missing: apt-get install postgresql")
        let directory = try TemporaryDirectory(name: "lb-postgres")
        defer { directory.remove() }
        let alpha = try await PostgresInstance.start(name: "alpha", binaries: binaries, in: directory)
        let beta: PostgresInstance
        do {
            beta = try await PostgresInstance.start(name: "beta", binaries: binaries, in: directory)
        } catch {
            await alpha.stop()
            throw error
        }
        let checkAlpha = try await StatusServer.start(status: 200)
        let checkBeta = try await StatusServer.start(status: 503)
        func check(_ port: Int) -> ProxyHealthCheck {
            ProxyHealthCheck(kind: .http(method: "GET", path: "/", expectStatus: 200), port: port, interval: .milliseconds(200), timeout: .seconds(5), fall: 1, rise: 1)
        }
        let pool = ProxyBackendPool(
            servers: [
                loopbackServer("alpha", port: alpha.port, check: check(checkAlpha.port)),
                loopbackServer("beta", port: beta.port, check: check(checkBeta.port)),
            ],
            balance: .first, onMarkedDown: .shutdownSessions)
        let logs = CapturedLogs()
        try await stopping(alpha, beta, checkAlpha, checkBeta) {
            try await withBalancingProxy(pool, logger: logs.logger) { proxy, port in
                #expect(await eventually { proxy.server("beta")?.state == .down })
                for _ in 0..<2 {
                    let name = try await binaries.query(port: port, "show cluster_name")
                    #expect(name == "alpha")
                }
                checkAlpha.set(503)
                checkBeta.set(200)
                #expect(await eventually { proxy.server("alpha")?.state == .down && proxy.server("beta")?.state == .up })
                for _ in 0..<2 {
                    let name = try await binaries.query(port: port, "show cluster_name")
                    #expect(name == "beta")
                }
                #expect(logs.all.contains { $0.contains("server marked down") && $0.contains("server=alpha") && $0.contains("status 503") })
            }
        }
    }
}

extension ManagedProcess: Stoppable {
    func stop() async { await stop(gracePeriod: 5) }
}

/// PostgreSQL's programs (`/usr/lib/postgresql/<version>/bin`), run as the `postgres` user when the tests run as
/// root (PostgreSQL refuses to run as root).
struct PostgresBinaries: Sendable {
    let directory: String

    static func find() -> PostgresBinaries? {
        let root = "/usr/lib/postgresql"
        let versions = ((try? FileManager.default.contentsOfDirectory(atPath: root)) ?? []).sorted { (Int($0) ?? 0) > (Int($1) ?? 0) }
        for version in versions where FileManager.default.isExecutableFile(atPath: "\(root)/\(version)/bin/postgres") {
            return PostgresBinaries(directory: "\(root)/\(version)/bin")
        }
        return nil
    }

    static var asRoot: Bool { geteuid() == 0 }

    /// The executable and arguments that run `program` as the right user.
    func command(_ program: String, _ arguments: [String]) -> (executable: String, arguments: [String]) {
        if Self.asRoot {
            return ("/usr/bin/setpriv", ["--reuid=postgres", "--regid=postgres", "--init-groups", "--", "\(directory)/\(program)"] + arguments)
        }
        return ("\(directory)/\(program)", arguments)
    }

    /// Runs one query with psql over TCP and returns its unaligned output.
    func query(port: Int, _ sql: String) async throws -> String {
        let result = try await OneShotProcess.run(
            executable: "\(directory)/psql",
            arguments: ["host=127.0.0.1 port=\(port) user=postgres dbname=postgres connect_timeout=10", "-At", "-c", sql],
            environment: ["PGPASSWORD": "", "PSQLRC": "/dev/null"], timeout: 30)
        guard result.exitCode == 0 else { return "psql failed (\(result.exitCode)): \(result.stderr)" }
        return result.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
    }
}

/// One PostgreSQL server in a temporary directory, on a loopback high port, named by `cluster_name`.
struct PostgresInstance: Stoppable {
    let port: Int
    let process: ManagedProcess

    static func start(name: String, binaries: PostgresBinaries, in directory: TemporaryDirectory) async throws -> PostgresInstance {
        let data = directory.appending("data-\(name)")
        try FileManager.default.createDirectory(atPath: data, withIntermediateDirectories: true)
        if PostgresBinaries.asRoot {
            let chown = try await OneShotProcess.run(executable: "/usr/bin/chown", arguments: ["postgres:postgres", data, directory.path])
            try #require(chown.exitCode == 0, "chown: \(chown.stderr)")
            try #require(chmod(data, 0o700) == 0)
        }
        let initdb = binaries.command(
            "initdb", ["-D", data, "--auth=trust", "-U", "postgres", "--no-sync", "--locale=C", "-E", "UTF8"])
        let initialized = try await OneShotProcess.run(executable: initdb.executable, arguments: initdb.arguments, timeout: 120)
        try #require(initialized.exitCode == 0, "initdb: \(initialized.stdout) \(initialized.stderr)")
        let port = try PortAllocator.shared.allocate()
        let postgres = binaries.command(
            "postgres",
            [
                "-D", data, "-p", "\(port)", "-k", data, "-c", "listen_addresses=127.0.0.1", "-c", "cluster_name=\(name)",
                "-c", "fsync=off", "-c", "shared_buffers=16MB", "-c", "max_connections=20",
            ])
        let process = try ManagedProcess.start(
            name: "postgres-\(name)", executable: postgres.executable, arguments: postgres.arguments, logDirectory: directory.path)
        do {
            try await process.waitForTCPPort(port: port, timeout: 60)
        } catch {
            await process.stop(gracePeriod: 5)
            throw error
        }
        return PostgresInstance(port: port, process: process)
    }

    func stop() async {
        await process.stop(gracePeriod: 10)
    }
}
