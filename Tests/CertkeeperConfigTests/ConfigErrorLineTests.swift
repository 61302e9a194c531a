import Testing

@testable import CertkeeperConfig

@Suite("Configuration errors are one line per issue")
struct ConfigErrorLineTests {
    /// Every line of `yaml`'s error text, which must exist.
    func errorLines(_ yaml: String) -> [Substring] {
        do {
            _ = try ConfigLoader.parse(yaml: yaml, source: "test.yaml")
            Issue.record("expected an error")
            return []
        } catch {
            return error.description.unicodeScalars.split(separator: "\n", omittingEmptySubsequences: false)
                .map { Substring(String(String.UnicodeScalarView($0))) }
        }
    }

    /// Found by the config fuzz target (Fuzz/regressions/config/): a quoted value holding a line break was printed
    /// as is, so the second half of the message was a line of its own that named no file.
    @Test("a line break inside a quoted value or key stays inside its line")
    func lineBreaksAreEscaped() {
        for yaml in ["cluster:\n listen: \"\n\n\"\n", minimalYAML + "\"bad\\r\\nkey\": 1\n", minimalYAML + "\"two\\nlines\": 1\n"] {
            let lines = errorLines(yaml)
            #expect(!lines.isEmpty)
            for line in lines {
                #expect(line.hasPrefix("test.yaml: ") && !line.unicodeScalars.contains("\r"), "\(line)")
            }
        }
    }

    @Test("escaping keeps other text as it is")
    func singleLine() {
        #expect(ConfigError.singleLine("a\r\nb\nc") == "a\\r\\nb\\nc")
        #expect(ConfigError.singleLine("plain: 'text' é") == "plain: 'text' é")
    }
}
