import Foundation
import NameRules
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// The value syntaxes of the configuration file. Each check returns `nil` when the text is fine, otherwise the
/// reason as a sentence fragment to put after "`'<text>' is not a valid X: `".
enum Syntax {
    // MARK: Names

    /// Certificate and node names: the store's rule (``NameRules/NameRule``), so a name accepted here is one the
    /// store accepts.
    static func nameProblem(_ text: String) -> String? {
        NameRule.problem(text)
    }

    /// ACME profile names: `[a-z0-9_-]+`.
    static func profileProblem(_ text: String) -> String? {
        guard !text.isEmpty else { return "it is empty" }
        if let bad = text.first(where: { !(("a"..."z").contains($0) || ("0"..."9").contains($0) || $0 == "_" || $0 == "-") })
        {
            return "it contains \(describe(bad)); use lower-case letters, digits, '_' and '-'"
        }
        return nil
    }

    // MARK: DNS names and e-mail

    /// A DNS name as a CA accepts it: LDH labels of 1...63 characters that neither start nor end with a hyphen,
    /// at least two labels, at most 253 characters, no trailing dot, a top-level label that is not all digits.
    /// With `allowWildcard`, a leading `*.` label is accepted too.
    static func dnsNameProblem(_ name: String, allowWildcard: Bool) -> String? {
        guard !name.isEmpty else { return "it is empty" }
        guard name.allSatisfy(\.isASCII) else {
            return "it contains non-ASCII characters; write internationalised names in their xn-- form"
        }
        guard !name.hasSuffix(".") else { return "it must not end with a dot" }
        guard name.utf8.count <= 253 else { return "it is longer than 253 characters" }
        let base = allowWildcard && name.hasPrefix("*.") ? String(name.dropFirst(2)) : name
        if base.contains("*") {
            return allowWildcard
                ? "'*' is only allowed as the whole leftmost label, as in *.example.com"
                : "it must not contain '*'"
        }
        let labels = base.split(separator: ".", omittingEmptySubsequences: false)
        guard labels.count >= 2 else { return "it needs at least two labels, as in example.com" }
        for label in labels {
            guard !label.isEmpty else { return "it has an empty label" }
            guard label.utf8.count <= 63 else { return "label '\(label)' is longer than 63 characters" }
            if let bad = label.first(where: { !isASCIIAlphanumeric($0) && $0 != "-" }) {
                return "label '\(label)' contains \(describe(bad))"
            }
            if label.hasPrefix("-") || label.hasSuffix("-") {
                return "label '\(label)' starts or ends with a hyphen"
            }
        }
        if let last = labels.last, last.allSatisfy(\.isNumber) {
            return "it looks like an IP address; only DNS names are supported"
        }
        return nil
    }

    /// A name on a certificate from the internal CA: a DNS name as ``dnsNameProblem(_:allowWildcard:)`` accepts it
    /// but with a single label allowed (`localhost`, `nas`), or an IPv4 or IPv6 address literal. There is no CA
    /// policy to satisfy, only what TLS clients match: a wildcard is allowed, IP literals become iPAddress SANs.
    static func internalNameProblem(_ name: String) -> String? {
        if canonicalIPAddress(name) != nil { return nil }
        if name.contains(":") { return "it is not a valid IPv6 address" }
        let base = name.hasPrefix("*.") ? String(name.dropFirst(2)) : name
        if !base.isEmpty, !base.contains("."), !base.contains("*") {
            // One label: the same label rules, checked by giving it a parent.
            if base.allSatisfy(\.isNumber) { return "it is a number, neither a DNS name nor an IPv4 address" }
            return dnsNameProblem(name + ".invalid", allowWildcard: true)
        }
        if let last = base.split(separator: ".").last, last.allSatisfy(\.isNumber), !last.isEmpty {
            return "it is not a valid IPv4 address (four decimal numbers 0-255, no leading zeros)"
        }
        return dnsNameProblem(name, allowWildcard: true)
    }

