import Agent
import CertkeeperConfig
import CertkeeperTestSupport
import ClusterTrust
import Foundation
import Logging
import ServiceLifecycle
import ServiceLifecycleTestKit
import Testing

@Suite("Every service of the daemon stops on a graceful shutdown")
struct ServiceShutdownTests {
    @Test("internal renewal, proxy, peer sync, stats and the SIGHUP reload each return from run() once shutdown is triggered")
    func everyServiceStops() async throws {
        let directory = try TemporaryDirectory(name: "agent-shutdown")
        defer { directory.remove() }
        let state = directory.appending("state")
        let ports = try (0..<4).map { _ in try PortAllocator.shared.allocate() }
        let ca = try ClusterCA.generate(clusterName: "test")
        try ca.issueIdentity(nodeName: "n1", addresses: [NodeAddress(parsing: "127.0.0.1")])
            .write(to: state + "/cluster/identity.pem", replacing: false)
        let configuration = try ConfigLoader.parse(yaml: """
            state_dir: \(state)
            node_name: n1
            certificates:
              - {name: local, issuer: internal, domains: [local.internal]}
            cluster:
              role: renewer
              listen: "127.0.0.1:\(ports[0])"
              peers:
                - {name: n2, address: "127.0.0.1:\(ports[1])"}
            stats: {listen: "127.0.0.1:\(ports[2])"}
            proxy:
              grace: 1s
              frontends:
                - {name: https, listen: "127.0.0.1:\(ports[3])", backends: ["127.0.0.1:9"]}
            """, source: "test.yaml")
        let context = NodeContext(configuration: configuration, logger: Logger(label: "test", factory: { _ in SwiftLogNoOpLogHandler() }))
        let services = try await DaemonAgent.services(context, configPath: directory.appending("certkeeper.yaml"))
        let names = services.map { String(describing: type(of: $0.service)) }
        #expect(Set(names) == ["InternalRenewalService", "ProxyService", "PeerSyncService", "StatsService", "ConfigReloadService"], "\(names)")
        for configured in services {
            let service = configured.service
            let stopped = try await testGracefulShutdown { trigger in
                try await withThrowingTaskGroup(of: Bool.self) { group in
                    group.addTask {
                        try await service.run()
                        return true
                    }
                    // Bounded: a service that ignores the shutdown fails the test instead of hanging it.
                    group.addTask {
                        try await Task.sleep(for: .seconds(60))
                        return false
                    }
                    try await Task.sleep(for: .milliseconds(300))
                    trigger.triggerGracefulShutdown()
                    let first = try await group.next() ?? false
                    group.cancelAll()
                    return first
                }
            }
            #expect(stopped, "\(type(of: service)) did not return after the graceful shutdown")
        }
    }
}
