/// One problem found in a configuration file: where it is and what is wrong.
public struct ConfigIssue: Sendable, Equatable, CustomStringConvertible {
    /// Dotted key path with list indices, for example `certificates[2].challenge.hook`; empty for the whole document.
    public var keyPath: String
    /// What is wrong, for example `'exa mple.com' is not a valid DNS name: ...`.
    public var message: String

    /// Creates an issue.
    public init(keyPath: String, message: String) {
        self.keyPath = keyPath
        self.message = message
    }

    /// `keyPath: message`, or just the message when the issue concerns the whole document.
    public var description: String { keyPath.isEmpty ? message : "\(keyPath): \(message)" }
}

/// Why a configuration could not be loaded. Every line of its description names the file.
public struct ConfigError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The kind of failure.
    public enum Kind: Sendable, Equatable {
        /// The file could not be read (missing, a directory, not UTF-8, ...).
        case unreadable(reason: String)
        /// The file is not well-formed YAML; line and column are 1-based when known.
        case invalidYAML(problem: String, line: Int?, column: Int?)
        /// The YAML is well-formed but breaks the schema; the details are in ``ConfigError/issues``.
        case invalidConfiguration
    }

    /// The file path (or other label) the text came from.
    public var source: String
    /// What kind of failure this is.
    public var kind: Kind
    /// Every schema problem found, in file order; empty unless ``kind`` is ``Kind/invalidConfiguration``.
    public var issues: [ConfigIssue]

    /// Creates an error.
    public init(source: String, kind: Kind, issues: [ConfigIssue] = []) {
        self.source = source
        self.kind = kind
        self.issues = issues
    }

    /// Creates an ``Kind/invalidConfiguration`` error listing `issues`.
    public init(source: String, issues: [ConfigIssue]) {
        self.init(source: source, kind: .invalidConfiguration, issues: issues)
    }

    /// One line per issue (`<source>: <keyPath>: <message>`), or one line for an unreadable or malformed file.
    /// Line breaks inside a line (a key or value quoted from the file) are written as `\n` and `\r`, so every
    /// line names the file.
    public var description: String {
        let lines: [String]
        switch kind {
        case .unreadable(let reason):
            lines = ["\(source): cannot read configuration: \(reason)"]
        case .invalidYAML(let problem, let line?, let column?):
            lines = ["\(source): invalid YAML at line \(line), column \(column): \(problem)"]
        case .invalidYAML(let problem, let line?, nil):
            lines = ["\(source): invalid YAML at line \(line): \(problem)"]
        case .invalidYAML(let problem, _, _):
            lines = ["\(source): invalid YAML: \(problem)"]
        case .invalidConfiguration:
            lines = issues.isEmpty ? ["\(source): invalid configuration"] : issues.map { "\(source): \($0)" }
        }
        return lines.map(Self.singleLine).joined(separator: "\n")
    }

    /// `text` with its line feeds and carriage returns escaped.
    static func singleLine(_ text: String) -> String {
        guard text.unicodeScalars.contains(where: { $0 == "\n" || $0 == "\r" }) else { return text }
        var escaped = String.UnicodeScalarView()
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\n": escaped.append(contentsOf: "\\n".unicodeScalars)
            case "\r": escaped.append(contentsOf: "\\r".unicodeScalars)
            default: escaped.append(scalar)
            }
        }
        return String(escaped)
    }
}
