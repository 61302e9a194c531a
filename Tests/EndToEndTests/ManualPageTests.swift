import CertkeeperTestSupport
import Foundation
import Testing

/// docs/man/certkeeper.1 is generated (scripts/generate-man-page.sh) and committed: it must keep up with the commands.
@Suite("Manual page")
struct ManualPageTests {
    static let page = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("docs/man/certkeeper.1").path

    @Test("every subcommand that --help lists has an entry in the manual page")
    func everySubcommandDocumented() async throws {
        let manual = try String(contentsOfFile: Self.page, encoding: .utf8)
        let help = try await CLI.run(["--help"])
        #expect(help.exitCode == 0)
        let section = try #require(help.stdout.components(separatedBy: "SUBCOMMANDS:").last)
        let commands = section.split(separator: "\n").compactMap { line -> String? in
            let trimmed = line.trimmingCharacters(in: .whitespaces)
            // Entries are indented by two spaces; wrapped descriptions by more; the closing "See ..." line is prose.
            guard line.hasPrefix("  "), !line.hasPrefix("   "), !trimmed.hasPrefix("See "),
                  let first = trimmed.split(separator: " ").first, first.first?.isLetter == true else { return nil }
            return String(first)
        }
        #expect(commands.count >= 8, "\(help.stdout)")
        for command in commands {
            #expect(manual.contains(".It Em \(command)"), "docs/man/certkeeper.1 has no entry for '\(command)'; run scripts/generate-man-page.sh")
        }
    }
}