    /// The canonical text of an IP address literal (`127.0.0.1`, `::1`, `2001:db8::1`): IPv4 as a strict dotted
    /// quad, IPv6 as `inet_ntop` writes it (so `0:0:0:0:0:0:0:1` becomes `::1`, the form `meta.json` records);
    /// `nil` when `text` is not one.
    static func canonicalIPAddress(_ text: String) -> String? {
        if ListenAddress.isIPv4(text) { return text }
        guard text.contains(":"), let bytes = IPLiteral.bytes(text), bytes.count == 16 else { return nil }
        return IPLiteral.text(bytes)
    }

    /// A plain `local@domain.tld` address: no display name, no `mailto:`, no quoted local part.
    static func emailProblem(_ text: String) -> String? {
        if text.lowercased().hasPrefix("mailto:") { return "write the address without 'mailto:'" }
        let parts = text.split(separator: "@", omittingEmptySubsequences: false)
        guard parts.count == 2 else { return "it must look like name@example.com" }
        let local = parts[0]
        let domain = String(parts[1])
        guard !local.isEmpty else { return "the part before '@' is empty" }
        guard local.utf8.count <= 64 else { return "the part before '@' is longer than 64 characters" }
        let allowed = "!#$%&'*+-/=?^_`{|}~."
        if let bad = local.first(where: { !isASCIIAlphanumeric($0) && !allowed.contains($0) }) {
            return "the part before '@' contains \(describe(bad))"
        }
        if local.hasPrefix(".") || local.hasSuffix(".") || local.contains("..") {
            return "the part before '@' has a misplaced '.'"
        }
        if let problem = dnsNameProblem(domain.lowercased(), allowWildcard: false) {
            return "domain '\(domain)' is not valid: \(problem)"
        }
        return nil
    }

    // MARK: URLs and paths

    /// An `https://` URL with a host.
    static func httpsURLProblem(_ text: String) -> String? {
        guard let components = URLComponents(string: text), let scheme = components.scheme else {
            return "it is not a URL; expected https://host/path"
        }
        guard scheme.lowercased() == "https" else { return "it must use https://, not \(scheme)://" }
        guard let host = components.host, !host.isEmpty else { return "it has no host" }
        return nil
    }

    /// An absolute path without `..` components or NUL characters. Existence is a runtime matter.
    static func absolutePathProblem(_ text: String) -> String? {
        guard !text.isEmpty else { return "it is empty" }
        guard !text.contains("\0") else { return "it contains a NUL character" }
        guard text.hasPrefix("/") else { return "it is not an absolute path (it must start with '/')" }
        guard !text.split(separator: "/").contains("..") else { return "it must not contain '..' components" }
        return nil
    }

    // MARK: Base64url

    /// Decodes base64url (RFC 4648 §5) with or without `=` padding.
    /// The failure reason never quotes the input: it is a secret.
    static func decodeBase64URL(_ text: String) -> Result<[UInt8], Reason> {
        var body = Substring(text)
        while body.hasSuffix("=") { body = body.dropLast() }
        let padding = text.count - body.count
        guard !body.isEmpty else { return .failure(Reason("it is empty")) }
        if body.contains("+") || body.contains("/") {
            return .failure(Reason("it must be base64url ('-' and '_'), not standard base64 ('+' and '/')"))
        }
        guard body.allSatisfy({ isASCIIAlphanumeric($0) || $0 == "-" || $0 == "_" }) else {
            return .failure(Reason("it contains characters that are not base64url"))
        }
        let remainder = body.count % 4
        guard remainder != 1, padding == 0 || (body.count + padding) % 4 == 0 else {
            return .failure(Reason("it has the wrong length for base64url"))
        }
        let standard = body.replacingOccurrences(of: "-", with: "+").replacingOccurrences(of: "_", with: "/")
            + String(repeating: "=", count: (4 - remainder) % 4)
        guard let data = Data(base64Encoded: standard) else {
            return .failure(Reason("it is not valid base64url"))
        }
        return .success(Array(data))
    }

