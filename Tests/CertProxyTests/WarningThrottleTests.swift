import LogThrottle
import Testing

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

    @Test("a burst: the first few per window in full, then counted; 10,000 occurrences in a minute give a handful of lines")
    func burst() {
        let throttle = WarningThrottle(interval: .seconds(10), burst: 3)
        let start = ContinuousClock.now
        #expect(throttle.admit("r", now: start) == 0)
        #expect(throttle.admit("r", now: start + .milliseconds(1)) == 0)
        #expect(throttle.admit("r", now: start + .milliseconds(2)) == 0)
        #expect(throttle.admit("r", now: start + .milliseconds(3)) == nil)
        #expect(throttle.admit("r", now: start + .seconds(10)) == 1)
        var logged = 0
        for step in 0..<10_000 where throttle.admit("s", now: start + .milliseconds(6 * step)) != nil { logged += 1 }
        #expect(logged == 18, "6 windows of 10 s, 3 lines each")
    }
}
