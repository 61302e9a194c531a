import Durations
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

/// Parses `Retry-After` (RFC 9110 §10.2.3): delta-seconds or an HTTP date. Returns seconds from `now`, at most
/// ``longest``.
public enum RetryAfter {
    /// The longest wait a CA can ask for: 30 days. A larger value (or `inf`, `1e19`) is cut to it, so no date or
    /// integer conversion later overflows and a back-off cannot outlast every certificate.
    public static let longest = Double(Duration.longestRetryAfter.components.seconds)

    /// The seconds `header` asks to wait, or `nil` when it is neither delta-seconds (digits only) nor an HTTP date.
    /// - Parameters:
    ///   - header: The header's value.
    ///   - now: The time an HTTP date is measured from.
    public static func seconds(from header: String?, now: Date) -> Double? {
        guard let header = header?.trimmingCharacters(in: .whitespaces), !header.isEmpty else { return nil }
        if header.utf8.allSatisfy({ (UInt8(ascii: "0")...UInt8(ascii: "9")).contains($0) }) {
            // delta-seconds = 1*DIGIT; 8 digits already exceed the cap.
            return header.utf8.count > 8 ? longest : min(Double(header) ?? longest, longest)
        }
        let formatter = DateFormatter()
        formatter.locale = Locale(identifier: "en_US_POSIX")
        formatter.timeZone = TimeZone(identifier: "GMT")
        formatter.dateFormat = "EEE, dd MMM yyyy HH:mm:ss zzz"
        guard let date = formatter.date(from: header) else { return nil }
        return min(max(0, date.timeIntervalSince(now)), longest)
    }
}
