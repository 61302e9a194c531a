import NIOConcurrencyHelpers

/// Lets the first few log lines per key through in each interval and counts the rest, so something that happens
/// once per connection (a backend down, a client refused, the descriptor limit reached) logs a few lines per
/// interval, each later one saying how many were held back, instead of one line per occurrence. Anything a client
/// can make happen at will goes through one of these: a client must not be able to fill the disk.
///
/// Thread safety: every method may be called from any thread.
public final class WarningThrottle: Sendable {
    private struct Entry {
        var windowStart: ContinuousClock.Instant
        var admitted: Int
        var suppressed: Int
    }

    private let interval: Duration
    private let burst: Int
    private let entries = NIOLockedValueBox([String: Entry]())

    /// Creates a throttle.
    /// - Parameters:
    ///   - interval: How long one window lasts for a key.
    ///   - burst: How many occurrences per key and window are logged in full (at least 1).
    public init(interval: Duration = .seconds(10), burst: Int = 1) {
        self.interval = interval
        self.burst = max(1, burst)
    }

    /// Whether this occurrence should be logged in full.
    /// - Parameters:
    ///   - key: What kind of occurrence it is (a reason, a backend): each key has its own window.
    ///   - now: The time of the occurrence.
    /// - Returns: `nil` when it should not be logged (it is counted); otherwise how many were held back since the
    ///   last one logged in full for this key.
    public func admit(_ key: String, now: ContinuousClock.Instant = .now) -> Int? {
        entries.withLockedValue { entries in
            if var entry = entries[key], now < entry.windowStart + interval {
                if entry.admitted < burst {
                    entry.admitted += 1
                    entries[key] = entry
                    return 0
                }
                entry.suppressed += 1
                entries[key] = entry
                return nil
            }
            let suppressed = entries[key]?.suppressed ?? 0
            entries[key] = Entry(windowStart: now, admitted: 1, suppressed: 0)
            return suppressed
        }
    }
}
