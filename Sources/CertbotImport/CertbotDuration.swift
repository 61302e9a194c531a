import CertkeeperConfig

/// certbot's `renew_before_expiry` text (`"30 days"`, `"2 weeks"`, `"1 week 3 days"`) in seconds, and back into
/// certkeeper's duration syntax (`30d`, `1d12h`).
public enum CertbotDuration {
    /// Parses pairs of a whole number and a unit: seconds, minutes, hours, days, weeks, months (30 days).
    /// - Parameter text: E.g. `"30 days"`.
    /// - Returns: Seconds, or `nil` when the text is not such a list or comes to zero.
    public static func seconds(_ text: String) -> Double? {
        // Split "30days" as well as "30 days".
        var tokens: [String] = []
        var current = ""
        var currentIsDigit: Bool?
        for character in text.lowercased() {
            if character == " " || character == "\t" || character == "," {
                if !current.isEmpty { tokens.append(current); current = "" }
                currentIsDigit = nil
                continue
            }
            let isDigit = character.isASCII && character.isNumber
            if let currentIsDigit, currentIsDigit != isDigit, !current.isEmpty {
                tokens.append(current)
                current = ""
            }
            current.append(character)
            currentIsDigit = isDigit
        }
        if !current.isEmpty { tokens.append(current) }
        guard !tokens.isEmpty, tokens.count % 2 == 0 else { return nil }
        var total: Double = 0
        for index in stride(from: 0, to: tokens.count, by: 2) {
            guard let amount = Int(tokens[index]), amount >= 0, let unit = unitSeconds(tokens[index + 1]) else { return nil }
            total += Double(amount) * unit
        }
        // Past the longest duration a configuration accepts, it is not one certkeeper can write back either.
        return total > 0 && total <= ConfigLoader.longestDuration ? total : nil
    }

    /// Seconds as certkeeper writes durations: days, hours, minutes, seconds, largest first (`1d12h`).
    public static func configText(seconds: Double) -> String {
        var rest = Int(seconds.rounded())
        var text = ""
        for (unit, size) in [("d", 86_400), ("h", 3_600), ("m", 60), ("s", 1)] where rest >= size {
            text += "\(rest / size)\(unit)"
            rest %= size
        }
        return text.isEmpty ? "0s" : text
    }

    private static func unitSeconds(_ unit: String) -> Double? {
        switch unit {
        case "s", "sec", "secs", "second", "seconds": 1
        case "m", "min", "mins", "minute", "minutes": 60
        case "h", "hr", "hrs", "hour", "hours": 3_600
        case "d", "day", "days": 86_400
        case "w", "wk", "wks", "week", "weeks": 7 * 86_400
        case "month", "months": 30 * 86_400
        default: nil
        }
    }
}
