/// The one rule for names that become path components and log fields: certificate names, node and cluster
/// names, state keys. `[A-Za-z0-9][A-Za-z0-9._-]{0,63}`, never containing `..`.
///
/// The configuration (`check-config`), the store, the cluster commands and anything a peer sends use this rule,
/// so a name `check-config` accepts is one the store accepts too.
public enum NameRule {
    /// The longest name, in bytes (all accepted characters are ASCII).
    public static let maximumLength = 64

    /// Why `name` breaks the rule, as a sentence fragment to follow "`'<name>' is not a valid name: `", or `nil`
    /// when it is fine.
    /// - Parameters:
    ///   - name: The candidate.
    ///   - maximumLength: The longest accepted length (longer for state keys, which carry a prefix).
    public static func problem(_ name: String, maximumLength: Int = Self.maximumLength) -> String? {
        guard let first = name.unicodeScalars.first else { return "it is empty" }
        guard isASCIIAlphanumeric(first) else { return "it must start with a letter or digit" }
        // Characters before length: every accepted one is one byte, so a bad one is the real problem.
        if let bad = name.unicodeScalars.first(where: { !isASCIIAlphanumeric($0) && $0 != "." && $0 != "_" && $0 != "-" }) {
            return "it contains \(describe(bad)); use letters, digits, '.', '_' and '-'"
        }
        guard name.utf8.count <= maximumLength else { return "it is longer than \(maximumLength) characters" }
        if name.contains("..") { return "it contains '..'" }
        return nil
    }

    /// Whether `name` keeps the rule.
    public static func isValid(_ name: String, maximumLength: Int = Self.maximumLength) -> Bool {
        problem(name, maximumLength: maximumLength) == nil
    }

    static func isASCIIAlphanumeric(_ scalar: Unicode.Scalar) -> Bool {
        ("a"..."z").contains(scalar) || ("A"..."Z").contains(scalar) || ("0"..."9").contains(scalar)
    }

    /// How one offending character reads in a message.
    static func describe(_ scalar: Unicode.Scalar) -> String {
        switch scalar {
        case " ": "a space"
        case "\t": "a tab"
        case "\0": "a NUL character"
        case "'": "a quote (')"
        default:
            scalar.isASCII && scalar.value >= 0x20 && scalar.value < 0x7F
                ? "'\(Character(scalar))'" : "U+\(String(scalar.value, radix: 16, uppercase: true))"
        }
    }
}
