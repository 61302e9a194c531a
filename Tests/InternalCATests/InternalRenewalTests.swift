import CertStore
import CertkeeperConfig
import Foundation
import InternalCA
import Logging
import RenewalPolicy
import Synchronization
import Testing
import X509

@testable import Renewal

/// A clock tests move by hand.
final class ManualClock: Sendable {
    private let current: Mutex<Date>
    init(_ start: Date) { current = Mutex(start) }
    var now: Date { current.withLock { $0 } }
    func advance(by seconds: TimeInterval) { current.withLock { $0 = $0.addingTimeInterval(seconds) } }
    @Sendable func read() -> Date { now }
}

/// A state directory and a renewer with only internal certificates, on a manual clock.
struct InternalFixture {
    let scratch: ScratchDirectory
    let clock: ManualClock
    let configuration: CertkeeperConfiguration
    let store: CertStore.CertificateStore
    let renewer: Renewer

    init(leafLifetime: TimeInterval = 7 * 86_400, certificates: [CertificateSpec]? = nil, cluster: ClusterSettings? = nil) throws {
        scratch = try ScratchDirectory()
        clock = ManualClock(fixedNow)
        configuration = CertkeeperConfiguration(
            stateDirectory: scratch.path + "/state",
            internalCA: InternalCASettings(name: "renewal test CA", leafLifetime: leafLifetime),
            certificates: certificates ?? [CertificateSpec(name: "local", domains: ["localhost", "127.0.0.1", "::1"], issuer: .internalCA)],
            cluster: cluster)
        let logger = Logger(label: "internal-renewal-test")
        store = CertStore.CertificateStore(root: configuration.stateDirectory, logger: logger)
        renewer = Renewer(configuration: configuration, store: store, nodeName: "node-a", environment: [:], logger: logger, clock: clock.read)
    }
}

@Suite("Renewal with issuer: internal")
struct InternalRenewalTests {
    @Test("renew issues from the internal CA with no acme section, installs like ACME, and is not due again until half the lifetime")
    func renewIssuesInternally() async throws {
        let fixture = try InternalFixture()
        defer { fixture.scratch.remove() }
        let spec = try #require(fixture.configuration.certificates.first)

        let report = try await fixture.renewer.run([spec], force: false)
        guard case .renewed(let meta, .missing) = report.outcomes.first?.outcome else {
            Issue.record("expected a first issuance: \(report.outcomes)")
            return
        }
        #expect(meta.domains == ["localhost", "127.0.0.1", "::1"])
        #expect(meta.issuedBy == "node-a")
        #expect(meta.notAfter == fixedNow.addingTimeInterval(7 * 86_400))
        let bundle = try #require(try fixture.store.liveBundle(name: "local"))
        let root = try #require(try InternalCADirectory(stateDirectory: fixture.configuration.stateDirectory).loadRoot())
        #expect(bundle.chainPEM == root.pem)
        #expect(meta.issuer == root.certificate.subject.description)
        // No ARI for the internal CA: nothing recorded, nothing to poll.
        let record = try fixture.store.readState(RenewalRecord.self, key: RenewalRecord.key(for: "local"))
        #expect(record?.ari == nil)
        #expect(record?.lastSuccess == fixedNow)

        // The policy for lifetimes under 10 days: due with half the lifetime left.
        let lifetime = 7 * 86_400 + InternalCA.backdate
        let dueAt = meta.notAfter.addingTimeInterval(-lifetime / 2)
        #expect(try fixture.renewer.decision(for: spec, now: fixedNow) == .notDue(until: dueAt, reason: .lifetimeFraction))
        let again = try await fixture.renewer.run([spec], force: false)
        guard case .notDue = again.outcomes.first?.outcome else {
            Issue.record("a second run renewed again: \(again.outcomes)")
            return
        }

        fixture.clock.advance(by: dueAt.timeIntervalSince(fixedNow) + 1)
        let renewed = try await fixture.renewer.run([spec], force: false)
        guard case .renewed(let second, .lifetimeFraction) = renewed.outcomes.first?.outcome else {
            Issue.record("expected a renewal at half the lifetime: \(renewed.outcomes)")
            return
        }
        #expect(second.serial != meta.serial)
        #expect(second.version == 2)
        #expect(second.issuer == meta.issuer, "the renewal must reuse the root")
    }

