import NIOConcurrencyHelpers

/// Lets one warning per key through per `interval` and counts the ones held back, so a backend that is down
/// produces one log line per interval (saying how many more failures there were) instead of one per connection.
final class WarningThrottle: Sendable {
    private struct Entry {
        var lastWarning: ContinuousClock.Instant
        var suppressed: Int
    }

    private let interval: Duration
    private let entries = NIOLockedValueBox([String: Entry]())

    /// - Parameter interval: The shortest time between two warnings for the same key.
    init(interval: Duration = .seconds(10)) {
        self.interval = interval
    }

    /// Whether this occurrence should be logged as a warning.
    /// - Returns: `nil` when it should not (it is counted); otherwise how many were held back since the last warning.
    func admit(_ key: String, now: ContinuousClock.Instant = .now) -> Int? {
        entries.withLockedValue { entries in
            if var entry = entries[key], now < entry.lastWarning + interval {
                entry.suppressed += 1
                entries[key] = entry
                return nil
            }
            let suppressed = entries[key]?.suppressed ?? 0
            entries[key] = Entry(lastWarning: now, suppressed: 0)
            return suppressed
        }
    }
}
