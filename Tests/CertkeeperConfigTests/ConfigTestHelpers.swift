import Testing

@testable import CertkeeperConfig

/// The smallest valid file; tests append sections to it.
let minimalYAML = """
    state_dir: /var/lib/certkeeper
    acme:
      directory: https://acme.example.org/directory

    """

/// Parses `yaml`, expecting success.
func parsed(_ yaml: String, sourceLocation: SourceLocation = #_sourceLocation) throws -> CertkeeperConfiguration {
    do {
        return try ConfigLoader.parse(yaml: yaml, source: "test.yaml")
    } catch {
        Issue.record("unexpected error:\n\(error)", sourceLocation: sourceLocation)
        throw error
    }
}

/// Parses `yaml`, expecting schema issues, and returns them.
func issues(in yaml: String, sourceLocation: SourceLocation = #_sourceLocation) -> [ConfigIssue] {
    do {
        let configuration = try ConfigLoader.parse(yaml: yaml, source: "test.yaml")
        Issue.record("expected issues, got \(configuration)", sourceLocation: sourceLocation)
        return []
    } catch {
        #expect(error.kind == .invalidConfiguration, sourceLocation: sourceLocation)
        #expect(error.source == "test.yaml", sourceLocation: sourceLocation)
        return error.issues
    }
}

/// The key paths of the issues in `yaml`, in reported order.
func issuePaths(in yaml: String, sourceLocation: SourceLocation = #_sourceLocation) -> [String] {
    issues(in: yaml, sourceLocation: sourceLocation).map(\.keyPath)
}

/// The only issue in `yaml`; records a failure when there is not exactly one.
func singleIssue(in yaml: String, sourceLocation: SourceLocation = #_sourceLocation) -> ConfigIssue? {
    let found = issues(in: yaml, sourceLocation: sourceLocation)
    #expect(found.count == 1, "issues: \(found)", sourceLocation: sourceLocation)
    return found.first
}

/// `minimalYAML` plus one certificate made of `body` lines (indented under the list item).
func withCertificate(_ body: String) -> String {
    let indented = body.split(separator: "\n", omittingEmptySubsequences: false)
        .enumerated()
        .map { $0.offset == 0 ? "  - \($0.element)" : "    \($0.element)" }
        .joined(separator: "\n")
    return minimalYAML + "certificates:\n" + indented + "\n"
}
