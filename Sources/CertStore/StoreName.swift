/// Checks names that become path components in the store (certificate names, state keys).
///
/// Names may later come from a peer, so they are checked before any path is built:
/// `[A-Za-z0-9][A-Za-z0-9._-]{0,63}` and never containing `..`.
public enum StoreName {
    /// The longest accepted name, in characters.
    public static let maximumLength = 64

    /// Whether `name` is safe to use as a single path component in the store.
    /// - Parameter name: The candidate name.
    /// - Returns: `true` when it matches `[A-Za-z0-9][A-Za-z0-9._-]{0,63}` and does not contain `..`.
    public static func isValid(_ name: String) -> Bool {
        let bytes = Array(name.utf8)
        guard let first = bytes.first, bytes.count <= maximumLength else { return false }
        guard isAlphanumeric(first) else { return false }
        guard bytes.allSatisfy({ isAlphanumeric($0) || $0 == UInt8(ascii: ".") || $0 == UInt8(ascii: "_") || $0 == UInt8(ascii: "-") })
        else { return false }
        return !name.contains("..")
    }

    /// Throws unless `name` is valid.
    /// - Parameters:
    ///   - name: The candidate name.
    ///   - kind: What the name is, for the error text (e.g. `"certificate name"`).
    /// - Throws: ``StoreError`` with code ``StoreError/Code/invalidName``.
    static func check(_ name: String, kind: String = "certificate name") throws(StoreError) {
        guard isValid(name) else {
            throw StoreError(
                code: .invalidName,
                operation: "check \(kind)",
                path: "",
                detail: "\(String(reflecting: String(name.prefix(80)))) is not a valid \(kind) (want [A-Za-z0-9][A-Za-z0-9._-]{0,63}, no \"..\")"
            )
        }
    }

    private static func isAlphanumeric(_ byte: UInt8) -> Bool {
        (byte >= UInt8(ascii: "a") && byte <= UInt8(ascii: "z"))
            || (byte >= UInt8(ascii: "A") && byte <= UInt8(ascii: "Z"))
            || (byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "9"))
    }
}
