import Testing

@testable import CertProxy

@Suite("Warning throttle")
struct WarningThrottleTests {
    @Test("one warning per key per interval, then the count of the ones held back")
    func throttles() {
        let throttle = WarningThrottle(interval: .seconds(10))
        let start = ContinuousClock.now
        #expect(throttle.admit("a", now: start) == 0)
        #expect(throttle.admit("a", now: start + .seconds(1)) == nil)
        #expect(throttle.admit("a", now: start + .seconds(9)) == nil)
        #expect(throttle.admit("b", now: start + .seconds(9)) == 0, "keys are independent")
        #expect(throttle.admit("a", now: start + .seconds(10)) == 2)
        #expect(throttle.admit("a", now: start + .seconds(11)) == nil)
        #expect(throttle.admit("a", now: start + .seconds(30)) == 1)
    }
}
