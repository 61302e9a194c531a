import ACMEClient
import ACMEProtocol
import Foundation

/// What an ACME server sends: the input as a response body decoded as every ACME object and a problem document
/// (with ``ACMEJSON``, as the client does), and as a `Retry-After` header value and an RFC 3339 timestamp.
///
/// Invariants: every object that decodes encodes with ``ACMEJSON/encoder()`` to JSON that decodes to the same
/// value; a problem's kind, transience and description (also inside an ``ACMEError``) are computed without a trap;
/// a `Retry-After` is absent or a finite, non-negative number of seconds, and what the client does with it (the
/// poll delay, the error text) stays within bounds; a parsed timestamp formats to text that parses back to it
/// (to the second).
enum ACMETarget {
    /// The clock of `Retry-After` dates: fixed, so a reproducer reproduces.
    static let now = Date(timeIntervalSince1970: 1_800_000_000)

    static func run(_ bytes: UnsafeRawBufferPointer) throws(FuzzViolation) {
        let body = Array(bytes)
        try roundTrip(ACMEDirectory.self, body)
        try roundTrip(ACMEAccount.self, body)
        try roundTrip(ACMEChallenge.self, body)
        try roundTrip(ACMEAuthorization.self, body)
        if let order = try roundTrip(ACMEOrder.self, body), let problem = order.error {
            try checkProblem(problem)
        }
        if let problem = try roundTrip(ACMEProblem.self, body) {
            try checkProblem(problem)
        }
        if let info = try? ACMEJSON.decode(RenewalInfo.self, from: body, what: "renewalInfo") {
            try checkTimestamp(info.suggestedWindow.start)
            try checkTimestamp(info.suggestedWindow.end)
        }

        let text = String(decoding: bytes, as: UTF8.self)
        try checkRetryAfter(text)
        if let date = RFC3339.parse(text) {
            try checkTimestamp(date)
        }
    }

    @discardableResult
    private static func roundTrip<T: Codable & Equatable>(_ type: T.Type, _ body: [UInt8]) throws(FuzzViolation) -> T? {
        guard let value = try? ACMEJSON.decode(T.self, from: body, what: "\(T.self)") else { return nil }
        let again: T
        do {
            again = try ACMEJSON.decode(T.self, from: ACMEJSON.encode(value), what: "\(T.self)")
        } catch {
            throw FuzzViolation("\(T.self) decoded but does not encode and decode again: \(error)")
        }
        try require(again == value, "\(T.self) does not survive a round trip: \(value) became \(again)")
        return value
    }

    private static func checkProblem(_ problem: ACMEProblem) throws(FuzzViolation) {
        _ = problem.kind.isTransient
        try require(!problem.description.isEmpty || problem.type.isEmpty, "problem of type \(quoted(problem.type)) has no description")
        let error = ACMEError(.problem(problem), url: "https://acme.invalid/order/1", retryAfter: 1)
        try require(error.problemKind == problem.kind, "ACMEError changes the problem's kind")
        _ = error.description
    }

    private static func checkRetryAfter(_ header: String) throws(FuzzViolation) {
        guard let seconds = RetryAfter.seconds(from: header, now: now) else { return }
        try require(seconds.isFinite && seconds >= 0, "Retry-After \(quoted(header)) gives \(seconds) seconds")
        let schedule = PollSchedule()
        let delay = schedule.delay(attempt: 3, retryAfter: seconds)
        try require(delay >= 0 && delay <= max(schedule.maximumDelay, schedule.maximumRetryAfter), "poll delay \(delay) for Retry-After \(quoted(header))")
        // The error text the renewal logs and records (rounds the seconds to an integer).
        _ = ACMEError(.unexpectedStatus(503, body: ""), retryAfter: seconds).description
    }

    private static func checkTimestamp(_ date: Date) throws(FuzzViolation) {
        let text = RFC3339.format(date)
        guard let again = RFC3339.parse(text) else {
            throw FuzzViolation("RFC3339.format(\(date.timeIntervalSince1970)) = \(quoted(text)) does not parse")
        }
        try require(abs(again.timeIntervalSince(date)) < 1, "\(quoted(text)) parses to \(again.timeIntervalSince1970), not \(date.timeIntervalSince1970)")
    }
}