    /// A failure reason, wrapped so it can travel in a `Result`.
    struct Reason: Error, Equatable {
        let text: String
        init(_ text: String) { self.text = text }
    }

    // MARK: Durations

    /// Longest duration accepted anywhere; keeps later conversions to integer nanoseconds far from overflow.
    static let maximumDuration: Double = ConfigLoader.longestDuration

    /// Units in the order they must appear: `1d2h3m4s`.
    private static let durationUnits: [(unit: Character, seconds: Double)] = [
        ("d", 86400), ("h", 3600), ("m", 60), ("s", 1),
    ]

    /// Seconds in a duration string: a bare number of seconds (`90`, `1.5`) or number-unit pairs from the
    /// largest unit to the smallest, each unit at most once (`90s`, `10m`, `2h`, `30d`, `1h30m`, `1.5h`).
    static func durationSeconds(_ text: String) -> Double? {
        let text = text.trimmingCharacters(in: .whitespaces)
        guard !text.isEmpty else { return nil }
        var total: Double = 0
        var nextUnit = 0
        var rest = Substring(text)
        while !rest.isEmpty {
            let digits = rest.prefix { $0.isASCII && ($0.isNumber || $0 == ".") }
            guard !digits.isEmpty, digits.filter({ $0 == "." }).count <= 1, !digits.hasPrefix("."),
                !digits.hasSuffix("."), let value = Double(digits)
            else { return nil }
            rest = rest.dropFirst(digits.count)
            guard let unitCharacter = rest.first else {
                // A bare number means seconds, but only as the whole text: "1h30" is a typo, not 1h30s.
                return total == 0 && nextUnit == 0 ? value : nil
            }
            guard let index = durationUnits.firstIndex(where: { $0.unit == unitCharacter }), index >= nextUnit else {
                return nil
            }
            total += value * durationUnits[index].seconds
            nextUnit = index + 1
            rest = rest.dropFirst()
        }
        return total
    }

    // MARK: Suggestions

    /// The candidate closest to `word` within edit distance 2 (case-insensitive, transpositions count once).
    static func suggestion(for word: String, among candidates: [String]) -> String? {
        let scored = candidates.map { ($0, editDistance(word.lowercased(), $0.lowercased())) }
        guard let best = scored.min(by: { $0.1 < $1.1 }), best.1 <= 2 else { return nil }
        return best.0
    }

    /// Optimal-string-alignment distance: insertions, deletions, substitutions and adjacent swaps.
    static func editDistance(_ a: String, _ b: String) -> Int {
        let a = Array(a)
        let b = Array(b)
        if a.isEmpty { return b.count }
        if b.isEmpty { return a.count }
        var table = [[Int]](repeating: [Int](repeating: 0, count: b.count + 1), count: a.count + 1)
        for i in 0...a.count { table[i][0] = i }
        for j in 0...b.count { table[0][j] = j }
        for i in 1...a.count {
            for j in 1...b.count {
                let cost = a[i - 1] == b[j - 1] ? 0 : 1
                table[i][j] = min(table[i - 1][j] + 1, table[i][j - 1] + 1, table[i - 1][j - 1] + cost)
                if i > 1, j > 1, a[i - 1] == b[j - 2], a[i - 2] == b[j - 1] {
                    table[i][j] = min(table[i][j], table[i - 2][j - 2] + 1)
                }
            }
        }
        return table[a.count][b.count]
    }

    // MARK: Helpers

    static func isASCIIAlphanumeric(_ character: Character) -> Bool {
        character.isASCII && (character.isLetter || character.isNumber)
    }

    /// How to show one offending character in a message.
    static func describe(_ character: Character) -> String {
        switch character {
        case " ": "a space"
        case "\t": "a tab"
        case "\0": "a NUL character"
        case "'": "a quote (')"
        default: "'\(character)'"
        }
    }
}
