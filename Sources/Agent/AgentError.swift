/// Why the agent cannot do what was asked, as the executable reports it: a configuration or usage problem (exit 2,
/// nothing touched) or a failure at run time (exit 1).
public struct AgentError: Error, Sendable, CustomStringConvertible {
    /// Which of the two.
    public enum Kind: Sendable, Equatable {
        /// A configuration or usage problem: exit 2.
        case configuration
        /// A failure while running: exit 1.
        case failure
    }

    /// Which of the two.
    public var kind: Kind
    /// One line per problem.
    public var lines: [String]

    /// A configuration problem.
    public static func configuration(_ lines: [String]) -> AgentError { AgentError(kind: .configuration, lines: lines) }
    /// A run-time failure.
    public static func failure(_ line: String) -> AgentError { AgentError(kind: .failure, lines: [line]) }

    /// The lines, joined.
    public var description: String { lines.joined(separator: "; ") }
}
