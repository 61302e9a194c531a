import Durations
import Foundation
import Testing

@testable import PeerSync

@Suite("Seconds from outside as durations")
struct ClampedSecondsTests {
    @Test("NaN and negatives are zero, huge values the maximum, small positive values at least a millisecond")
    func clamps() {
        #expect(Duration.clampedSeconds(.nan) == .zero)
        #expect(Duration.clampedSeconds(-5) == .zero)
        #expect(Duration.clampedSeconds(0) == .zero)
        #expect(Duration.clampedSeconds(0.0001) == .milliseconds(1), "a tiny timeout must not become zero")
        #expect(Duration.clampedSeconds(1.5) == .milliseconds(1500))
        #expect(Duration.clampedSeconds(1e19) == Duration.longestConverted)
        #expect(Duration.clampedSeconds(.infinity) == Duration.longestConverted)
        #expect(Duration.clampedSeconds(90, maximum: .seconds(60)) == .seconds(60))
    }

    @Test("the peer API's wait= is a number of seconds from 0 to a day")
    func requestedWait() {
        #expect(PeerAPI.requestedWait("1.5") == .milliseconds(1500))
        #expect(PeerAPI.requestedWait("86400") == .seconds(86_400))
        for refused in ["86400.5", "1e19", "inf", "nan", "-1", "", "abc", String(repeating: "1", count: 40)] {
            #expect(PeerAPI.requestedWait(refused) == nil, "\(refused.prefix(20))")
        }
    }
}

@Suite("Sync index, freshness and reachability")
struct SyncLogicTests {
    @Test("an index prints and parses back; garbage does not parse")
    func indexRoundTrip() {
        let index = SyncIndex(epoch: "00ff00ff00ff00ff", counter: 42)
        #expect(SyncIndex(index.description) == index)
        for bad in ["", "abc", "xyz.1", "ab.", ".1", "ab.-1", "ab.1.2", String(repeating: "a", count: 33) + ".1"] {
            #expect(SyncIndex(bad) == nil, "\(bad)")
        }
    }

    @Test("a wait returns at once for another epoch or counter, after a bump, or at its timeout")
    func changeIndexWaits() async {
        let index = ChangeIndex(initial: SyncIndex(epoch: "aa", counter: 0))
        #expect(await index.wait(after: nil, timeout: .seconds(60)) == SyncIndex(epoch: "aa", counter: 0))
        #expect(await index.wait(after: SyncIndex(epoch: "bb", counter: 0), timeout: .seconds(60)).epoch == "aa")

        let start = index.current
        async let woken = index.wait(after: start, timeout: .seconds(60))
        // Bump until the waiter has certainly registered: each bump wakes whoever waits.
        let bumper = Task {
            for _ in 0..<600 where !Task.isCancelled {
                try? await Task.sleep(for: .milliseconds(50))
                index.bump()
            }
        }
        let result = await woken
        bumper.cancel()
        await bumper.value
        #expect(result.counter > start.counter)

        let now = index.current
        #expect(await index.wait(after: now, timeout: .milliseconds(20)) == now)
    }

    @Test("a cancelled long-poll returns")
    func cancelledWait() async {
        let index = ChangeIndex(initial: SyncIndex(epoch: "aa", counter: 7))
        let waiter = Task { await index.wait(after: index.current, timeout: .seconds(600)) }
        try? await Task.sleep(for: .milliseconds(50))
        waiter.cancel()
        #expect(await waiter.value.counter == 7)
    }

    @Test("serials compare as numbers", arguments: [
        ("0a", "9", ComparisonResult.orderedDescending), ("00ff", "ff", .orderedSame), ("FF", "fe", .orderedDescending),
        ("1", "10", .orderedAscending), ("0", "", .orderedSame),
    ])
    func serialOrder(left: String, right: String, expected: ComparisonResult) {
        #expect(SerialOrder.compare(left, right) == expected)
    }

    @Test("newer means a later notBefore, then a larger serial")
    func freshness() {
        let base = Date(timeIntervalSince1970: 1_800_000_000)
        let entry = CatalogCertificate(name: "web", serial: "10", notBefore: base, notAfter: base + 86_400, sha256: "x", domains: ["a"])
        #expect(entry.isNewer(thanNotBefore: base - 1, serial: "ff"))
        #expect(!entry.isNewer(thanNotBefore: base + 1, serial: "1"))
        #expect(entry.isNewer(thanNotBefore: base, serial: "f"))
        #expect(!entry.isNewer(thanNotBefore: base, serial: "10"))
        #expect(!entry.isNewer(thanNotBefore: base.addingTimeInterval(0.4), serial: "11"))
    }

    @Test("the renewer's silence counts from when it stopped answering, or from start-up")
    func renewerSilence() {
        let start = Date(timeIntervalSince1970: 1_800_000_000)
        let directory = PeerDirectory(peerNames: ["r", "f"], start: start)
        let renewer = PeerCatalog(node: "r", role: "renewer", index: SyncIndex(epoch: "a", counter: 1), certificates: [], account: nil)
        let follower = PeerCatalog(node: "f", role: "follower", index: SyncIndex(epoch: "b", counter: 1), certificates: [], account: nil)

        // Nobody reached yet: both could be the renewer; silent since start.
        #expect(directory.renewerSilence(now: start + 100) == 100)
        // The follower answers; the other peer could still be the renewer.
        directory.reached("f", catalog: follower, at: start + 100)
        #expect(directory.renewerSilence(now: start + 150) == 150)
        // The renewer answers: no silence.
        directory.reached("r", catalog: renewer, at: start + 200)
        #expect(directory.renewerSilence(now: start + 250) == nil)
        // It stops answering at +300; repeated failures keep the first time.
        directory.failed("r", error: "refused", at: start + 300)
        directory.failed("r", error: "refused", at: start + 400)
        #expect(directory.renewerSilence(now: start + 500) == 200)
        // A follower answering does not count as the renewer.
        directory.reached("f", catalog: follower, at: start + 500)
        #expect(directory.renewerSilence(now: start + 600) == 300)
    }
}
