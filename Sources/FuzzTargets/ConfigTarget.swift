import CertkeeperConfig

/// The YAML configuration: the input as the text of `certkeeper.yaml`, through ``ConfigLoader/parse(yaml:source:)``
/// (Yams, then the schema reader and validation).
///
/// Invariants: the text yields a configuration or a ``ConfigError`` (typed throws); a schema error lists at least
/// one issue; every line of the error's description names the file (no line break hides in a quoted value).
enum ConfigTarget {
    static let source = "fuzz.yaml"

    static func run(_ bytes: UnsafeRawBufferPointer) throws(FuzzViolation) {
        let text = String(decoding: bytes, as: UTF8.self)
        do {
            _ = try ConfigLoader.parse(yaml: text, source: source)
        } catch {
            if error.kind == .invalidConfiguration {
                try require(!error.issues.isEmpty, "invalid configuration without an issue")
            }
            let description = error.description
            try require(!description.unicodeScalars.contains("\r"), "error text with a carriage return: \(quoted(description))")
            for line in description.unicodeScalars.split(separator: "\n", omittingEmptySubsequences: false) {
                // Compared by scalars: a key starting with a combining mark joins the ": " before it into one Character.
                try require(line.starts(with: (source + ": ").unicodeScalars), "error line \(quoted(String(String.UnicodeScalarView(line)))) does not name the file")
            }
        }
    }
}
