import NameRules

/// Checks names that become path components in the store (certificate names, state keys), by ``NameRules/NameRule``.
///
/// Names may later come from a peer, so they are checked before any path is built:
/// `[A-Za-z0-9][A-Za-z0-9._-]{0,63}` and never containing `..`.
public enum StoreName {
    /// The longest accepted certificate name, in characters.
    public static let maximumLength = 64
    /// The longest accepted state key: room for a prefix such as `renewal-` before a full-length name.
    public static let maximumStateKeyLength = 128

    /// Whether `name` is safe to use as a single path component in the store.
    /// - Parameters:
    ///   - name: The candidate name.
    ///   - maximumLength: The longest accepted length (64 for certificate names).
    /// - Returns: `true` when it matches `[A-Za-z0-9][A-Za-z0-9._-]{0,maximumLength-1}` and does not contain `..`.
    public static func isValid(_ name: String, maximumLength: Int = Self.maximumLength) -> Bool {
        NameRule.isValid(name, maximumLength: maximumLength)
    }

    /// Throws unless `name` is valid.
    /// - Parameters:
    ///   - name: The candidate name.
    ///   - kind: What the name is, for the error text (e.g. `"certificate name"`).
    ///   - maximumLength: The longest accepted length.
    /// - Throws: ``StoreError`` with code ``StoreError/Code/invalidName``.
    static func check(_ name: String, kind: String = "certificate name", maximumLength: Int = Self.maximumLength) throws(StoreError) {
        guard isValid(name, maximumLength: maximumLength) else {
            throw StoreError(
                code: .invalidName,
                operation: "check \(kind)",
                path: "",
                detail: "\(String(reflecting: String(name.prefix(80)))) is not a valid \(kind) (want [A-Za-z0-9][A-Za-z0-9._-]{0,\(maximumLength - 1)}, no \"..\")"
            )
        }
    }
}
