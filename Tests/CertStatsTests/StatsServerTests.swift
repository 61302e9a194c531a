import CertkeeperTestSupport
import Foundation
import Logging
import Testing

@testable import CertStats

@Suite("Stats listener over a socket")
struct StatsServerTests {
    @Test("answers curl on a kept-alive connection, HEAD without a body, and closes when cancelled")
    func servesAndStops() async throws {
        let collected = CallCount()
        let endpoints = StatsEndpoints(pathPrefix: "/stats") {
            collected.increment()
            return (try? Fixture.report()) ?? StatsReport(generatedAt: Fixture.now, frontends: [], certificates: [])
        }
        let server = try await StatsServer.bind(host: "127.0.0.1", port: 0, endpoints: endpoints, logger: Logger(label: "stats-test"))
        let base = "http://127.0.0.1:\(server.port)/stats"
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await server.run() }

            // Two URLs in one curl run share one connection (keep-alive); num_connects is per transfer.
            let both = try await OneShotProcess.run(
                executable: "/usr/bin/curl",
                arguments: ["-sS", "--max-time", "10", "-o", "/dev/null", "-o", "/dev/null", "-w", "%{http_code} %{num_connects}\n",
                            "\(base)/metrics", "\(base)/status.json"])
            #expect(both.exitCode == 0, "\(both.stderr)")
            #expect(both.stdout == "200 1\n200 0\n", "\(both.stdout)")

            let head = try await OneShotProcess.run(executable: "/usr/bin/curl", arguments: ["-sS", "--max-time", "10", "-I", "\(base)/"])
            #expect(head.stdout.hasPrefix("HTTP/1.1 200"), "\(head.stdout)")
            #expect(head.stdout.lowercased().contains("content-type: text/html; charset=utf-8"))

            let outside = try await OneShotProcess.run(
                executable: "/usr/bin/curl",
                arguments: ["-sS", "--max-time", "10", "-o", "/dev/null", "-w", "%{http_code}", "http://127.0.0.1:\(server.port)/metrics"])
            #expect(outside.stdout == "404", "outside the prefix: \(outside.stdout)")
            #expect(collected.value >= 3)

            group.cancelAll()
            do {
                try await group.waitForAll()
            } catch is CancellationError {
                // The listener may end its accept loop by throwing the cancellation.
            }
        }
        #expect(!TCPProbe.canConnect(host: "127.0.0.1", port: server.port))
    }
}

/// How often the endpoints collected a report; bumped on the event loop, read by the test.
final class CallCount: @unchecked Sendable {
    private let lock = NSLock()
    private var count = 0

    func increment() { lock.withLock { count += 1 } }

    var value: Int { lock.withLock { count } }
}