    @Test("force-renew issues at once; revoke is refused with a hint")
    func forceAndRevoke() async throws {
        let fixture = try InternalFixture()
        defer { fixture.scratch.remove() }
        let spec = try #require(fixture.configuration.certificates.first)
        _ = try await fixture.renewer.run([spec], force: false)
        let forced = try await fixture.renewer.run([spec], force: true)
        guard case .renewed(_, .forced) = forced.outcomes.first?.outcome else {
            Issue.record("force-renew did not renew: \(forced.outcomes)")
            return
        }
        do {
            _ = try await fixture.renewer.revoke(spec, reason: nil)
            Issue.record("revoke of an internal certificate succeeded")
        } catch {
            #expect(error.description.contains("force-renew local"), "\(error)")
        }
    }

    @Test("certificates renewed together share one new root")
    func oneRootForConcurrentIssuance() async throws {
        let specs = (1...4).map { CertificateSpec(name: "c\($0)", domains: ["c\($0).internal"], issuer: .internalCA) }
        let fixture = try InternalFixture(certificates: specs)
        defer { fixture.scratch.remove() }
        let report = try await fixture.renewer.run(specs, force: false)
        let issuers = Set(report.outcomes.compactMap { outcome -> String? in
            if case .renewed(let meta, _) = outcome.outcome { return meta.issuer }
            return nil
        })
        #expect(report.outcomes.count == 4)
        #expect(issuers.count == 1, "\(report.outcomes)")
    }

    @Test("a standby does not create a root of its own; with the renewer's root copied over it issues from that root")
    func standbyNeedsTheRenewersRoot() async throws {
        let renewer = try InternalFixture(cluster: ClusterSettings(role: .renewer, listen: ListenAddress(host: "127.0.0.1", port: 7443), peers: []))
        defer { renewer.scratch.remove() }
        let standby = try InternalFixture(cluster: ClusterSettings(role: .standby, listen: ListenAddress(host: "127.0.0.1", port: 7444), peers: []))
        defer { standby.scratch.remove() }
        let spec = try #require(standby.configuration.certificates.first)

        let refused = try await standby.renewer.run([spec], force: false)
        guard case .failed(_, let error, _) = refused.outcomes.first?.outcome else {
            Issue.record("a standby issued without the renewer's root: \(refused.outcomes)")
            return
        }
        #expect(error.contains("a standby does not create one") && error.contains("role: standby"), "\(error)")
        #expect(!FileManager.default.fileExists(atPath: standby.configuration.stateDirectory + "/internal-ca/root.pem"))

        _ = try await renewer.renewer.run([spec], force: false)
        let source = InternalCADirectory(stateDirectory: renewer.configuration.stateDirectory)
        try FileManager.default.copyItem(atPath: source.path, toPath: InternalCADirectory(stateDirectory: standby.configuration.stateDirectory).path)
        let issued = try await standby.renewer.run([spec], force: true)
        guard case .renewed(let meta, _) = issued.outcomes.first?.outcome else {
            Issue.record("the standby did not issue with the copied root: \(issued.outcomes)")
            return
        }
        #expect(meta.issuer == (try source.loadRoot())?.certificate.subject.description)
    }

