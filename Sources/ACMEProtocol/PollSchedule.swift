import Foundation

/// When to ask again while an authorization or order is still in progress.
///
/// Starts short, so a fast CA (Pebble with no validation sleep, or a cached authorization) is not waited on,
/// grows geometrically to a ceiling, and lets the server's `Retry-After` override the guess.
public struct PollSchedule: Sendable, Equatable {
    public var initialDelay: Double
    public var multiplier: Double
    public var maximumDelay: Double
    /// A `Retry-After` longer than this is capped, so one odd header cannot stall a run.
    public var maximumRetryAfter: Double

    public init(initialDelay: Double = 0.05, multiplier: Double = 2, maximumDelay: Double = 3, maximumRetryAfter: Double = 60) {
        self.initialDelay = initialDelay
        self.multiplier = multiplier
        self.maximumDelay = maximumDelay
        self.maximumRetryAfter = maximumRetryAfter
    }

    /// The delay before poll number `attempt` (0-based), given the last response's Retry-After in seconds.
    public func delay(attempt: Int, retryAfter: Double?) -> Double {
        if let retryAfter, retryAfter > 0 {
            return min(retryAfter, maximumRetryAfter)
        }
        let grown = initialDelay * pow(multiplier, Double(max(0, attempt)))
        return min(grown, maximumDelay)
    }
}

/// Parses `Retry-After` (RFC 9110 §10.2.3): delta-seconds or an HTTP date. Returns seconds from `now`.
public enum RetryAfter {
    public static func seconds(from header: String?, now: Date) -> Double? {
        guard let header = header?.trimmingCharacters(in: .whitespaces), !header.isEmpty else { return nil }
        if let seconds = Double(header), seconds >= 0 { return seconds }
        let formatter = DateFormatter()
        formatter.locale = Locale(identifier: "en_US_POSIX")
        formatter.timeZone = TimeZone(identifier: "GMT")
        formatter.dateFormat = "EEE, dd MMM yyyy HH:mm:ss zzz"
        guard let date = formatter.date(from: header) else { return nil }
        return max(0, date.timeIntervalSince(now))
    }
}
