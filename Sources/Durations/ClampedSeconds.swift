/// The one conversion of a number of seconds that came from outside the process (a configuration, a CA's
/// `Retry-After`, a peer's request) into a `Duration`.
extension Duration {
    /// The longest duration produced: 10 years, as long as a configuration may say.
    public static let longestConverted: Duration = .seconds(3650 * 86_400)

    /// The longest wait a CA's `Retry-After` can impose: 30 days, for the ACME client and the back-off alike.
    public static let longestRetryAfter: Duration = .seconds(30 * 86_400)

    /// `seconds` as a duration that no later arithmetic can overflow.
    ///
    /// NaN and negative values are zero, values above `maximum` (infinity included) are `maximum`, and the rest are
    /// rounded *up* to whole milliseconds, so that a small positive timeout (`0.0001`) never becomes zero.
    /// - Parameters:
    ///   - seconds: The number of seconds.
    ///   - maximum: The longest result (``longestConverted`` by default).
    public static func clampedSeconds(_ seconds: Double, maximum: Duration = longestConverted) -> Duration {
        guard seconds > 0 else { return .zero }
        let maximum = min(maximum, .milliseconds(Int64.max))
        let maximumMilliseconds = Double(maximum.components.seconds) * 1000 + Double(maximum.components.attoseconds) / 1e15
        let milliseconds = (seconds * 1000).rounded(.up)
        guard milliseconds < maximumMilliseconds else { return maximum }
        return .milliseconds(Int64(milliseconds))
    }
}