    @Test("the daemon's service runs on a single node and on the renewer only")
    func serviceRoles() throws {
        func make(_ role: ClusterSettings.Role?) throws -> InternalRenewalService? {
            let cluster = role.map { ClusterSettings(role: $0, listen: ListenAddress(host: "127.0.0.1", port: 7443), peers: []) }
            let fixture = try InternalFixture(cluster: cluster)
            defer { fixture.scratch.remove() }
            return InternalRenewalService.make(renewer: fixture.renewer, logger: Logger(label: "t"))
        }
        #expect(try make(nil) != nil)
        #expect(try make(.renewer) != nil)
        #expect(try make(.follower) == nil)
        #expect(try make(.standby) == nil)
        let acmeOnly = try InternalFixture(certificates: [CertificateSpec(name: "web", domains: ["example.com"])])
        defer { acmeOnly.scratch.remove() }
        #expect(InternalRenewalService.make(renewer: acmeOnly.renewer, logger: Logger(label: "t")) == nil)
    }
}

@Suite("The daemon's internal renewal schedule")
struct InternalRenewalScheduleTests {
    let schedule = InternalRenewalSchedule(maximumInterval: 300, minimumInterval: 30)

    @Test("the next check is the earliest due time, capped at the maximum interval and floored at the minimum")
    func nextCheck() {
        let now = fixedNow
        func at(_ seconds: TimeInterval) -> Date { now.addingTimeInterval(seconds) }
        #expect(schedule.nextCheck(after: now, decisions: []) == at(300))
        #expect(schedule.nextCheck(after: now, decisions: [.notDue(until: at(86_400), reason: .lifetimeFraction)]) == at(300))
        #expect(schedule.nextCheck(after: now, decisions: [.notDue(until: at(86_400), reason: .lifetimeFraction), .notDue(until: at(120), reason: .renewBefore)]) == at(120))
        #expect(schedule.nextCheck(after: now, decisions: [.backingOff(until: at(60), reason: .missing)]) == at(60))
        #expect(schedule.nextCheck(after: now, decisions: [.notDue(until: at(5), reason: .lifetimeFraction)]) == at(30))
        #expect(schedule.nextCheck(after: now, decisions: [.due(.missing)]) == at(30))
        #expect(schedule.nextCheck(after: now, decisions: [.notDue(until: at(-10), reason: .lifetimeFraction)]) == at(30))
        // An unreadable state is not retried in a loop.
        #expect(schedule.nextCheck(after: now, decisions: [nil]) == at(300))
    }

    @Test("the service issues at start, sleeps until the due time in steps of at most the maximum interval, renews, and stops when its wait is cancelled")
    func serviceLoopOnAManualClock() async throws {
        // 2 h leaves: lifetime 2 h 5 min with the backdate, due with half of it left, 3450 s after issuance.
        let fixture = try InternalFixture(leafLifetime: 7200)
        defer { fixture.scratch.remove() }
        let waits = Mutex<[TimeInterval]>([])
        let clock = fixture.clock
        let service = InternalRenewalService(
            renewer: fixture.renewer, specs: fixture.configuration.certificates, schedule: schedule, logger: Logger(label: "t"),
            sleep: { seconds in
                let count = waits.withLock { $0.append(seconds); return $0.count }
                guard count < 14 else { throw CancellationError() }
                clock.advance(by: seconds)
            })
        try await service.run()

        let recorded = waits.withLock { $0 }
        #expect(recorded.count == 14)
        // 11 full intervals (to 3300 s), then 150 s to the due time at 3450 s, then the new certificate's schedule.
        #expect(Array(recorded.prefix(12)) == Array(repeating: 300, count: 11) + [150], "\(recorded)")
        #expect(recorded.dropFirst(12).allSatisfy { $0 == 300 }, "\(recorded)")
        let versions = try fixture.store.versions(name: "local")
        #expect(versions == [1, 2], "one issuance at start, one renewal when due")
        let meta = try #require(try fixture.store.meta(name: "local"))
        #expect(meta.notBefore == fixedNow.addingTimeInterval(3450 - InternalCA.backdate))
    }
}
