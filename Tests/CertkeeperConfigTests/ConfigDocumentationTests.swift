import Foundation
import Testing

@testable import CertkeeperConfig

/// The example file and the reference must keep up with the parser.
@Suite("Example file and reference documentation")
struct ConfigDocumentationTests {
    /// The repository root, found from this file's location.
    static let repositoryRoot = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent()  // CertkeeperConfigTests
        .deletingLastPathComponent()  // Tests
        .deletingLastPathComponent()

    static let examplePath = repositoryRoot.appendingPathComponent("Config/certkeeper.example.yaml").path
    static let referencePath = repositoryRoot.appendingPathComponent("docs/config-reference.md").path

    @Test("the example file parses without issues")
    func exampleParses() throws {
        let configuration = try ConfigLoader.load(path: Self.examplePath)
        #expect(configuration.certificates.count == 2)
        #expect(configuration.certificates.first?.challenge == .http01(HTTP01Settings()))
        guard case .dns01(let dns) = configuration.certificates.last?.challenge else {
            Issue.record("the second example certificate should use dns-01")
            return
        }
        #expect(dns.hook.hasPrefix("/"))
        #expect(!configuration.hooks.deploy.isEmpty)
        #expect(configuration.certificates.allSatisfy { !$0.deployHooks.isEmpty || $0.hasWildcard })
    }

    @Test("the example's values agree with the documented defaults where it says so")
    func exampleUsesDefaults() throws {
        let configuration = try ConfigLoader.load(path: Self.examplePath)
        #expect(configuration.keepVersions == CertkeeperConfiguration.defaultKeepVersions)
        #expect(configuration.renew == RenewSettings())
        #expect(configuration.acme.requestTimeout == ACMESettings.defaultRequestTimeout)
        #expect(configuration.acme.orderTimeout == ACMESettings.defaultOrderTimeout)
        #expect(configuration.hooks.timeout == HookSettings.defaultTimeout)
        #expect(configuration.internalCA == InternalCASettings())
    }

    @Test("the example shows every key, commented out or not")
    func exampleShowsEveryKey() throws {
        let text = try String(contentsOfFile: Self.examplePath, encoding: .utf8)
        for keyPath in ConfigSchema.allKeyPaths {
            let key = String(keyPath.split(separator: ".").last ?? "")
            let written = text.contains("\(key):") || text.contains("{\(key):") || text.contains(", \(key):")
            #expect(written, "the example does not show \(keyPath)")
        }
    }

    @Test("the reference has a row for every key")
    func referenceListsEveryKey() throws {
        let text = try String(contentsOfFile: Self.referencePath, encoding: .utf8)
        let rows = Set(text.split(separator: "\n").compactMap { line -> String? in
            guard line.hasPrefix("| `") else { return nil }
            return line.dropFirst(3).split(separator: "`").first.map(String.init)
        })
        for keyPath in ConfigSchema.allKeyPaths {
            #expect(rows.contains(keyPath), "docs/config-reference.md has no row for \(keyPath)")
        }
        let extra = rows.subtracting(ConfigSchema.allKeyPaths)
        #expect(extra.isEmpty, "rows for keys the parser does not know: \(extra.sorted())")
    }
}
